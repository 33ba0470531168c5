// Interactive before → after charts drawn in the page (the exported charts stay the core's plotters SVG/PNG):
// mean p(right caption) and accuracy, before and after fine-tuning, per split. The numbers are the store's own
// (each run's `RunMetrics`, as the runner recorded them); nothing is computed here but the geometry. Hover shows
// every visible run's exact before and after values in the panel under the pointer; clicking a legend entry hides
// a run.

import type { RunMetrics, Summary } from "./bindings";
import { axes, panelMessage, panelsChart, svgEl, tipRow, type ChartRun, type Frame } from "./chart";
import { h } from "./dom";

/** One run as the before → after charts show it. */
export type BeforeAfterRun = ChartRun & { metrics: RunMetrics };

type Measure = "mean_label_prob" | "accuracy";
type SplitKey = "train" | "heldout";
type PanelSpec = { split: SplitKey; measure: Measure };

/** The charts drawn here: grouped bars of both measures, or the mean p(right caption) as slopes. */
export type BeforeAfterKind = "metrics" | "label_prob_slope";

const SPLIT_TITLE: Record<SplitKey, string> = { train: "train", heldout: "held-out" };
const MEASURE_TITLE: Record<Measure, string> = { mean_label_prob: "mean p(right caption)", accuracy: "accuracy" };

/** A value as the tooltip shows it (the GUI test formats the store's value alike): accuracy in percent with two
 *  decimals, a probability with four. */
export function valueText(measure: Measure, x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return measure === "accuracy" ? `${(x * 100).toFixed(2)}%` : x.toFixed(4);
}

function stage(r: BeforeAfterRun, split: SplitKey, after: boolean): Summary | null {
  const m = r.metrics;
  if (split === "train") return after ? m.train_after : m.train_before;
  return after ? m.heldout_after : m.heldout_before;
}

function tick(measure: Measure, v: number): string {
  return measure === "accuracy" ? `${Math.round(v * 100)}%` : v.toFixed(2);
}

/** The interactive before → after chart `kind` of `runs` (a figure with `testid` and `data-chart` = `kind`). */
export function beforeAfterChart(runs: BeforeAfterRun[], kind: BeforeAfterKind, testid: string, title: string): HTMLElement {
  const panels: PanelSpec[] =
    kind === "metrics"
      ? [
          { split: "train", measure: "mean_label_prob" },
          { split: "heldout", measure: "mean_label_prob" },
          { split: "train", measure: "accuracy" },
          { split: "heldout", measure: "accuracy" },
        ]
      : [
          { split: "train", measure: "mean_label_prob" },
          { split: "heldout", measure: "mean_label_prob" },
        ];
  return panelsChart<BeforeAfterRun, PanelSpec>({
    runs,
    panels,
    kind,
    testid,
    title,
    legend: true,
    key: kind === "metrics" ? "light bar: before · solid bar: after" : undefined,
    name: (p) => `${p.split}-${p.measure}`,
    domain: () => ({ x: [0, 1], y: [0, 1] }),
    draw: (svg, p, shown, f) => drawPanel(svg, kind, p, shown, f),
    tip: (p, shown) => {
      if (shown.length === 0) return null;
      const rows = shown.map((r) => {
        const b = stage(r, p.split, false);
        const a = stage(r, p.split, true);
        return tipRow(
          r,
          r.colour,
          { "data-split": p.split, "data-measure": p.measure },
          h("b", { testid: "tip-before" }, valueText(p.measure, b?.[p.measure])),
          " → ",
          h("b", { testid: "tip-after" }, valueText(p.measure, a?.[p.measure])),
          h("span", { class: "muted" }, ` (n = ${a?.n ?? b?.n ?? 0})`),
        );
      });
      return { head: `${MEASURE_TITLE[p.measure]} · ${SPLIT_TITLE[p.split]}, before → after`, rows };
    },
  });
}

function drawPanel(svg: SVGElement, kind: BeforeAfterKind, p: PanelSpec, shown: BeforeAfterRun[], f: Frame): void {
  const slope = kind === "label_prob_slope";
  axes(svg, f, {
    yTicks: [0, 0.25, 0.5, 0.75, 1],
    yText: (t) => tick(p.measure, t),
    xTicks: slope ? [[0.15, "before"], [0.85, "after"]] : undefined,
    title: `${MEASURE_TITLE[p.measure]} · ${SPLIT_TITLE[p.split]}`,
  });
  const any = shown.some((r) => stage(r, p.split, false) || stage(r, p.split, true));
  if (!any) {
    panelMessage(svg, f, shown.length ? `no ${SPLIT_TITLE[p.split]} samples scored` : "every run is hidden");
  } else if (!slope) {
    const inner = f.sx(1) - f.sx(0);
    const slot = inner / Math.max(shown.length, 2);
    const x0 = f.sx(0) + (inner - slot * shown.length) / 2;
    shown.forEach((r, k) => {
      for (const after of [false, true]) {
        const v = stage(r, p.split, after)?.[p.measure];
        if (v === null || v === undefined) continue;
        const x = x0 + k * slot + slot * (after ? 0.5 : 0.1);
        const w = slot * 0.4;
        svg.appendChild(svgEl("rect", { x, y: f.sy(v), width: w, height: f.sy(0) - f.sy(v), fill: r.colour, "fill-opacity": after ? 1 : 0.4, "data-run": r.run_id, "data-stage": after ? "after" : "before" }));
        if (shown.length <= 6) svg.appendChild(svgEl("text", { x: x + w / 2, y: f.sy(v) - 4, "text-anchor": "middle", fill: "#333" }, tick(p.measure, v)));
      }
    });
  } else {
    const [xb, xa] = [f.sx(0.15), f.sx(0.85)];
    for (const r of shown) {
      const b = stage(r, p.split, false)?.[p.measure];
      const a = stage(r, p.split, true)?.[p.measure];
      if (b == null || a == null) continue;
      svg.appendChild(svgEl("line", { x1: xb, x2: xa, y1: f.sy(b), y2: f.sy(a), stroke: r.colour, "stroke-width": 2.5, "data-run": r.run_id }));
      svg.appendChild(svgEl("circle", { cx: xb, cy: f.sy(b), r: 4, fill: r.colour, "data-run": r.run_id, "data-stage": "before" }));
      svg.appendChild(svgEl("circle", { cx: xa, cy: f.sy(a), r: 4, fill: r.colour, "data-run": r.run_id, "data-stage": "after" }));
    }
  }
}
