// CLIP Lab's front end: a hash router over the screens. Every screen reads what the store holds through the
// typed commands in bindings.ts and listens to the app's events for live updates.

import { api, type RunInfo } from "./bindings";
import { attempt, clear, clearErrors, h, message, navigate, onAppEvent, showError, startEventBus, throttle } from "./dom";
import { renderDatasets, renderDataset } from "./views/datasets";
import { renderNewExperiment } from "./views/experiment";
import { renderRuns } from "./views/runs";
import { renderRun } from "./views/run";
import { renderCompare } from "./views/compare";
import { pullFromMlflow } from "./views/mlflow";
import { renderSweep, renderSweeps } from "./views/sweep";

export interface ViewCtx {
  /** Registers something to undo when the user leaves the screen. */
  cleanup(fn: () => void): void;
  /** True once the user has left the screen (late results are dropped). */
  left(): boolean;
}

type Screen<A extends unknown[]> = (root: HTMLElement, ctx: ViewCtx, ...args: A) => Promise<void>;

/** The screens that list things (`#/runs`), each with the screen of one of them (`#/runs/3`). */
const LISTS = new Map<string, { all: Screen<[]>; one: Screen<[id: number]> }>([
  ["datasets", { all: renderDatasets, one: renderDataset }],
  ["runs", { all: renderRuns, one: renderRun }],
  ["sweeps", { all: renderSweeps, one: renderSweep }],
]);

let cleanups: (() => void)[] = [];
let generation = 0;

async function route(): Promise<void> {
  for (const fn of cleanups) fn();
  cleanups = [];
  const gen = ++generation;
  const ctx: ViewCtx = { cleanup: (fn) => cleanups.push(fn), left: () => gen !== generation };
  const hash = location.hash.replace(/^#\/?/, "");
  const [path] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  const view = document.getElementById("view");
  if (!view) return;
  clearErrors();
  document.querySelectorAll<HTMLAnchorElement>("#sidebar a[data-route]").forEach((a) => {
    a.classList.toggle("active", a.dataset.route === (parts[0] ?? "runs") || (parts[0] === "runs" && a.dataset.route === "runs"));
  });
  const root = h("div", { class: "screen" });
  clear(view, root);
  try {
    const listed = LISTS.get(parts[0] ?? "");
    if (listed && parts[1]) await listed.one(root, ctx, Number(parts[1]));
    else if (listed) await listed.all(root, ctx);
    else if (parts[0] === "new") await renderNewExperiment(root, ctx);
    else if (parts[0] === "compare") await renderCompare(root, ctx);
    else {
      const datasets = await api.listDatasets();
      navigate(datasets.length === 0 ? "/datasets" : "/runs");
    }
  } catch (e) {
    if (!ctx.left()) {
      clear(root, h("div", { class: "panel failed", testid: "view-error" }, h("h2", null, "This screen could not be shown"), h("p", null, message(e))));
    }
  }
}

/** The sidebar: runs this window is running, with their phase. */
async function refreshSidebar(): Promise<void> {
  const box = document.getElementById("active-runs");
  if (!box) return;
  const [active, runs] = await Promise.all([api.activeRuns(), api.listRuns()]);
  const byId = new Map<number, RunInfo>(runs.map((r) => [r.id, r]));
  clear(
    box,
    active.length === 0
      ? null
      : [
          h("div", { class: "muted small" }, "Running"),
          active.map((id) => {
            const r = byId.get(id);
            const frac = r && r.phase_total ? (r.phase_done ?? 0) / r.phase_total : 0;
            return h(
              "a",
              { class: "active-run", attrs: { href: `#/runs/${id}` } },
              h("span", null, `Run ${id}`),
              h("span", { class: "muted small" }, r?.phase ? r.phase.replace("_", " ") : "starting"),
              h("div", { class: "progress thin" }, h("div", { class: "fill", style: `width:${(frac * 100).toFixed(0)}%` })),
            );
          }),
        ],
  );
}

async function main(): Promise<void> {
  window.addEventListener("error", (e) => showError(e.error ?? e.message));
  window.addEventListener("unhandledrejection", (e) => showError(e.reason));
  await startEventBus();
  const sidebar = throttle(() => void refreshSidebar().catch(() => undefined), 1000);
  onAppEvent(sidebar);
  window.addEventListener("hashchange", () => void route());
  document.getElementById("pull-mlflow")?.addEventListener("click", () => void attempt(() => pullFromMlflow(), "pull from MLflow"));
  try {
    const info = await api.appInfo();
    const box = document.getElementById("app-info");
    if (box) {
      clear(
        box,
        h("div", null, `v${info.version} · ${info.devices.join(", ")}`),
        h("div", { title: info.store }, info.home),
      );
    }
    if (info.recovered.length > 0) {
      showError(`Runs ${info.recovered.join(", ")} were interrupted (their process ended); what they recorded is kept.`);
    }
  } catch (e) {
    showError(e);
  }
  sidebar();
  await route();
}

void main();
