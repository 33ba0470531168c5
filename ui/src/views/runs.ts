// Runs: every run in the store, sortable and filterable, live progress, pick runs to compare.

import { api, type RunInfo } from "../bindings";
import type { ViewCtx } from "../main";
import { attempt, badge, clear, duration, h, navigate, onAppEvent, pct, sci, setBox, throttle, when } from "../dom";

type Col = { key: string; title: string; value: (r: RunInfo) => number | string | null; show: (r: RunInfo) => Node | string };

const delta = (a: number | null | undefined, b: number | null | undefined) =>
  h("span", { class: "delta-cell" }, pct(a), h("span", { class: "muted" }, " → "), h("b", null, pct(b)));

const COLS: Col[] = [
  { key: "id", title: "Run", value: (r) => r.id, show: (r) => h("a", { attrs: { href: `#/runs/${r.id}` } }, `#${r.id}`) },
  { key: "experiment", title: "Experiment", value: (r) => r.experiment_name, show: (r) => r.experiment_name },
  { key: "dataset", title: "Dataset", value: (r) => r.dataset_name, show: (r) => r.dataset_name },
  { key: "status", title: "Status", value: (r) => r.status, show: (r) => statusCell(r) },
  { key: "lr", title: "lr", value: (r) => r.lr, show: (r) => sci(r.lr) },
  { key: "epochs", title: "Epochs", value: (r) => r.epochs, show: (r) => String(r.epochs) },
  { key: "batch", title: "Batch", value: (r) => r.batch_size, show: (r) => String(r.batch_size) },
  { key: "optimizer", title: "Optimizer", value: (r) => r.optimizer, show: (r) => r.optimizer },
  { key: "n", title: "Train / held-out", value: (r) => r.train_samples, show: (r) => `${r.train_samples} / ${r.heldout_samples}` },
  {
    key: "acc",
    title: "Held-out accuracy",
    value: (r) => r.metrics.heldout_after?.accuracy ?? null,
    show: (r) => delta(r.metrics.heldout_before?.accuracy, r.metrics.heldout_after?.accuracy),
  },
  {
    key: "prob",
    title: "Held-out p(right)",
    value: (r) => r.metrics.heldout_after?.mean_label_prob ?? null,
    show: (r) => delta(r.metrics.heldout_before?.mean_label_prob, r.metrics.heldout_after?.mean_label_prob),
  },
  { key: "created", title: "Created", value: (r) => r.created_at, show: (r) => when(r.created_at) },
];

export function statusCell(r: RunInfo): HTMLElement {
  if (r.status !== "running" && r.status !== "queued") {
    return h("span", { title: r.error ?? "" }, badge(r.status), r.error ? h("div", { class: "small failed-text clip" }, r.error) : null);
  }
  const frac = r.phase_total ? (r.phase_done ?? 0) / r.phase_total : 0;
  return h(
    "div",
    { class: "live-cell" },
    badge(r.status),
    h("div", { class: "progress thin" }, h("div", { class: "fill", style: `width:${(frac * 100).toFixed(0)}%` })),
    h("div", { class: "small muted" }, `${r.phase ? r.phase.replace("_", " ") : "starting"} · ${r.phase_done ?? 0}/${r.phase_total ?? "?"} · ETA ${duration(r.phase_eta_s)}`),
  );
}

export async function renderRuns(root: HTMLElement, ctx: ViewCtx): Promise<void> {
  let runs: RunInfo[] = [];
  let sortKey = "id";
  let desc = true;
  const selected = new Set<number>();
  const filter = h("input", { testid: "run-filter", attrs: { type: "search", placeholder: "Filter by experiment, dataset, optimizer…" } });
  const status = h(
    "select",
    { testid: "status-filter" },
    h("option", { attrs: { value: "" } }, "any status"),
    ["running", "queued", "completed", "failed", "cancelled", "interrupted"].map((s) => h("option", { attrs: { value: s } }, s)),
  );
  const compareBtn = h("button", { class: "primary", testid: "compare-selected", on: { click: () => navigate(`/compare?ids=${[...selected].sort((a, b) => a - b).join(",")}`) } });
  const table = h("div", { testid: "runs-table" });

  const draw = () => {
    compareBtn.textContent = `Compare selected (${selected.size})`;
    compareBtn.disabled = selected.size < 2;
    const q = filter.value.trim().toLowerCase();
    const shown = runs
      .filter((r) => !status.value || r.status === status.value)
      .filter((r) => !q || [r.experiment_name, r.dataset_name, r.optimizer, r.status, `#${r.id}`].some((s) => s.toLowerCase().includes(q)));
    const col = COLS.find((c) => c.key === sortKey) ?? COLS[0];
    shown.sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const c = x === null ? (y === null ? 0 : -1) : y === null ? 1 : x < y ? -1 : x > y ? 1 : 0;
      return desc ? -c : c;
    });
    if (runs.length === 0) {
      clear(table, h("div", { class: "empty" }, "No run yet. ", h("a", { attrs: { href: "#/new" } }, "Create an experiment"), " and run it."));
      return;
    }
    clear(
      table,
      h(
        "table",
        { class: "grid-table" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", null, ""),
            COLS.map((c) =>
              h(
                "th",
                { class: "sortable", testid: `sort-${c.key}`, on: { click: () => { desc = sortKey === c.key ? !desc : c.key === "id" || c.key === "acc" || c.key === "prob"; sortKey = c.key; draw(); } } },
                c.title,
                sortKey === c.key ? (desc ? " ▾" : " ▴") : "",
              ),
            ),
          ),
        ),
        h(
          "tbody",
          null,
          shown.map((r) => {
            const box = setBox(`select-run-${r.id}`, selected, r.id, draw);
            return h(
              "tr",
              { testid: `run-row-${r.id}`, attrs: { "data-status": r.status } },
              h("td", null, box),
              COLS.map((c) => h("td", { testid: `cell-${c.key}` }, c.show(r))),
            );
          }),
        ),
      ),
      h("p", { class: "muted small" }, `${shown.length} of ${runs.length} runs`),
    );
  };
  const load = async () => {
    const r = await attempt(() => api.listRuns());
    if (!r || ctx.left()) return;
    runs = r;
    draw();
  };
  filter.addEventListener("input", draw);
  status.addEventListener("change", draw);
  ctx.cleanup(onAppEvent(throttle(() => void load(), 700)));
  clear(root, h("header", { class: "screen-head" }, h("h1", null, "Runs"), h("div", { class: "actions" }, filter, status, compareBtn)), table);
  await load();
}
