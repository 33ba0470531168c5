// Interactive charts of the per-sample scores, drawn in the page (the exported charts stay the core's plotters
// SVG/PNG): the distribution of p(right caption), the reliability diagram, the accuracy per answer letter, and one
// run's per-sample slope chart. The bins and counts are the core's own (`report::analysis`: `label_prob_hist`,
// `run_calibration`, `letter_accuracy`, `chance_level`, `slope_subset`, sent in the run and compare views), so the
// page and the exported charts count alike; only the geometry is done here.

import type { Calibration, Histogram, LetterScore, ReliabilityBin, RunScoreCharts, SampleDelta, Split, SplitScoreCharts } from "./bindings";
import { axes, hoverBand, panelMessage, panelsChart, svgEl, tipRow, type ChartRun } from "./chart";
import { h } from "./dom";

/** One run as the score charts show it. */
export type ScoreRun = ChartRun & { scores: RunScoreCharts };

const SPLITS: Split[] = ["train", "heldout"];
const SPLIT_TITLE: Record<Split, string> = { train: "train", heldout: "held-out" };
/** The base model's "before" (grey, as in the exported charts). */
const BEFORE = "#9A9A9A";
const GAIN = "#1B9E3E";
const LOSS = "#D22B2B";
const SAME = "#B4B4B4";
/** |Δ| at most this counts as "about the same" (as in the exported slope chart). */
const SAME_BAND = 0.02;

/** A probability as the tooltips show it (the GUI test formats the store's value alike). */
export function probText(x: number | null | undefined): string {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : x.toFixed(4);
}

function pctText(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(digits)}%`;
}

function splitOf(r: ScoreRun, split: Split): SplitScoreCharts | undefined {
  return r.scores.splits.find((s) => s.split === split);
}

/** A series of a panel: the base model before fine-tuning (the first shown run scored before), then each run
 *  after. */
type Series<T> = { run: ScoreRun; stage: "before" | "after"; colour: string; data: T };

function series<T extends { n: number }>(shown: ScoreRun[], split: Split, before: (s: SplitScoreCharts) => T, after: (s: SplitScoreCharts) => T): Series<T>[] {
  const out: Series<T>[] = [];
  const base = shown.find((r) => { const s = splitOf(r, split); return s !== undefined && before(s).n > 0; });
  const bs = base && splitOf(base, split);
  if (base && bs) out.push({ run: base, stage: "before", colour: BEFORE, data: before(bs) });
  for (const r of shown) {
    const s = splitOf(r, split);
    if (s && after(s).n > 0) out.push({ run: r, stage: "after", colour: r.colour, data: after(s) });
  }
  return out;
}

function stageText(s: Series<unknown>, runs: number): string {
  if (s.stage === "after") return "after";
  return runs > 1 ? "before (base model)" : "before";
}

/** The distribution of p(right caption) per split: grey bars before fine-tuning, each run after in its colour
 *  (one run: bars; several: outlines). Hover shows the bin's range and each series' count. */
export function histChart(runs: ScoreRun[], testid: string, title: string): HTMLElement {
  const hists = (shown: ScoreRun[], split: Split) => series<Histogram>(shown, split, (s) => s.hist_before, (s) => s.hist_after);
  const share = (h: Histogram, k: number) => (h.bins[k]?.count ?? 0) / Math.max(h.n, 1);
  // The y axis: a little above the tallest bin of the series shown.
  const top = (shown: ScoreRun[], split: Split) => {
    const most = Math.max(0, ...hists(shown, split).flatMap((s) => s.data.bins.map((_, k) => share(s.data, k))));
    return most > 0 ? Math.min(1, most * 1.1) : 1;
  };
  return panelsChart<ScoreRun, Split>({
    runs,
    panels: SPLITS,
    kind: "label_prob_hist",
    testid,
    title,
    key: runs.length > 1 ? "grey bars: base model before fine-tuning · outlines: each run after" : "grey: before · colour: after fine-tuning",
    name: (s) => s,
    domain: (split, shown) => ({ x: [0, 1], y: [0, top(shown, split)] }),
    draw: (svg, split, shown, f) => {
      const ss = hists(shown, split);
      const y1 = top(shown, split);
      const step = y1 > 0.5 ? 0.2 : y1 > 0.2 ? 0.1 : y1 > 0.1 ? 0.05 : 0.02;
      const ticks: number[] = [];
      for (let t = 0; t <= y1 + 1e-9 && ticks.length < 12; t += step) ticks.push(Number(t.toFixed(4)));
      const n = Math.max(0, ...ss.map((s) => s.data.n));
      axes(svg, f, { yTicks: ticks, yText: (t) => pctText(t, 0), xTicks: [0, 0.25, 0.5, 0.75, 1].map((v) => [v, v.toFixed(2)]), yLabel: "share of samples", title: `p(right caption) · ${SPLIT_TITLE[split]} · ${n} samples` });
      if (ss.length === 0) return panelMessage(svg, f, shown.length ? `no ${SPLIT_TITLE[split]} samples scored` : "every run is hidden");
      const bars = shown.length <= 1;
      for (const s of ss) {
        const hist = s.data;
        if (s.stage === "before" || bars) {
          hist.bins.forEach((b, k) => {
            if (b.count === 0) return;
            svg.appendChild(svgEl("rect", { x: f.sx(b.lo), y: f.sy(share(hist, k)), width: Math.max(0, f.sx(b.hi) - f.sx(b.lo) - 1), height: f.sy(0) - f.sy(share(hist, k)), fill: s.colour, "fill-opacity": s.stage === "before" ? 0.45 : 0.4, "data-run": s.run.run_id, "data-stage": s.stage, "data-bin": k, "data-count": b.count }));
          });
        }
        const pts: string[] = [`${f.sx(0)},${f.sy(0)}`];
        hist.bins.forEach((b, k) => pts.push(`${f.sx(b.lo)},${f.sy(share(hist, k))}`, `${f.sx(b.hi)},${f.sy(share(hist, k))}`));
        pts.push(`${f.sx(1)},${f.sy(0)}`);
        svg.appendChild(svgEl("polyline", { points: pts.join(" "), fill: "none", stroke: s.colour, "stroke-width": 2, "data-run": s.run.run_id, "data-stage": s.stage }));
      }
    },
    tip: (split, shown, x, _y, f, svg) => {
      const ss = hists(shown, split);
      const bins = ss[0]?.data.bins;
      if (!bins || x < 0 || x > 1) return null;
      const k = Math.min(bins.length - 1, Math.max(0, Math.floor(x * bins.length)));
      const b = bins[k];
      hoverBand(svg, f, b.lo, b.hi);
      const rows = ss.map((s) => {
        const c = s.data.bins[k]?.count ?? 0;
        return tipRow(s.run, s.colour, { "data-stage": s.stage, "data-bin": k }, `${stageText(s, shown.length)} · `, h("b", { testid: "tip-count" }, String(c)), h("span", { class: "muted" }, ` of ${s.data.n} (${pctText(c / Math.max(s.data.n, 1))})`));
      });
      return { head: `p(right caption) ${b.lo.toFixed(2)}–${b.hi.toFixed(2)} · ${SPLIT_TITLE[split]}`, rows };
    },
  });
}

/** The reliability diagram per split: accuracy against top-choice confidence, a dot per bin sized by its
 *  samples, the base model before in grey and each run after in its colour. Hover shows the confidence bin's
 *  mean confidence, accuracy and count per series. */
export function calibrationChart(runs: ScoreRun[], testid: string, title: string): HTMLElement {
  const cals = (shown: ScoreRun[], split: Split) => series<Calibration>(shown, split, (s) => s.calibration_before, (s) => s.calibration_after);
  return panelsChart<ScoreRun, Split>({
    runs,
    panels: SPLITS,
    kind: "calibration",
    testid,
    title,
    key: `${runs.length > 1 ? "grey: base model before fine-tuning" : "grey: before"} · dot size: samples in the bin · dashed: perfect calibration`,
    name: (s) => s,
    domain: () => ({ x: [0, 1], y: [0, 1] }),
    draw: (svg, split, shown, f) => {
      const ss = cals(shown, split);
      const ece = ss.length <= 2 ? ` · ECE ${ss.map((s) => `${s.stage} ${s.data.ece?.toFixed(3) ?? "–"}`).join(", ")}` : "";
      const ticks = [0, 0.25, 0.5, 0.75, 1];
      axes(svg, f, { yTicks: ticks, yText: (t) => pctText(t, 0), xTicks: ticks.map((v) => [v, v.toFixed(2)]), yLabel: "accuracy", title: `top-choice confidence · ${SPLIT_TITLE[split]}${ece}` });
      svg.appendChild(svgEl("line", { x1: f.sx(0), y1: f.sy(0), x2: f.sx(1), y2: f.sy(1), stroke: "#808080", "stroke-dasharray": "4 4" }));
      if (ss.length === 0) return panelMessage(svg, f, shown.length ? `no ${SPLIT_TITLE[split]} samples scored` : "every run is hidden");
      const most = Math.max(1, ...ss.flatMap((s) => s.data.bins.map((b) => b.count)));
      for (const s of ss) {
        const pts = s.data.bins.filter((b): b is ReliabilityBin & { mean_confidence: number; accuracy: number } => b.mean_confidence != null && b.accuracy != null);
        svg.appendChild(svgEl("polyline", { points: pts.map((b) => `${f.sx(b.mean_confidence)},${f.sy(b.accuracy)}`).join(" "), fill: "none", stroke: s.colour, "stroke-width": 2, "data-run": s.run.run_id, "data-stage": s.stage }));
        for (const b of pts) svg.appendChild(svgEl("circle", { cx: f.sx(b.mean_confidence), cy: f.sy(b.accuracy), r: 2 + 5 * Math.sqrt(b.count / most), fill: s.colour, "fill-opacity": 0.85, "data-run": s.run.run_id, "data-stage": s.stage, "data-bin": s.data.bins.indexOf(b), "data-count": b.count }));
      }
    },
    tip: (split, shown, x, _y, f, svg) => {
      const ss = cals(shown, split);
      const bins = ss[0]?.data.bins;
      if (!bins || x < 0 || x > 1) return null;
      // The bin whose confidence range holds x (the core's binning: the last bin includes 1).
      const k = Math.min(bins.length - 1, Math.max(0, Math.floor(x * bins.length + 1e-6)));
      const b = bins[k];
      hoverBand(svg, f, b.lo, b.hi);
      const rows = ss.map((s) => {
        const c = s.data.bins[k];
        return tipRow(s.run, s.colour, { "data-stage": s.stage, "data-bin": k }, `${stageText(s, shown.length)} · confidence `, h("b", { testid: "tip-confidence" }, probText(c?.mean_confidence)), " · accuracy ", h("b", { testid: "tip-accuracy" }, pctText(c?.accuracy, 2)), " · ", h("b", { testid: "tip-count" }, String(c?.count ?? 0)), h("span", { class: "muted" }, ` samples (ECE ${s.data.ece?.toFixed(3) ?? "–"})`));
      });
      return { head: `confidence ${b.lo.toFixed(2)}–${b.hi.toFixed(2)} · ${SPLIT_TITLE[split]}`, rows };
    },
  });
}

/** The letters' accuracies of one stage, with the samples scored (what `series` needs). */
type LetterBars = { n: number; acc: (number | null)[] };

function letterBars(s: SplitScoreCharts, after: boolean): LetterBars {
  return { n: s.letters.reduce((a, l) => a + (after ? l.n_after : l.n_before), 0), acc: s.letters.map((l) => (after ? l.accuracy_after : l.accuracy_before)) };
}

/** Accuracy per answer letter per split (the samples whose right caption is at that letter): the base model
 *  before in grey and each run after in its colour, the chance of guessing dashed; one letter far above the others
 *  is a positional shortcut. Hover on a letter shows per run its accuracy before → after and the samples whose
 *  right answer it is. */
export function lettersChart(runs: ScoreRun[], testid: string, title: string): HTMLElement {
  const bars = (shown: ScoreRun[], split: Split) => series<LetterBars>(shown, split, (s) => letterBars(s, false), (s) => letterBars(s, true));
  const letters = (shown: ScoreRun[], split: Split): LetterScore[][] => shown.map((r) => splitOf(r, split)?.letters ?? []);
  const count = (shown: ScoreRun[], split: Split) => Math.max(5, ...letters(shown, split).map((l) => l.length));
  return panelsChart<ScoreRun, Split>({
    runs,
    panels: SPLITS,
    kind: "letters",
    testid,
    title,
    key: `${runs.length > 1 ? "grey: base model before fine-tuning" : "grey: before"} · colour: after · dashed: chance of guessing`,
    name: (s) => s,
    // Room above 100% for a bar's label.
    domain: (split, shown) => ({ x: [0, count(shown, split)], y: [0, 1.08] }),
    draw: (svg, split, shown, f) => {
      const ss = bars(shown, split);
      const ls = letters(shown, split);
      const n = count(shown, split);
      // Under each letter its samples, when the runs shown agree on them.
      const xTicks: [number, string][] = Array.from({ length: n }, (_, c) => {
        const ns = new Set(ls.map((l) => l[c]?.n ?? 0));
        const name = ls.find((l) => l[c])?.[c].letter ?? "";
        return [c + 0.5, ns.size === 1 ? `${name} (n=${[...ns][0]})` : name];
      });
      axes(svg, f, { yTicks: [0, 0.25, 0.5, 0.75, 1], yText: (t) => pctText(t, 0), xTicks, yLabel: "accuracy", title: `${SPLIT_TITLE[split]} · letter of the right caption` });
      if (ss.length === 0) return panelMessage(svg, f, shown.length ? `no ${SPLIT_TITLE[split]} samples scored` : "every run is hidden");
      const w = 0.8 / ss.length;
      const labels = ss.length * n <= 12;
      ss.forEach((s, k) =>
        s.data.acc.forEach((v, c) => {
          if (v === null) return;
          const x = c + 0.1 + k * w;
          svg.appendChild(svgEl("rect", { x: f.sx(x), y: f.sy(v), width: Math.max(0, f.sx(x + w) - f.sx(x) - 1), height: f.sy(0) - f.sy(v), fill: s.colour, "data-run": s.run.run_id, "data-stage": s.stage, "data-letter": c }));
          if (labels) svg.appendChild(svgEl("text", { x: f.sx(x + w / 2), y: f.sy(v) - 4, "text-anchor": "middle", fill: "#333" }, pctText(v, 0)));
        }),
      );
      for (const c of new Set(shown.flatMap((r) => (r.scores.chance == null ? [] : [r.scores.chance.toFixed(4)])))) {
        svg.appendChild(svgEl("line", { x1: f.sx(0), x2: f.sx(n), y1: f.sy(Number(c)), y2: f.sy(Number(c)), stroke: "#808080", "stroke-dasharray": "4 4", class: "chance" }));
      }
    },
    tip: (split, shown, x, _y, f, svg) => {
      const n = count(shown, split);
      if (shown.length === 0 || x < 0 || x > n) return null;
      const c = Math.min(n - 1, Math.floor(x));
      hoverBand(svg, f, c, c + 1);
      let name = "";
      const rows = shown.map((r) => {
        const l = splitOf(r, split)?.letters[c];
        name ||= l?.letter ?? "";
        return tipRow(r, r.colour, { "data-split": split, "data-letter": c }, h("b", { testid: "tip-before" }, pctText(l?.accuracy_before, 2)), " → ", h("b", { testid: "tip-after" }, pctText(l?.accuracy_after, 2)), " · ", h("b", { testid: "tip-count" }, String(l?.n ?? 0)), h("span", { class: "muted" }, ` samples · the top choice ${l?.predicted_before ?? 0} → ${l?.predicted_after ?? 0} times`));
      });
      return { head: `right caption at ${name} · ${SPLIT_TITLE[split]} · accuracy before → after`, rows };
    },
  });
}

/** One run's p(right caption) before → after, a line per sample (gains green, losses red, the rest grey) and the
 *  run's mean in its colour. Hover shows the sample nearest the pointer: its id, file, right caption and exact
 *  p(right caption) before and after. `total`: samples with both (the lines may be a subset). */
export function sampleSlopeChart(run: ChartRun, samples: SampleDelta[], total: number, testid: string, title: string): HTMLElement {
  const count = (f: (d: SampleDelta) => boolean) => samples.filter(f).length;
  const gains = count((d) => d.delta > SAME_BAND);
  const losses = count((d) => d.delta < -SAME_BAND);
  const subset = samples.length < total ? ` · showing ${samples.length} of ${total} samples (a fixed random subset)` : "";
  const colourOf = (d: SampleDelta) => (d.delta > SAME_BAND ? GAIN : d.delta < -SAME_BAND ? LOSS : SAME);
  // Per split, small changes first so the big ones are drawn on top.
  const ofSplit = (split: Split) => samples.filter((d) => d.split === split).sort((a, b) => Math.abs(a.delta) - Math.abs(b.delta));
  const [XB, XA] = [0, 1];
  return panelsChart<ChartRun, Split>({
    runs: [run],
    panels: SPLITS,
    kind: "label_prob_slope",
    testid,
    title,
    legend: false,
    key: `green: rose by more than ${SAME_BAND} (${gains}) · red: fell by more than ${SAME_BAND} (${losses}) · grey: within ±${SAME_BAND} (${samples.length - gains - losses}) · thick: the run's mean${subset}`,
    name: (s) => s,
    domain: () => ({ x: [-0.12, 1.12], y: [0, 1] }),
    draw: (svg, split, _shown, f) => {
      const ds = ofSplit(split);
      axes(svg, f, { yTicks: [0, 0.25, 0.5, 0.75, 1], yText: (t) => t.toFixed(2), xTicks: [[XB, "before"], [XA, "after"]], yLabel: "p(right caption)", title: `${SPLIT_TITLE[split]} · ${ds.length} samples` });
      if (ds.length === 0) return panelMessage(svg, f, `no ${SPLIT_TITLE[split]} samples with before and after`);
      const alpha = Math.min(0.7, Math.max(0.15, 6 / Math.sqrt(ds.length)));
      for (const d of ds) {
        svg.appendChild(svgEl("line", { x1: f.sx(XB), y1: f.sy(d.before), x2: f.sx(XA), y2: f.sy(d.after), stroke: colourOf(d), "stroke-opacity": alpha, "stroke-width": 1.5, "data-sample": d.sample_id }));
      }
      const mb = ds.reduce((a, d) => a + d.before, 0) / ds.length;
      const ma = ds.reduce((a, d) => a + d.after, 0) / ds.length;
      svg.appendChild(svgEl("line", { x1: f.sx(XB), y1: f.sy(mb), x2: f.sx(XA), y2: f.sy(ma), stroke: run.colour, "stroke-width": 3, "data-run": run.run_id }));
      for (const [x, m, anchor, dx] of [[XB, mb, "end", -9], [XA, ma, "start", 9]] as const) {
        svg.appendChild(svgEl("circle", { cx: f.sx(x), cy: f.sy(m), r: 5, fill: run.colour }));
        svg.appendChild(svgEl("text", { x: f.sx(x) + dx, y: f.sy(m) + 4, "text-anchor": anchor, fill: "#333" }, m.toFixed(2)));
      }
      svg.appendChild(svgEl("line", { class: "hover-sample hover-mark", x1: 0, y1: 0, x2: 0, y2: 0, stroke: "#111", "stroke-width": 2.5, visibility: "hidden" }));
    },
    tip: (split, _shown, x, y, f, svg) => {
      // The line nearest the pointer, in pixels; the top-most (drawn last) wins a tie.
      const [px, py] = [f.sx(x), f.sy(y)];
      let best: SampleDelta | undefined;
      let bestDist = 10;
      for (const d of ofSplit(split).reverse()) {
        const dist = segmentDistance(px, py, f.sx(XB), f.sy(d.before), f.sx(XA), f.sy(d.after));
        if (dist < bestDist) [best, bestDist] = [d, dist];
      }
      const mark = svg.querySelector(".hover-sample");
      if (!best) {
        mark?.setAttribute("visibility", "hidden");
        return null;
      }
      for (const [k, v] of [["x1", f.sx(XB)], ["y1", f.sy(best.before)], ["x2", f.sx(XA)], ["y2", f.sy(best.after)]] as const) mark?.setAttribute(k, String(v));
      mark?.setAttribute("visibility", "visible");
      const d = best;
      const row = h(
        "div",
        { testid: "tip-sample", attrs: { "data-sample": d.sample_id } },
        h("span", { class: "swatch", style: `background:${colourOf(d)}` }),
        " p(right caption) ",
        h("b", { testid: "tip-before" }, probText(d.before)),
        " → ",
        h("b", { testid: "tip-after" }, probText(d.after)),
        h("span", { class: "muted" }, ` (${d.delta >= 0 ? "+" : ""}${(d.delta * 100).toFixed(1)} pts)`),
      );
      return { head: `sample #${d.sample_id} · ${d.filename} · ${SPLIT_TITLE[d.split]} · right caption: choice ${d.label + 1}`, rows: [row] };
    },
  });
}

/** Distance from (px, py) to the segment (x1, y1)–(x2, y2). */
function segmentDistance(px: number, py: number, x1: number, y1: number, x2: number, y2: number): number {
  const [dx, dy] = [x2 - x1, y2 - y1];
  const len2 = dx * dx + dy * dy;
  const t = len2 > 0 ? Math.min(1, Math.max(0, ((px - x1) * dx + (py - y1) * dy) / len2)) : 0;
  return Math.hypot(px - (x1 + t * dx), py - (y1 + t * dy));
}
