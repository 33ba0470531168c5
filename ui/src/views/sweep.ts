// Sweeps: the list, the queue, and one sweep's results: the held-out metric against each swept hyperparameter
// (one point per run, the best one marked) beside the runs' overlaid loss curves.

import { api, type SweepPoint, type SweepView } from "../bindings";
import type { ViewCtx } from "../main";
import { lossChart } from "../chart";
import { attempt, badge, clear, done, h, onAppEvent, pct, shortWhen, throttle } from "../dom";

const NS = "http://www.w3.org/2000/svg";

function svgEl(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The metric against axis `k`: the axis's values (as typed) evenly spaced, one dot per run. */
function axisChart(v: SweepView, k: number): HTMLElement {
  const W = 420;
  const H = 260;
  const P = { l: 52, r: 14, t: 14, b: 42 };
  const key = v.axes[k];
  const cats = [...new Set(v.points.map((p) => p.values[k] ?? ""))];
  const numeric = cats.every((c) => c !== "" && Number.isFinite(Number(c)));
  if (numeric) cats.sort((a, b) => Number(a) - Number(b));
  const ms = v.points.map((p) => p.metric).filter((m): m is number => m != null && Number.isFinite(m));
  let y0 = ms.length ? Math.min(...ms) : 0;
  let y1 = ms.length ? Math.max(...ms) : 1;
  const pad = Math.max(0.02, (y1 - y0) * 0.15);
  y0 = Math.max(0, y0 - pad);
  y1 = Math.min(1, y1 + pad);
  const sx = (i: number) => P.l + ((i + 0.5) / cats.length) * (W - P.l - P.r);
  const sy = (m: number) => H - P.b - ((m - y0) / (y1 - y0 || 1)) * (H - P.t - P.b);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", "font-size": 13, "font-family": "inherit" });
  for (let t = 0; t <= 4; t++) {
    const m = y0 + ((y1 - y0) * t) / 4;
    svg.appendChild(svgEl("line", { x1: P.l, x2: W - P.r, y1: sy(m), y2: sy(m), stroke: "#eceef4" }));
    svg.appendChild(svgEl("text", { x: P.l - 6, y: sy(m) + 4, "text-anchor": "end", fill: "#555" }, pct(m, 0)));
  }
  cats.forEach((c, i) => svg.appendChild(svgEl("text", { x: sx(i), y: H - P.b + 18, "text-anchor": "middle", fill: "#555" }, c)));
  svg.appendChild(svgEl("text", { x: (P.l + W - P.r) / 2, y: H - 6, "text-anchor": "middle", fill: "#333" }, key));
  // Runs at the same value sit side by side.
  const seen = new Map<string, number>();
  const same = new Map<string, number>();
  for (const p of v.points) same.set(p.values[k] ?? "", (same.get(p.values[k] ?? "") ?? 0) + 1);
  for (const p of v.points) {
    if (p.metric == null || !Number.isFinite(p.metric)) continue;
    const c = p.values[k] ?? "";
    const j = seen.get(c) ?? 0;
    seen.set(c, j + 1);
    const n = same.get(c) ?? 1;
    const x = sx(cats.indexOf(c)) + (n > 1 ? (j - (n - 1) / 2) * 10 : 0);
    const best = p.run_id === v.best_run;
    const dot = svgEl("circle", { cx: x, cy: sy(p.metric), r: best ? 8 : 5.5, fill: p.colour, stroke: best ? "#111" : "#fff", "stroke-width": best ? 2.5 : 1, "data-testid": best ? "sweep-best" : "sweep-point", "data-run": p.run_id });
    dot.appendChild(svgEl("title", {}, `run ${p.run_id} · ${v.axes.map((a, i) => `${a}=${p.values[i]}`).join(" ")} · ${pct(p.metric)}`));
    svg.appendChild(dot);
  }
  return h("figure", { class: "chart", testid: `sweep-axis-${key}` }, h("div", { class: "chart-head" }, h("b", null, `${v.metric_name} by ${key}`)), svg);
}

function pointsTable(v: SweepView): HTMLElement {
  return h(
    "table",
    { class: "grid-table compact", testid: "sweep-runs" },
    h("thead", null, h("tr", null, h("th", null, "Run"), v.axes.map((a) => h("th", null, a)), h("th", null, "Status"), h("th", null, v.metric_name))),
    h(
      "tbody",
      null,
      v.points.map((p: SweepPoint) =>
        h(
          "tr",
          { testid: `sweep-row-${p.run_id}`, class: p.run_id === v.best_run ? "best" : "" },
          h("td", null, h("span", { class: "swatch", style: `background:${p.colour}` }), " ", h("a", { attrs: { href: `#/runs/${p.run_id}` } }, `#${p.run_id}`), p.run_id === v.best_run ? h("b", { class: "ok-text" }, " ★ best") : ""),
          v.axes.map((_, i) => h("td", null, p.values[i] ?? "")),
          h("td", null, badge(p.status)),
          h("td", { class: "num", testid: "sweep-metric" }, pct(p.metric)),
        ),
      ),
    ),
  );
}

export async function renderSweep(root: HTMLElement, ctx: ViewCtx, id: number): Promise<void> {
  const draw = (v: SweepView) => {
    const measured = v.points.filter((p) => p.metric != null).length;
    clear(
      root,
      h("header", { class: "screen-head" }, h("h1", { testid: "sweep-title" }, h("a", { attrs: { href: "#/sweeps" } }, "Sweeps"), ` / #${v.id} · ${v.name}`)),
      h("p", { class: "meta", testid: "sweep-progress" }, `${v.points.length} runs over ${v.axes.join(" × ")} · ${measured} measured`),
      h("section", { class: "sweep-grid" }, h("div", { class: "sweep-axes" }, v.axes.map((_, k) => axisChart(v, k))), lossChart(v.series, "chart-loss_steps")),
      h("section", { class: "panel" }, h("h2", null, "Runs"), pointsTable(v)),
    );
  };
  const v = await api.sweepView(id);
  if (ctx.left()) return;
  draw(v);
  ctx.cleanup(
    onAppEvent(
      throttle(async () => {
        const again = await attempt(() => api.sweepView(id));
        if (again && !ctx.left() && again.points.some((p, i) => p.status !== v.points[i]?.status || p.metric !== v.points[i]?.metric)) {
          v.points = again.points;
          draw(again);
        }
      }, 1500),
    ),
  );
}

/** Every sweep, and the queue. */
export async function renderSweeps(root: HTMLElement, ctx: ViewCtx): Promise<void> {
  const load = async () => {
    const [sweeps, queue] = await Promise.all([api.listSweeps(), api.listQueue()]);
    if (ctx.left()) return;
    clear(
      root,
      h("header", { class: "screen-head" }, h("h1", null, "Sweeps and queue")),
      h(
        "section",
        { class: "panel" },
        h("h2", null, `Queue (${queue.length})`),
        queue.length === 0
          ? h("p", { class: "muted", testid: "queue-empty" }, "Nothing queued. On New experiment, a comma list in a field makes a sweep.")
          : h(
              "table",
              { class: "grid-table compact", testid: "queue-table" },
              h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "Run"), h("th", null, "Experiment"), h("th", null, "Queued"), h("th", null, ""))),
              h(
                "tbody",
                null,
                queue.map((q) =>
                  h(
                    "tr",
                    { testid: `queue-row-${q.run_id}` },
                    h("td", null, String(q.position)),
                    h("td", null, h("a", { attrs: { href: `#/runs/${q.run_id}` } }, `#${q.run_id}`)),
                    h("td", null, q.experiment_name),
                    h("td", null, shortWhen(q.created_at)),
                    h(
                      "td",
                      null,
                      h("button", { class: "ghost mini", testid: `queue-up-${q.run_id}`, attrs: { disabled: q.position <= 1 }, on: { click: async () => { await done(() => api.moveQueued(q.run_id, q.position - 1)); void load(); } } }, "↑ up"),
                      h("button", { class: "ghost mini", testid: `queue-cancel-${q.run_id}`, on: { click: async () => { await done(() => api.cancelQueued(q.run_id)); void load(); } } }, "✕ cancel"),
                    ),
                  ),
                ),
              ),
            ),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", null, "Sweeps"),
        sweeps.length === 0
          ? h("p", { class: "muted" }, "No sweep yet.")
          : h(
              "table",
              { class: "grid-table compact", testid: "sweeps-table" },
              h("thead", null, h("tr", null, h("th", null, "Sweep"), h("th", null, "Grid"), h("th", null, "Runs"), h("th", null, "Created"))),
              h(
                "tbody",
                null,
                sweeps.map((s) =>
                  h(
                    "tr",
                    { testid: `sweep-list-${s.id}` },
                    h("td", null, h("a", { attrs: { href: `#/sweeps/${s.id}` } }, `#${s.id} · ${s.name}`)),
                    h("td", { class: "small" }, Array.isArray(s.grid) ? (s.grid as { key: string; values: string[] }[]).map((a) => `${a.key} = ${a.values.join(", ")}`).join(" × ") : ""),
                    h("td", null, String(s.run_ids.length)),
                    h("td", null, shortWhen(s.created_at)),
                  ),
                ),
              ),
            ),
      ),
    );
  };
  await load();
  ctx.cleanup(onAppEvent(throttle(() => void load(), 1500)));
}
