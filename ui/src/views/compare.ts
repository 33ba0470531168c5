// Compare: two or more runs side by side — overlaid curves, metrics, the hyperparameter diff, flips.

import { api, type CompareView, type FlipCard } from "../bindings";
import type { ViewCtx } from "../main";
import { pushToMlflow } from "./mlflow";
import { attempt, bar, clear, h, navigate, num, pct, routeParams, setBox, tablePanel, thumb } from "../dom";
import type { BeforeAfterRun } from "../beforeafter";
import type { ChartRun } from "../chart";
import type { ScoreRun } from "../scorecharts";
import { chartsGrid } from "./run";
import { systemTable } from "../system";

export async function renderCompare(root: HTMLElement, ctx: ViewCtx): Promise<void> {
  const ids = (routeParams().get("ids") ?? "").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0);
  if (ids.length < 2) return pickRuns(root, ctx, ids);
  const v = await api.compareRuns(ids);
  if (ctx.left()) return;
  const exportMsg = h("div", { testid: "export-result" });
  const exportReport = async () => {
    const r = await attempt(() => api.exportReport(ids), "export charts");
    if (r) clear(exportMsg, h("div", { class: "panel ok" }, `${r.files.length} charts and CSV written to `, h("span", { class: "path", testid: "exported-path" }, r.dir)));
  };
  clear(
    root,
    h(
      "header",
      { class: "screen-head" },
      h("h1", null, "Compare ", ids.map((id) => `#${id}`).join(" · ")),
      h("div", { class: "actions" }, h("button", { testid: "change-runs", on: { click: () => navigate(`/compare?pick=${ids.join(",")}`) } }, "Change runs"), h("button", { testid: "export-report", on: { click: exportReport } }, "Export charts & CSV…"), h("button", { testid: "push-mlflow", on: { click: () => void attempt(() => pushToMlflow(ids), "push to MLflow") } }, "Push to MLflow…")),
    ),
    exportMsg,
    legend(v),
    metricsTable(v),
    systemTable(v.runs),
    diffTable(v),
    chartsGrid(v.charts, "compare-charts", { series: v.series, beforeAfter: { runs: beforeAfterRuns(v), charts: ["metrics", "label_prob_slope"] }, scores: scoreRuns(v) }),
    flipsPanel(v),
  );
}

async function pickRuns(root: HTMLElement, ctx: ViewCtx, preset: number[]): Promise<void> {
  const pre = new Set([...preset, ...(routeParams().get("pick") ?? "").split(",").map(Number)]);
  const runs = (await api.listRuns()).filter((r) => r.status === "completed");
  if (ctx.left()) return;
  const chosen = new Set<number>(runs.filter((r) => pre.has(r.id)).map((r) => r.id));
  const go = h("button", { class: "primary", testid: "compare-go", on: { click: () => navigate(`/compare?ids=${[...chosen].sort((a, b) => a - b).join(",")}`) } });
  const update = () => {
    go.textContent = `Compare ${chosen.size} runs`;
    go.disabled = chosen.size < 2;
  };
  update();
  clear(
    root,
    h("header", { class: "screen-head" }, h("h1", null, "Compare"), h("div", { class: "actions" }, go)),
    h("p", { class: "muted" }, "Pick two or more completed runs."),
    runs.length < 2
      ? h("div", { class: "empty" }, "Compare needs two completed runs.")
      : h(
          "div",
          { class: "pick-list" },
          runs.map((r) => {
            const box = setBox(`pick-run-${r.id}`, chosen, r.id, update);
            return h("label", { class: "check pick" }, box, h("b", null, `#${r.id}`), ` ${r.experiment_name} · ${r.optimizer} lr ${r.lr} · held-out ${pct(r.metrics.heldout_after?.accuracy)}`);
          }),
        ),
  );
}

function legend(v: CompareView): HTMLElement {
  return h(
    "div",
    { class: "legend", testid: "compare-legend" },
    v.runs.map((r) =>
      h("a", { class: "legend-chip", attrs: { href: `#/runs/${r.info.id}` } }, h("span", { class: "swatch", style: `background:${r.colour}` }), `#${r.info.id} ${r.info.experiment_name}`),
    ),
  );
}

function metricsTable(v: CompareView): HTMLElement {
  const heads = ["Run", "Held-out acc before", "after", "Held-out p(right) before", "after", "Train acc before", "after", "Final loss train", "held-out"];
  return tablePanel(
    "Metrics",
    { testid: "compare-metrics" },
    heads,
    v.runs.map((r) => {
      const s = r.summary;
      return h(
        "tr",
        { testid: `metrics-row-${r.info.id}` },
        h("td", null, h("span", { class: "swatch", style: `background:${r.colour}` }), ` #${r.info.id} ${r.info.experiment_name}`),
        h("td", { class: "num" }, pct(s.heldout.accuracy_before)),
        h("td", { class: "num", testid: "heldout-acc-after" }, h("b", null, pct(s.heldout.accuracy_after))),
        h("td", { class: "num" }, pct(s.heldout.mean_label_prob_before)),
        h("td", { class: "num" }, h("b", null, pct(s.heldout.mean_label_prob_after))),
        h("td", { class: "num" }, pct(s.train.accuracy_before)),
        h("td", { class: "num" }, pct(s.train.accuracy_after)),
        h("td", { class: "num" }, num(s.final_train_loss, 4)),
        h("td", { class: "num" }, num(s.final_heldout_loss, 4)),
      );
    }),
  );
}

function diffTable(v: CompareView): HTMLElement {
  const fmt = (x: unknown) => (x === null || x === undefined ? "—" : typeof x === "string" ? x : JSON.stringify(x));
  return h(
    "section",
    { class: "panel" },
    h("h2", null, "Hyperparameters that differ"),
    v.diff.length === 0
      ? h("p", { class: "muted" }, "None: the runs share every hyperparameter.")
      : h(
          "table",
          { class: "grid-table compact", testid: "compare-diff" },
          h("thead", null, h("tr", null, h("th", null, "Key"), v.runs.map((r) => h("th", null, h("span", { class: "swatch", style: `background:${r.colour}` }), ` #${r.info.id}`)))),
          h("tbody", null, v.diff.map((d) => h("tr", { testid: `diff-${d.key}` }, h("td", null, h("code", null, d.key)), d.values.map((x) => h("td", null, fmt(x)))))),
        ),
  );
}

function flipsPanel(v: CompareView): HTMLElement {
  const [a, b] = v.runs;
  const f = v.flips;
  const cell = (n: number, testid: string, tone = "") => h("td", { class: `num ${tone}`, testid }, n.toLocaleString());
  return h(
    "section",
    { class: "panel", testid: "flips-panel" },
    h("h2", null, `Flips between #${a.info.id} and #${b.info.id} (after fine-tuning)`),
    h(
      "table",
      { class: "grid-table compact flips" },
      h("thead", null, h("tr", null, h("th", null, ""), h("th", null, `#${b.info.id} right`), h("th", null, `#${b.info.id} wrong`))),
      h(
        "tbody",
        null,
        h("tr", null, h("th", null, `#${a.info.id} right`), cell(f.right_right, "flips-rr"), cell(f.right_wrong, "flips-rw", "failed-text")),
        h("tr", null, h("th", null, `#${a.info.id} wrong`), cell(f.wrong_right, "flips-wr", "ok-text"), cell(f.wrong_wrong, "flips-ww")),
      ),
    ),
    f.skipped ? h("p", { class: "muted small" }, `${f.skipped} samples not in both runs were left out.`) : null,
    v.flip_cards.length === 0
      ? h("p", { class: "muted" }, "No sample flipped.")
      : h("div", { class: "cards", testid: "flip-cards" }, v.flip_cards.map((c) => flipCard(c, a.colour, b.colour, a.info.id, b.info.id))),
  );
}

function flipCard(c: FlipCard, ca: string, cb: string, ia: number, ib: number): HTMLElement {
  return h(
    "article",
    { class: "card score-card", testid: "flip-card", attrs: { "data-sample": c.sample_id } },
    thumb(c.image_id, c.filename),
    h("div", { class: "card-title" }, h("span", null, c.filename), h("span", { class: `chip ${c.gained ? "ok" : "warn"}` }, c.gained ? `#${ib} fixed it` : `#${ib} broke it`)),
    h(
      "ol",
      { class: "choices scored" },
      c.choices.map((cap, i) =>
        h(
          "li",
          { class: i === c.label ? "right" : "" },
          h("span", { class: "letter" }, c.letters[i]),
          h("span", { class: "caption" }, cap),
          h("span", { class: "probs" }, bar(c.probs_a[i], ca, "after"), bar(c.probs_b[i], cb, "after"), h("span", { class: "small" }, `#${ia} ${pct(c.probs_a[i], 0)} · #${ib} ${pct(c.probs_b[i], 0)}`)),
        ),
      ),
    ),
  );
}

/** The runs labelled and coloured as the loss chart. */
function chartRuns(v: CompareView): ChartRun[] {
  return v.runs.map((r) => ({ run_id: r.info.id, label: v.series.find((x) => x.run_id === r.info.id)?.label ?? `run ${r.info.id}`, colour: r.colour }));
}

/** The runs as the before → after charts show them: the store's metrics. */
function beforeAfterRuns(v: CompareView): BeforeAfterRun[] {
  return chartRuns(v).map((r, i) => ({ ...r, metrics: v.runs[i].info.metrics }));
}

/** The runs as the distribution and calibration charts show them: the core's bins of their scores. */
function scoreRuns(v: CompareView): ScoreRun[] {
  return chartRuns(v).flatMap((r) => {
    const scores = v.score_charts.find((s) => s.run_id === r.run_id);
    return scores ? [{ ...r, scores }] : [];
  });
}
