// Runs: the table built for hundreds of runs. One line per run, a sticky header, sweeps (or experiments) grouped
// under a collapsed summary row, a filter over names and tags, the archived runs hidden unless asked for, a
// column chooser (spec keys and metrics), disk use per run and in total; the selection survives filtering and
// can be compared, archived or deleted.

import { api, type RunInfo, type RunRow, type RunsTable } from "../bindings";
import type { ViewCtx } from "../main";
import { attempt, badge, bytes, checkpointBadge, clear, confirmDialog, done, duration, h, navigate, onAppEvent, pct, sci, select, setBox, shortWhen, tagChips, throttle } from "../dom";

type Col = { key: string; title: string; value: (r: RunRow) => number | string | null; show: (r: RunRow) => Node | string; num?: boolean };

const delta = (a: number | null | undefined, b: number | null | undefined) =>
  h("span", { class: "delta-cell" }, pct(a), h("span", { class: "muted" }, " → "), h("b", null, pct(b)));

const COLS: Col[] = [
  { key: "id", title: "Run", value: (r) => r.info.id, show: (r) => h("a", { attrs: { href: `#/runs/${r.info.id}` } }, `#${r.info.id}`) },
  {
    key: "experiment",
    title: "Experiment",
    value: (r) => r.info.experiment_name,
    show: (r) => h("span", { class: "exp-cell" }, h("span", { class: "clip", title: r.info.experiment_name }, r.info.experiment_name), tagChips([...r.labels.tags, ...r.experiment_tags])),
  },
  { key: "status", title: "Status", value: (r) => r.info.status, show: (r) => statusCell(r.info, r.labels.queue_position) },
  { key: "lr", title: "lr", value: (r) => r.info.lr, show: (r) => sci(r.info.lr), num: true },
  { key: "epochs", title: "Epochs", value: (r) => r.info.epochs, show: (r) => String(r.info.epochs), num: true },
  { key: "batch", title: "Batch", value: (r) => r.info.batch_size, show: (r) => String(r.info.batch_size), num: true },
  { key: "optimizer", title: "Optimizer", value: (r) => r.info.optimizer, show: (r) => r.info.optimizer },
  {
    key: "acc",
    title: "Held-out accuracy",
    value: (r) => r.info.metrics.heldout_after?.accuracy ?? null,
    show: (r) => delta(r.info.metrics.heldout_before?.accuracy, r.info.metrics.heldout_after?.accuracy),
  },
  {
    key: "prob",
    title: "Held-out p(right)",
    value: (r) => r.info.metrics.heldout_after?.mean_label_prob ?? null,
    show: (r) => delta(r.info.metrics.heldout_before?.mean_label_prob, r.info.metrics.heldout_after?.mean_label_prob),
  },
  { key: "disk", title: "Disk", value: (r) => r.disk_bytes, show: (r) => h("span", { title: r.has_checkpoint ? "with its checkpoint" : "no checkpoint" }, bytes(r.disk_bytes), r.has_checkpoint ? "" : h("span", { class: "muted" }, " ·")), num: true },
  { key: "checkpoint", title: "Checkpoint", value: (r) => r.checkpoint, show: (r) => checkpointBadge(r.checkpoint, false) },
  { key: "created", title: "Created", value: (r) => r.info.created_at, show: (r) => shortWhen(r.info.created_at) },
];

/** Columns the chooser offers beside the spec keys (the run's dataset and split sizes, metrics, device, note). */
const METRICS: Col[] = [
  { key: "dataset", title: "Dataset", value: (r) => r.info.dataset_name, show: (r) => r.info.dataset_name },
  { key: "n", title: "Train / held-out", value: (r) => r.info.train_samples, show: (r) => `${r.info.train_samples} / ${r.info.heldout_samples}`, num: true },
  { key: "m:train_acc", title: "Train accuracy", value: (r) => r.info.metrics.train_after?.accuracy ?? null, show: (r) => delta(r.info.metrics.train_before?.accuracy, r.info.metrics.train_after?.accuracy) },
  { key: "m:train_prob", title: "Train p(right)", value: (r) => r.info.metrics.train_after?.mean_label_prob ?? null, show: (r) => delta(r.info.metrics.train_before?.mean_label_prob, r.info.metrics.train_after?.mean_label_prob) },
  { key: "m:device", title: "Device", value: (r) => r.info.device ?? "", show: (r) => r.info.device ?? "–" },
  { key: "m:note", title: "Note", value: (r) => r.labels.note, show: (r) => h("span", { class: "clip", title: r.labels.note }, r.labels.note) },
];

const paramCol = (key: string): Col => ({
  key: `p:${key}`,
  title: key,
  value: (r) => {
    const v = r.params[key];
    return v !== undefined && v !== "" && !Number.isNaN(Number(v)) ? Number(v) : (v ?? null);
  },
  show: (r) => r.params[key] ?? "–",
});

// Kept while the app runs: the selection, the open groups and the chosen columns survive reloads and filtering.
const selected = new Set<number>();
const open = new Set<string>();
const STORAGE = "cliplab.runs.columns";
const extra: string[] = JSON.parse(localStorage.getItem(STORAGE) ?? "[]") as string[];

export function statusCell(r: RunInfo, queuePosition?: number | null): HTMLElement {
  if (r.status === "queued" && queuePosition) {
    return h(
      "span",
      { class: "live-cell" },
      h("span", { class: "badge status-queued", testid: "status" }, `queued #${queuePosition}`),
      h("button", { class: "ghost mini", testid: `queue-up-${r.id}`, title: "Move up in the queue", attrs: { disabled: queuePosition <= 1 }, on: { click: () => void done(() => api.moveQueued(r.id, queuePosition - 1), "move up") } }, "↑"),
      h("button", { class: "ghost mini", testid: `queue-cancel-${r.id}`, title: "Take out of the queue", on: { click: () => void done(() => api.cancelQueued(r.id), "cancel queued run") } }, "✕"),
    );
  }
  if (r.status !== "running" && r.status !== "queued") {
    return h("span", { title: r.error ?? "" }, badge(r.status), r.error ? h("span", { class: "small failed-text clip err-inline" }, ` ${r.error}`) : null);
  }
  const frac = r.phase_total ? (r.phase_done ?? 0) / r.phase_total : 0;
  return h(
    "div",
    { class: "live-cell", title: `${r.phase ? r.phase.replace("_", " ") : "starting"} · ${r.phase_done ?? 0}/${r.phase_total ?? "?"} · ETA ${duration(r.phase_eta_s)}` },
    badge(r.status),
    h("div", { class: "progress thin" }, h("div", { class: "fill", style: `width:${(frac * 100).toFixed(0)}%` })),
  );
}

/** Text the filter box searches: names, tags, note, status, optimizer, `#id`. */
function haystack(r: RunRow): string {
  return [r.info.experiment_name, r.info.dataset_name, r.info.optimizer, r.info.status, `#${r.info.id}`, r.labels.note, ...r.labels.tags, ...r.experiment_tags]
    .join("\n")
    .toLowerCase();
}

export async function renderRuns(root: HTMLElement, ctx: ViewCtx): Promise<void> {
  let table: RunsTable | undefined;
  let sortKey = "id";
  let desc = true;
  const filter = h("input", { testid: "run-filter", attrs: { type: "search", placeholder: "Filter by name, tag, note, status…" } });
  const status = select("status-filter", [
    ["", "any status"],
    ...["running", "queued", "completed", "failed", "cancelled", "interrupted"].map((s): [string, string] => [s, s]),
  ]);
  const archived = h("input", { testid: "show-archived", attrs: { type: "checkbox" } });
  const group = select("group-by", [["sweep", "group by sweep"], ["experiment", "group by experiment"], ["", "no groups"]]);
  const compareBtn = h("button", { class: "primary", testid: "compare-selected", on: { click: () => navigate(`/compare?ids=${[...selected].sort((a, b) => a - b).join(",")}`) } });
  const archiveBtn = h("button", { testid: "archive-selected" });
  const deleteBtn = h("button", { class: "danger", testid: "delete-selected" }, "Delete…");
  const columns = h("details", { class: "col-chooser", testid: "column-chooser" });
  const body = h("div", { testid: "runs-table", class: "runs-wrap" });
  const foot = h("p", { class: "muted small", testid: "runs-foot" });

  const cols = (): Col[] => {
    const pick = extra.map((k) => METRICS.find((c) => c.key === k) ?? (k.startsWith("p:") ? paramCol(k.slice(2)) : undefined)).filter((c): c is Col => !!c);
    return [...COLS, ...pick];
  };
  const drawChooser = () => {
    if (!table) return;
    const keys = [...new Set(table.rows.flatMap((r) => Object.keys(r.params)))].sort();
    const box = (key: string, title: string) => {
      const b = h("input", { testid: `col-${key}`, attrs: { type: "checkbox", checked: extra.includes(key) } });
      b.addEventListener("change", () => {
        const i = extra.indexOf(key);
        if (b.checked && i < 0) extra.push(key);
        if (!b.checked && i >= 0) extra.splice(i, 1);
        localStorage.setItem(STORAGE, JSON.stringify(extra));
        draw();
      });
      return h("label", { class: "check small" }, b, title);
    };
    const wasOpen = columns.open;
    clear(columns, h("summary", null, "Columns"), h("div", { class: "col-list" }, h("b", { class: "small" }, "Run and metrics"), METRICS.map((c) => box(c.key, c.title)), h("b", { class: "small" }, "Spec"), keys.map((k) => box(`p:${k}`, k))));
    columns.open = wasOpen;
  };

  const visible = (): RunRow[] => {
    if (!table) return [];
    const q = filter.value.trim().toLowerCase();
    return table.rows
      .filter((r) => archived.checked || !r.labels.archived)
      .filter((r) => !status.value || r.info.status === status.value)
      .filter((r) => !q || q.split(/\s+/).every((w) => haystack(r).includes(w)));
  };

  const draw = () => {
    if (!table) return;
    const sel = [...selected];
    compareBtn.textContent = `Compare selected (${selected.size})`;
    compareBtn.disabled = selected.size < 2;
    const rowsById = new Map(table.rows.map((r) => [r.info.id, r]));
    const allArchived = sel.length > 0 && sel.every((id) => rowsById.get(id)?.labels.archived);
    archiveBtn.textContent = allArchived ? `Unarchive (${sel.length})` : `Archive (${sel.length})`;
    archiveBtn.disabled = sel.length === 0;
    deleteBtn.disabled = sel.length === 0;
    archiveBtn.onclick = async () => {
      await done(() => api.setArchived(sel, !allArchived), "archive");
      void load();
    };
    const cs = cols();
    const shown = visible();
    const col = cs.find((c) => c.key === sortKey) ?? cs[0];
    shown.sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const c = x === null ? (y === null ? 0 : -1) : y === null ? 1 : x < y ? -1 : x > y ? 1 : 0;
      return desc ? -c : c;
    });
    if (table.rows.length === 0) {
      clear(body, h("div", { class: "empty" }, "No run yet. ", h("a", { attrs: { href: "#/new" } }, "Create an experiment"), " and run it."));
      clear(foot);
      return;
    }
    // Groups: a sweep's runs (or an experiment's, when it has several) under one summary row.
    const sweepName = new Map(table.sweeps.map((s) => [s.id, s.name]));
    const keyOf = (r: RunRow): [string, string] | null => {
      if (group.value === "sweep" && r.labels.sweep_id != null) return [`sweep-${r.labels.sweep_id}`, `Sweep ${r.labels.sweep_id} · ${sweepName.get(r.labels.sweep_id) ?? ""}`];
      if (group.value === "experiment") return [`experiment-${r.info.experiment_id}`, `Experiment ${r.info.experiment_id} · ${r.info.experiment_name}`];
      return null;
    };
    const members = new Map<string, RunRow[]>();
    for (const r of shown) {
      const k = keyOf(r);
      if (k) members.set(k[0], [...(members.get(k[0]) ?? []), r]);
    }
    const rows: HTMLElement[] = [];
    const emitted = new Set<string>();
    const runRow = (r: RunRow, inGroup: boolean) =>
      h(
        "tr",
        { testid: `run-row-${r.info.id}`, class: `${inGroup ? "in-group" : ""}${r.labels.archived ? " archived" : ""}`, attrs: { "data-status": r.info.status } },
        h("td", null, setBox(`select-run-${r.info.id}`, selected, r.info.id, draw)),
        cs.map((c) => h("td", { testid: `cell-${c.key}`, class: c.num ? "num" : "" }, c.show(r))),
      );
    for (const r of shown) {
      const k = keyOf(r);
      const list = k ? (members.get(k[0]) ?? []) : [];
      if (!k || (group.value === "experiment" && list.length < 2)) {
        rows.push(runRow(r, false));
        continue;
      }
      if (emitted.has(k[0])) continue;
      emitted.add(k[0]);
      rows.push(groupRow(k[0], k[1], list, cs.length));
      if (open.has(k[0])) rows.push(...list.map((m) => runRow(m, true)));
    }
    clear(
      body,
      h(
        "table",
        { class: "grid-table runs-grid" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", null, ""),
            cs.map((c) =>
              h(
                "th",
                { class: "sortable", testid: `sort-${c.key}`, on: { click: () => { desc = sortKey === c.key ? !desc : c.key === "id" || c.key === "acc" || c.key === "prob" || c.key === "disk"; sortKey = c.key; draw(); } } },
                c.title,
                sortKey === c.key ? (desc ? " ▾" : " ▴") : "",
              ),
            ),
          ),
        ),
        h("tbody", null, rows),
      ),
    );
    const diskShown = shown.reduce((s, r) => s + r.disk_bytes, 0);
    clear(
      foot,
      `${shown.length} of ${table.rows.length} runs`,
      selected.size ? ` · ${selected.size} selected` : "",
      ` · disk: ${bytes(diskShown)} in the runs shown, `,
      h("b", { testid: "disk-total" }, bytes(table.total_bytes)),
      " in all",
    );
  };

  const groupRow = (key: string, title: string, list: RunRow[], ncols: number): HTMLElement => {
    const isOpen = open.has(key);
    const accs = list.map((r) => r.info.metrics.heldout_after?.accuracy).filter((x): x is number => x != null);
    const best = accs.length ? Math.max(...accs) : null;
    const counts = new Map<string, number>();
    for (const r of list) counts.set(r.info.status, (counts.get(r.info.status) ?? 0) + 1);
    const ids = list.map((r) => r.info.id);
    const all = ids.every((id) => selected.has(id));
    const box = h("input", { testid: `select-group-${key}`, attrs: { type: "checkbox", checked: all } });
    box.addEventListener("change", () => {
      for (const id of ids) if (box.checked) selected.add(id); else selected.delete(id);
      draw();
    });
    const sweepId = key.startsWith("sweep-") ? key.slice(6) : null;
    return h(
      "tr",
      { class: "group-row", testid: `group-${key}` },
      h("td", null, box),
      h(
        "td",
        { attrs: { colspan: ncols } },
        h("button", { class: "ghost mini", testid: `toggle-${key}`, on: { click: () => { if (isOpen) open.delete(key); else open.add(key); draw(); } } }, isOpen ? "▾" : "▸"),
        h("b", null, title),
        h("span", { class: "muted" }, ` · ${list.length} runs · `, [...counts].map(([s, n]) => `${n} ${s}`).join(", ")),
        best != null ? h("span", null, " · best held-out ", h("b", null, pct(best))) : "",
        h("span", { class: "muted" }, ` · ${bytes(list.reduce((s, r) => s + r.disk_bytes, 0))}`),
        sweepId ? h("a", { class: "group-link", testid: `open-sweep-${sweepId}`, attrs: { href: `#/sweeps/${sweepId}` } }, " Sweep view ›") : null,
      ),
    );
  };

  deleteBtn.addEventListener("click", async () => {
    const ids = [...selected].sort((a, b) => a - b);
    const plan = await attempt(() => api.deleteRuns(ids, false), "delete");
    if (!plan) return;
    const ok = await confirmDialog(`Delete ${ids.length === 1 ? `run #${ids[0]}` : `${ids.length} runs`}?`, h("p", null, `This deletes ${plan.description}: their records and their folders on disk. It cannot be undone.`), "Delete");
    if (!ok) return;
    if ((await attempt(() => api.deleteRuns(ids, true), "delete")) !== undefined) {
      for (const id of ids) selected.delete(id);
    }
    void load();
  });

  const load = async () => {
    const r = await attempt(() => api.runsTable());
    if (!r || ctx.left()) return;
    table = r;
    // Runs deleted elsewhere leave the selection.
    const ids = new Set(r.rows.map((x) => x.info.id));
    for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
    drawChooser();
    draw();
  };
  filter.addEventListener("input", draw);
  for (const el of [status, archived, group]) el.addEventListener("change", draw);
  ctx.cleanup(onAppEvent(throttle(() => void load(), 700)));
  // Queue moves and cancels change no run event: reload after each click in the table.
  body.addEventListener("click", (e) => {
    const t = e.target as HTMLElement;
    if (t.closest("[data-testid^=queue-]")) window.setTimeout(() => void load(), 150);
  });
  clear(
    root,
    h(
      "header",
      { class: "screen-head" },
      h("h1", null, "Runs"),
      h("div", { class: "actions" }, filter, status, group, h("label", { class: "check small" }, archived, "archived"), columns, archiveBtn, deleteBtn, compareBtn),
    ),
    body,
    foot,
    await queueSettings(),
  );
  await load();
}

/** The queue's setting: how many queued runs the app's worker runs at once on the CPU (kept in the home). */
async function queueSettings(): Promise<HTMLElement> {
  const s = await attempt(() => api.queueSettings());
  const input = h("input", { testid: "queue-concurrency", attrs: { type: "number", min: 1, max: s?.max_concurrency ?? 64, step: 1, value: s?.cpu_concurrency ?? 1 } });
  const msg = h("span", { class: "small muted", testid: "queue-concurrency-status" });
  const save = async () => {
    const n = Number(input.value);
    if (!Number.isInteger(n) || n < 0) {
      msg.textContent = "a whole number of runs, at least 1";
      return;
    }
    const r = await attempt(() => api.setQueueConcurrency(n), "queue setting");
    if (r) {
      input.value = String(r.cpu_concurrency);
      msg.textContent = `saved: ${r.cpu_concurrency} at a time (from the next queued run on)`;
    }
  };
  return h(
    "p",
    { class: "small queue-settings", testid: "queue-settings" },
    h("label", { class: "inline-group" }, "Queue: runs at once on the CPU ", input),
    " ",
    h("button", { class: "mini", testid: "queue-concurrency-save", on: { click: () => void save() } }, "Save"),
    " ",
    msg,
    h("span", { class: "muted" }, " · with a GPU, one at a time"),
  );
}
