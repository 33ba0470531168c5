// The charts drawn in the page (the exported charts stay the core's plotters SVG/PNG): the interactive loss charts
// (per step: hover shows every visible run's exact loss at that step, clicking a legend entry hides a run, a
// smoothing slider (an exponential moving average with W&B's debiasing), log scale, and x by step or epoch; per
// epoch: train solid and held-out dashed, hover shows every visible run's exact train and held-out loss at that
// epoch, legend, log scale), and what every interactive chart shares: its figure (`interactiveFigure`), the legend
// that hides a run (`legendEntries`), the log-scale toggle (`logScaleToggle`), and charts of panels (`panelsChart`,
// with `axes`, `tipRow`, `hoverBand`, `hoverLine`), which the epoch-loss chart, beforeafter.ts and scorecharts.ts
// draw with.

import type { RunSeries } from "./bindings";
import { h, select } from "./dom";

const NS = "http://www.w3.org/2000/svg";
// The SVG is drawn in CSS pixels at the width it gets, so text sizes are what the screen shows.
const FONT = 12;
const HEIGHT = 300;
const PAD = { l: 58, r: 16, t: 14, b: 40 };

type Pt = { x: number; step: number; epoch: number; loss: number; shown: number };

/** EMA with the debiasing W&B uses: `s_t = (a·s_{t-1} + (1-a)·x_t)`, divided by `1 - a^t`. */
export function smooth(ys: number[], a: number): number[] {
  if (a <= 0) return ys.slice();
  let s = 0;
  return ys.map((y, i) => {
    s = a * s + (1 - a) * y;
    return s / (1 - a ** (i + 1));
  });
}

/** x of each step: the step, or the epoch with the steps spread over it (epoch 1's steps between 0 and 1). */
function xs(series: RunSeries, byEpoch: boolean): number[] {
  if (!byEpoch) return series.steps.map((s) => s.step);
  const perEpoch = new Map<number, number>();
  for (const s of series.steps) perEpoch.set(s.epoch, (perEpoch.get(s.epoch) ?? 0) + 1);
  const seen = new Map<number, number>();
  return series.steps.map((s) => {
    const k = seen.get(s.epoch) ?? 0;
    seen.set(s.epoch, k + 1);
    return s.epoch - 1 + (k + 1) / (perEpoch.get(s.epoch) ?? 1);
  });
}

/** A loss value as the tooltip shows it (the test compares it with the store's, formatted alike). */
export function lossText(x: number): string {
  return x.toFixed(5);
}

/** About `n` round ticks from `lo` to `hi`. */
function niceTicks(lo: number, hi: number, n: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A loss axis tick's text: `t` is the loss, or its log10 when `log`. */
function lossTick(t: number, log: boolean): string {
  return Number((log ? 10 ** t : t).toPrecision(3)).toString();
}

/** The loss charts' log-scale checkbox (`log-scale`) in its label; `changed` gets its state. */
export function logScaleToggle(changed: (on: boolean) => void): HTMLElement {
  const box = h("input", { testid: "log-scale", attrs: { type: "checkbox" } });
  box.addEventListener("input", () => changed(box.checked));
  return h("label", { class: "inline-group small" }, box, "log scale");
}

export function svgEl(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A legend entry per run: a button that hides or shows the run (kept in `hidden`) and then calls `redraw`. */
export function legendEntries(
  runs: { run_id: number; label: string; colour: string }[],
  hidden: Set<number>,
  redraw: () => void,
): HTMLElement[] {
  return runs.map((r) =>
    h(
      "button",
      {
        class: `legend-entry${hidden.has(r.run_id) ? " off" : ""}`,
        testid: `legend-${r.run_id}`,
        title: hidden.has(r.run_id) ? "Show this run" : "Hide this run",
        on: { click: () => { if (hidden.has(r.run_id)) hidden.delete(r.run_id); else hidden.add(r.run_id); redraw(); } },
      },
      h("span", { class: "swatch", style: `background:${r.colour}` }),
      r.label,
    ),
  );
}

/** The interactive step-loss chart of `series` (a figure with `testid`, its polylines in each run's colour). */
export function lossChart(series: RunSeries[], testid: string, title = "Training loss per step"): HTMLElement {
  const hidden = new Set<number>();
  const smoothing = h("input", { testid: "smoothing", attrs: { type: "range", min: 0, max: 0.99, step: 0.01, value: 0 } });
  const smoothText = h("span", { class: "small muted", testid: "smoothing-value" }, "0");
  let log = false;
  const logScale = logScaleToggle((on) => { log = on; draw(); });
  const xAxis = select("x-axis", [["step", "x: step"], ["epoch", "x: epoch"]]);
  const plot = h("div", { class: "plot" });
  const tip = h("div", { class: "chart-tip", testid: "chart-tooltip" });
  const legend = h("div", { class: "chart-legend", testid: "chart-legend" });
  let pts: Map<number, Pt[]> = new Map();
  let scale = { x: (v: number) => v, y: (v: number) => v, x0: 0, x1: 1 };

  const drawLegend = () => {
    legend.replaceChildren(...legendEntries(series, hidden, () => draw()));
  };

  const draw = () => {
    drawLegend();
    const a = Number(smoothing.value);
    smoothText.textContent = a.toFixed(2);
    const byEpoch = xAxis.value === "epoch";
    const width = Math.max(320, plot.clientWidth || 640);
    pts = new Map();
    for (const s of series) {
      if (hidden.has(s.run_id) || s.steps.length === 0) continue;
      const x = xs(s, byEpoch);
      const sm = smooth(s.steps.map((p) => p.loss), a);
      pts.set(s.run_id, s.steps.map((p, i) => ({ x: x[i], step: p.step, epoch: p.epoch, loss: p.loss, shown: sm[i] })));
    }
    const all = [...pts.values()].flat();
    const svg = svgEl("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, "font-size": FONT, "font-family": "inherit" });
    if (all.length === 0) {
      svg.appendChild(svgEl("text", { x: width / 2, y: HEIGHT / 2, "text-anchor": "middle", fill: "#888" }, series.some((s) => s.steps.length) ? "every run is hidden" : "no step recorded yet"));
      plot.replaceChildren(svg);
      return;
    }
    const ty = (v: number) => (log ? Math.log10(Math.max(v, 1e-12)) : v);
    const x0 = Math.min(...all.map((p) => p.x));
    const x1 = Math.max(...all.map((p) => p.x), x0 + 1);
    const ys = all.flatMap((p) => [ty(p.shown), ty(p.loss)]);
    let y0 = Math.min(...ys);
    let y1 = Math.max(...ys);
    if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
    const sx = (v: number) => PAD.l + ((v - x0) / (x1 - x0)) * (width - PAD.l - PAD.r);
    const sy = (v: number) => HEIGHT - PAD.b - ((ty(v) - y0) / (y1 - y0)) * (HEIGHT - PAD.t - PAD.b);
    scale = { x: sx, y: sy, x0, x1 };
    // Axes, grid and labels.
    for (const t of niceTicks(x0, x1, 8)) {
      svg.appendChild(svgEl("line", { x1: sx(t), x2: sx(t), y1: PAD.t, y2: HEIGHT - PAD.b, stroke: "#eceef4" }));
      svg.appendChild(svgEl("text", { x: sx(t), y: HEIGHT - PAD.b + 16, "text-anchor": "middle", fill: "#555" }, String(t)));
    }
    for (const t of niceTicks(y0, y1, 5)) {
      const y = HEIGHT - PAD.b - ((t - y0) / (y1 - y0)) * (HEIGHT - PAD.t - PAD.b);
      svg.appendChild(svgEl("line", { x1: PAD.l, x2: width - PAD.r, y1: y, y2: y, stroke: "#eceef4" }));
      svg.appendChild(svgEl("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end", fill: "#555" }, lossTick(t, log)));
    }
    svg.appendChild(svgEl("text", { x: (PAD.l + width - PAD.r) / 2, y: HEIGHT - 6, "text-anchor": "middle", fill: "#333" }, byEpoch ? "epoch" : "step"));
    svg.appendChild(svgEl("text", { x: 14, y: (PAD.t + HEIGHT - PAD.b) / 2, "text-anchor": "middle", fill: "#333", transform: `rotate(-90 14 ${(PAD.t + HEIGHT - PAD.b) / 2})` }, log ? "loss (log)" : "loss"));
    for (const s of series) {
      const p = pts.get(s.run_id);
      if (!p) continue;
      if (a > 0) {
        svg.appendChild(svgEl("polyline", { points: p.map((q) => `${sx(q.x).toFixed(1)},${sy(q.loss).toFixed(1)}`).join(" "), fill: "none", stroke: s.colour, "stroke-opacity": 0.25, "stroke-width": 1, class: "raw" }));
      }
      svg.appendChild(svgEl("polyline", { points: p.map((q) => `${sx(q.x).toFixed(1)},${sy(q.shown).toFixed(1)}`).join(" "), fill: "none", stroke: s.colour, "stroke-width": 2, "data-run": s.run_id }));
    }
    svg.appendChild(svgEl("line", { class: "hover-line", x1: 0, x2: 0, y1: PAD.t, y2: HEIGHT - PAD.b, stroke: "#888", "stroke-dasharray": "3 3", visibility: "hidden" }));
    svg.addEventListener("mousemove", (e) => hover(svg, e));
    svg.addEventListener("mouseleave", () => { tip.style.display = "none"; svg.querySelector(".hover-line")?.setAttribute("visibility", "hidden"); });
    plot.replaceChildren(svg);
  };

  const hover = (svg: SVGElement, e: MouseEvent) => {
    const r = svg.getBoundingClientRect();
    const px = e.clientX - r.left;
    const want = scale.x0 + ((px - PAD.l) / (r.width - PAD.l - PAD.r)) * (scale.x1 - scale.x0);
    // The step nearest the pointer among every visible run; each run's value at that x.
    let best: Pt | undefined;
    for (const p of pts.values()) for (const q of p) if (!best || Math.abs(q.x - want) < Math.abs(best.x - want)) best = q;
    if (!best) return;
    const at = best.x;
    const line = svg.querySelector(".hover-line");
    line?.setAttribute("x1", String(scale.x(at)));
    line?.setAttribute("x2", String(scale.x(at)));
    line?.setAttribute("visibility", "visible");
    const rows: HTMLElement[] = [];
    for (const s of series) {
        const q = pts.get(s.run_id)?.find((p) => p.x === at);
        if (!q) continue;
        const smoothed = Number(smoothing.value) > 0 ? h("span", { class: "muted" }, ` (smoothed ${lossText(q.shown)})`) : null;
        rows.push(h("div", { testid: `tip-run-${s.run_id}`, attrs: { "data-step": q.step } }, h("span", { class: "swatch", style: `background:${s.colour}` }), ` ${s.label}: `, h("b", { testid: "tip-value" }, lossText(q.loss)), smoothed));
    }
    tip.replaceChildren(h("div", { class: "muted", testid: "tip-step" }, `step ${best.step} · epoch ${best.epoch}`), ...rows);
    tip.style.display = "block";
    const left = Math.min(px + 14, r.width - 260);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${PAD.t}px`;
  };

  for (const el of [smoothing, xAxis]) el.addEventListener("input", draw);
  xAxis.addEventListener("change", draw);
  const head = [h("b", null, title), h("label", { class: "inline-group small" }, "smoothing", smoothing, smoothText), logScale, xAxis];
  return interactiveFigure(testid, "loss_steps", head, plot, tip, legend, draw);
}

/** An interactive chart's figure (`testid`, `data-chart` = `kind`): its head, the plot with its tooltip, the
 *  legend. `draw` runs now, once the plot has a width, and again when the window resizes. */
export function interactiveFigure(testid: string, kind: string, head: Node[], plot: HTMLElement, tip: HTMLElement, legend: HTMLElement, draw: () => void): HTMLElement {
  const fig = h(
    "figure",
    { class: "chart interactive", testid, attrs: { "data-chart": kind } },
    h("div", { class: "chart-head" }, ...head),
    h("div", { class: "plot-wrap" }, plot, tip),
    legend,
  );
  requestAnimationFrame(draw);
  const ro = new ResizeObserver(() => draw());
  ro.observe(plot);
  draw();
  return fig;
}

// ---- Charts of panels (one per split or measure), several runs in each --------------------------------------

/** A run as the interactive charts show it: its id, its label (what differs between the runs shown) and colour. */
export type ChartRun = { run_id: number; label: string; colour: string };

const PANEL_PAD = { l: 52, r: 14, t: 12, b: 42 };

/** A panel's size and its data → pixel maps (`inv`: pixels in the panel → data). */
export type Frame = {
  width: number;
  height: number;
  sx: (v: number) => number;
  sy: (v: number) => number;
  inv: (px: number, py: number) => [number, number];
};

function frame(width: number, height: number, x: [number, number], y: [number, number]): Frame {
  const w = width - PANEL_PAD.l - PANEL_PAD.r;
  const hh = height - PANEL_PAD.t - PANEL_PAD.b;
  const dx = x[1] - x[0] || 1;
  const dy = y[1] - y[0] || 1;
  return {
    width,
    height,
    sx: (v) => PANEL_PAD.l + ((v - x[0]) / dx) * w,
    sy: (v) => height - PANEL_PAD.b - ((v - y[0]) / dy) * hh,
    inv: (px, py) => [x[0] + ((px - PANEL_PAD.l) / w) * dx, y[0] + ((height - PANEL_PAD.b - py) / hh) * dy],
  };
}

/** A panel's grid, y tick labels, x tick labels under the plot, an axis label, and its title at the bottom. */
export function axes(svg: SVGElement, f: Frame, o: { yTicks: number[]; yText: (v: number) => string; xTicks?: [number, string][]; yLabel?: string; title: string }): void {
  for (const t of o.yTicks) {
    svg.appendChild(svgEl("line", { x1: PANEL_PAD.l, x2: f.width - PANEL_PAD.r, y1: f.sy(t), y2: f.sy(t), stroke: "#eceef4" }));
    svg.appendChild(svgEl("text", { x: PANEL_PAD.l - 6, y: f.sy(t) + 4, "text-anchor": "end", fill: "#555" }, o.yText(t)));
  }
  for (const [v, text] of o.xTicks ?? []) {
    svg.appendChild(svgEl("text", { x: f.sx(v), y: f.height - PANEL_PAD.b + 15, "text-anchor": "middle", fill: "#555" }, text));
  }
  if (o.yLabel) {
    const cy = (PANEL_PAD.t + f.height - PANEL_PAD.b) / 2;
    svg.appendChild(svgEl("text", { x: 12, y: cy, "text-anchor": "middle", fill: "#555", transform: `rotate(-90 12 ${cy})` }, o.yLabel));
  }
  svg.appendChild(svgEl("text", { x: (PANEL_PAD.l + f.width - PANEL_PAD.r) / 2, y: f.height - 6, "text-anchor": "middle", fill: "#333", "font-weight": 600 }, o.title));
}

/** A centred grey message in a panel (nothing to draw). */
export function panelMessage(svg: SVGElement, f: Frame, text: string): void {
  svg.appendChild(svgEl("text", { x: (PANEL_PAD.l + f.width - PANEL_PAD.r) / 2, y: (PANEL_PAD.t + f.height - PANEL_PAD.b) / 2, "text-anchor": "middle", fill: "#888" }, text));
}

/** Shows the panel's hover mark `name` (a `.hover-mark` `tag`, added once, under the data) with `attrs`; the panel
 *  hides it when the pointer leaves. */
function hoverMark(svg: SVGElement, tag: "rect" | "line", name: string, attrs: Record<string, string | number>): void {
  let mark = svg.querySelector(`${tag}.hover-mark.${name}`);
  if (!mark) {
    mark = svgEl(tag, { class: `hover-mark ${name}` });
    svg.insertBefore(mark, svg.firstChild);
  }
  for (const [k, v] of Object.entries({ ...attrs, visibility: "visible" })) mark.setAttribute(k, String(v));
}

/** Shows the panel's hover band over x from `lo` to `hi`. */
export function hoverBand(svg: SVGElement, f: Frame, lo: number, hi: number): void {
  hoverMark(svg, "rect", "hover-band", { x: f.sx(lo), width: f.sx(hi) - f.sx(lo), y: PANEL_PAD.t, height: f.height - PANEL_PAD.t - PANEL_PAD.b, fill: "#1a73e8", "fill-opacity": 0.08 });
}

/** Shows the panel's hover line at x = `at`. */
export function hoverLine(svg: SVGElement, f: Frame, at: number): void {
  hoverMark(svg, "line", "hover-line", { x1: f.sx(at), x2: f.sx(at), y1: PANEL_PAD.t, y2: f.height - PANEL_PAD.b, stroke: "#888", "stroke-dasharray": "3 3" });
}

/** A tooltip row of a run: its swatch and label, then `children`. */
export function tipRow(r: ChartRun, colour: string, attrs: Record<string, string | number>, ...children: (Node | string | null)[]): HTMLElement {
  return h("div", { testid: `tip-run-${r.run_id}`, attrs }, h("span", { class: "swatch", style: `background:${colour}` }), ` ${r.label}: `, ...children);
}

/** What a panels chart draws: its runs and panels, each panel's domain, data and tooltip. */
export type PanelsSpec<R extends ChartRun, P> = {
  runs: R[];
  panels: P[];
  kind: string;
  testid: string;
  title: string;
  /** The panel's `data-panel`. */
  name: (p: P) => string;
  /** Its data domain over the runs shown. */
  domain: (p: P, shown: R[]) => { x: [number, number]; y: [number, number] };
  /** Draws the panel (with [`axes`]). */
  draw: (svg: SVGElement, p: P, shown: R[], f: Frame) => void;
  /** The tooltip at data point (x, y): a head line and rows; `null`: none there. */
  tip: (p: P, shown: R[], x: number, y: number, f: Frame, svg: SVGElement) => { head: string; rows: HTMLElement[] } | null;
  /** Text after the legend entries (what the marks mean). */
  key?: string;
  /** A legend entry per run that hides it; by default when there are several runs. */
  legend?: boolean;
  /** Controls in the head after the title, given the chart's redraw. */
  controls?: (redraw: () => void) => Node[];
  height?: number;
};

/** A chart of panels side by side (two columns when it is wide enough): hover shows the panel's tooltip,
 *  clicking a legend entry hides a run. */
export function panelsChart<R extends ChartRun, P>(spec: PanelsSpec<R, P>): HTMLElement {
  const hidden = new Set<number>();
  const plot = h("div", { class: "ba-grid" });
  const tip = h("div", { class: "chart-tip", testid: "chart-tooltip" });
  const legend = h("div", { class: "chart-legend", testid: "chart-legend" });
  const height = spec.height ?? 250;
  const withLegend = spec.legend ?? spec.runs.length > 1;

  const draw = () => {
    legend.replaceChildren(...(withLegend ? legendEntries(spec.runs, hidden, draw) : []));
    if (spec.key) legend.appendChild(h("span", { class: "small muted ba-key" }, spec.key));
    const shown = spec.runs.filter((r) => !hidden.has(r.run_id));
    const total = Math.max(320, plot.clientWidth || 900);
    const cols = total >= 640 ? Math.min(2, spec.panels.length) : 1;
    const width = Math.floor((total - (cols - 1) * 12) / cols);
    plot.replaceChildren(...spec.panels.map((p) => panel(p, shown, width)));
  };

  const panel = (p: P, shown: R[], width: number): SVGElement => {
    const svg = svgEl("svg", { width, height, style: `width:${width}px;height:${height}px`, viewBox: `0 0 ${width} ${height}`, "font-size": FONT, "font-family": "inherit", "data-panel": spec.name(p) });
    const d = spec.domain(p, shown);
    const f = frame(width, height, d.x, d.y);
    spec.draw(svg, p, shown, f);
    svg.addEventListener("mousemove", (e) => {
      const r = svg.getBoundingClientRect();
      const [x, y] = f.inv(e.clientX - r.left, e.clientY - r.top);
      const t = spec.tip(p, shown, x, y, f, svg);
      if (!t) {
        tip.style.display = "none";
        return;
      }
      tip.replaceChildren(h("div", { class: "muted", testid: "tip-panel" }, t.head), ...t.rows);
      tip.style.display = "block";
      const wrap = plot.getBoundingClientRect();
      tip.style.left = `${Math.max(0, Math.min(e.clientX - wrap.left + 14, wrap.width - 300))}px`;
      tip.style.top = `${r.top - wrap.top + PANEL_PAD.t}px`;
    });
    svg.addEventListener("mouseleave", () => {
      tip.style.display = "none";
      svg.querySelectorAll(".hover-mark").forEach((m) => m.setAttribute("visibility", "hidden"));
    });
    return svg;
  };

  return interactiveFigure(spec.testid, spec.kind, [h("b", null, spec.title), ...(spec.controls?.(draw) ?? [])], plot, tip, legend, draw);
}

// ---- Loss per epoch -------------------------------------------------------------------------------------------

/** The interactive loss-per-epoch chart of `series` (a figure with `testid`): per run its train loss solid and its
 *  held-out loss dashed, a dot per epoch (filled: train, hollow: held-out). Hover shows every visible run's exact
 *  train and held-out loss at the epoch nearest the pointer; clicking a legend entry hides a run; log scale. */
export function epochLossChart(series: RunSeries[], testid: string, title = "Loss per epoch"): HTMLElement {
  let log = false;
  const ty = (v: number) => (log ? Math.log10(Math.max(v, 1e-12)) : v);
  const losses = (s: RunSeries) => s.epochs.flatMap((e) => [e.train_loss, e.heldout_loss]).filter((v): v is number => v != null && Number.isFinite(v));
  const domain = (shown: RunSeries[]): { x: [number, number]; y: [number, number] } => {
    const es = shown.flatMap((s) => s.epochs.map((e) => e.epoch));
    const ys = shown.flatMap(losses).map(ty);
    if (es.length === 0 || ys.length === 0) return { x: [0, 1], y: [0, 1] };
    const [x0, x1] = [Math.min(...es), Math.max(...es)];
    const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const [px, py] = [Math.max(0.25, (x1 - x0) * 0.03), (y1 - y0) * 0.06 || 0.5];
    return { x: [x0 - px, x1 + px], y: [y0 - py, y1 + py] };
  };
  return panelsChart<RunSeries, "loss">({
    runs: series,
    panels: ["loss"],
    kind: "loss_epochs",
    testid,
    title,
    legend: true,
    height: HEIGHT,
    key: "solid, filled dots: train · dashed, hollow dots: held-out",
    controls: (redraw) => [logScaleToggle((on) => { log = on; redraw(); })],
    name: () => "loss",
    domain: (_, shown) => domain(shown),
    draw: (svg, _, shown, f) => {
      const d = domain(shown);
      const xTicks = niceTicks(Math.ceil(d.x[0]), Math.floor(d.x[1]), 10).filter(Number.isInteger);
      axes(svg, f, { yTicks: niceTicks(d.y[0], d.y[1], 5), yText: (t) => lossTick(t, log), xTicks: xTicks.map((e) => [e, String(e)]), yLabel: log ? "loss (log)" : "loss", title: "epoch" });
      const drawn = shown.filter((s) => losses(s).length > 0);
      if (drawn.length === 0) return panelMessage(svg, f, series.some((s) => s.epochs.length) ? "every run is hidden" : "no epoch ended yet");
      for (const s of drawn) {
        for (const held of [false, true]) {
          const pts = s.epochs.flatMap((e) => { const v = held ? e.heldout_loss : e.train_loss; return v != null && Number.isFinite(v) ? [[e.epoch, v] as const] : []; });
          const line = held ? "heldout" : "train";
          svg.appendChild(svgEl("polyline", { points: pts.map(([e, v]) => `${f.sx(e).toFixed(1)},${f.sy(ty(v)).toFixed(1)}`).join(" "), fill: "none", stroke: s.colour, "stroke-width": 2, "stroke-dasharray": held ? "6 4" : "none", "data-run": s.run_id, "data-line": line }));
          if (pts.length > 40) continue;
          for (const [e, v] of pts) svg.appendChild(svgEl("circle", { cx: f.sx(e), cy: f.sy(ty(v)), r: 3.5, fill: held ? "#fff" : s.colour, stroke: s.colour, "stroke-width": 1.5, "data-run": s.run_id, "data-line": line, "data-epoch": e }));
        }
      }
    },
    tip: (_, shown, x, _y, f, svg) => {
      // The epoch nearest the pointer among the visible runs' epochs; each run's losses at that epoch.
      const es = [...new Set(shown.flatMap((s) => s.epochs.map((e) => e.epoch)))];
      if (es.length === 0) return null;
      const at = es.reduce((a, b) => (Math.abs(b - x) < Math.abs(a - x) ? b : a));
      hoverLine(svg, f, at);
      const rows = shown.flatMap((s) => {
        const e = s.epochs.find((p) => p.epoch === at);
        if (!e) return [];
        const held = e.heldout_loss != null ? lossText(e.heldout_loss) : "–";
        return [tipRow(s, s.colour, { "data-epoch": at }, "train ", h("b", { testid: "tip-train" }, lossText(e.train_loss)), " · held-out ", h("b", { testid: "tip-heldout" }, held))];
      });
      return { head: `epoch ${at}`, rows };
    },
  });
}
