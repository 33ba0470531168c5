// Interactive before → after charts drawn in the page (the exported charts stay the core's plotters SVG/PNG):
// mean p(right caption) and accuracy, before and after fine-tuning, per split. The numbers are the store's own
// (each run's `RunMetrics`, as the runner recorded them); nothing is computed here but the geometry. Hover shows
// every visible run's exact before and after values in the panel under the pointer; clicking a legend entry hides
// a run.

import type { RunMetrics, Summary } from "./bindings";
import { legendEntries, svgEl } from "./chart";
import { h } from "./dom";

// Drawn in CSS pixels at the width they get, so text sizes are what the screen shows.
const FONT = 12;
const HEIGHT = 250;
const PAD = { l: 52, r: 14, t: 12, b: 34 };

/** One run as the before → after charts show it. */
export type BeforeAfterRun = { run_id: number; label: string; colour: string; metrics: RunMetrics };

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
  const hidden = new Set<number>();
  const plot = h("div", { class: "ba-grid" });
  const tip = h("div", { class: "chart-tip", testid: "chart-tooltip" });
  const legend = h("div", { class: "chart-legend", testid: "chart-legend" });

  const drawLegend = () => {
    legend.replaceChildren(...legendEntries(runs, hidden, () => draw()));
    if (kind === "metrics") legend.appendChild(h("span", { class: "small muted ba-key" }, "light bar: before · solid bar: after"));
  };

  const draw = () => {
    drawLegend();
    const shown = runs.filter((r) => !hidden.has(r.run_id));
    const total = Math.max(320, plot.clientWidth || 900);
    const cols = total >= 640 ? 2 : 1;
    const width = Math.floor((total - (cols - 1) * 12) / cols);
    plot.replaceChildren(...panels.map((p) => panel(p, shown, width)));
  };

  const panel = (p: PanelSpec, shown: BeforeAfterRun[], width: number): SVGElement => {
    const svg = svgEl("svg", { width, height: HEIGHT, style: `width:${width}px;height:${HEIGHT}px`, viewBox: `0 0 ${width} ${HEIGHT}`, "font-size": FONT, "font-family": "inherit", "data-panel": `${p.split}-${p.measure}` });
    const sy = (v: number) => HEIGHT - PAD.b - v * (HEIGHT - PAD.t - PAD.b);
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      svg.appendChild(svgEl("line", { x1: PAD.l, x2: width - PAD.r, y1: sy(t), y2: sy(t), stroke: "#eceef4" }));
      svg.appendChild(svgEl("text", { x: PAD.l - 6, y: sy(t) + 4, "text-anchor": "end", fill: "#555" }, tick(p.measure, t)));
    }
    svg.appendChild(svgEl("text", { x: (PAD.l + width - PAD.r) / 2, y: HEIGHT - 8, "text-anchor": "middle", fill: "#333", "font-weight": 600 }, `${MEASURE_TITLE[p.measure]} · ${SPLIT_TITLE[p.split]}`));
    const inner = width - PAD.l - PAD.r;
    const any = shown.some((r) => stage(r, p.split, false) || stage(r, p.split, true));
    if (!any) {
      svg.appendChild(svgEl("text", { x: PAD.l + inner / 2, y: sy(0.5), "text-anchor": "middle", fill: "#888" }, shown.length ? `no ${SPLIT_TITLE[p.split]} samples scored` : "every run is hidden"));
    } else if (kind === "metrics") {
      const slot = inner / Math.max(shown.length, 2);
      const x0 = PAD.l + (inner - slot * shown.length) / 2;
      shown.forEach((r, k) => {
        for (const after of [false, true]) {
          const v = stage(r, p.split, after)?.[p.measure];
          if (v === null || v === undefined) continue;
          const x = x0 + k * slot + slot * (after ? 0.5 : 0.1);
          const w = slot * 0.4;
          svg.appendChild(svgEl("rect", { x, y: sy(v), width: w, height: sy(0) - sy(v), fill: r.colour, "fill-opacity": after ? 1 : 0.4, "data-run": r.run_id, "data-stage": after ? "after" : "before" }));
          if (shown.length <= 6) svg.appendChild(svgEl("text", { x: x + w / 2, y: sy(v) - 4, "text-anchor": "middle", fill: "#333" }, tick(p.measure, v)));
        }
      });
    } else {
      const xb = PAD.l + inner * 0.15;
      const xa = PAD.l + inner * 0.85;
      svg.appendChild(svgEl("text", { x: xb, y: HEIGHT - PAD.b + 15, "text-anchor": "middle", fill: "#555" }, "before"));
      svg.appendChild(svgEl("text", { x: xa, y: HEIGHT - PAD.b + 15, "text-anchor": "middle", fill: "#555" }, "after"));
      for (const r of shown) {
        const b = stage(r, p.split, false)?.[p.measure];
        const a = stage(r, p.split, true)?.[p.measure];
        if (b == null || a == null) continue;
        svg.appendChild(svgEl("line", { x1: xb, x2: xa, y1: sy(b), y2: sy(a), stroke: r.colour, "stroke-width": 2.5, "data-run": r.run_id }));
        svg.appendChild(svgEl("circle", { cx: xb, cy: sy(b), r: 4, fill: r.colour, "data-run": r.run_id, "data-stage": "before" }));
        svg.appendChild(svgEl("circle", { cx: xa, cy: sy(a), r: 4, fill: r.colour, "data-run": r.run_id, "data-stage": "after" }));
      }
    }
    svg.addEventListener("mousemove", (e) => hover(svg, p, shown, e));
    svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    return svg;
  };

  const hover = (svg: SVGElement, p: PanelSpec, shown: BeforeAfterRun[], e: MouseEvent) => {
    if (shown.length === 0) return;
    const rows = shown.map((r) => {
      const b = stage(r, p.split, false);
      const a = stage(r, p.split, true);
      return h(
        "div",
        { testid: `tip-run-${r.run_id}`, attrs: { "data-split": p.split, "data-measure": p.measure } },
        h("span", { class: "swatch", style: `background:${r.colour}` }),
        ` ${r.label}: `,
        h("b", { testid: "tip-before" }, valueText(p.measure, b?.[p.measure])),
        " → ",
        h("b", { testid: "tip-after" }, valueText(p.measure, a?.[p.measure])),
        h("span", { class: "muted" }, ` (n = ${a?.n ?? b?.n ?? 0})`),
      );
    });
    tip.replaceChildren(h("div", { class: "muted", testid: "tip-panel" }, `${MEASURE_TITLE[p.measure]} · ${SPLIT_TITLE[p.split]}, before → after`), ...rows);
    tip.style.display = "block";
    const wrap = plot.getBoundingClientRect();
    const r = svg.getBoundingClientRect();
    const px = e.clientX - wrap.left;
    tip.style.left = `${Math.max(0, Math.min(px + 14, wrap.width - 300))}px`;
    tip.style.top = `${r.top - wrap.top + PAD.t}px`;
  };

  const fig = h(
    "figure",
    { class: "chart interactive", testid, attrs: { "data-chart": kind } },
    h("div", { class: "chart-head" }, h("b", null, title)),
    h("div", { class: "plot-wrap" }, plot, tip),
    legend,
  );
  requestAnimationFrame(draw);
  const ro = new ResizeObserver(() => draw());
  ro.observe(plot);
  draw();
  return fig;
}
