// One run: live progress while it runs, then its metrics, charts, spec, log and per-sample cards.

import { api, type ChartSvg, type RunSeries, type RunView, type SampleCard, type SampleDelta, type SampleSort, type Split } from "../bindings";
import { beforeAfterChart, type BeforeAfterKind, type BeforeAfterRun } from "../beforeafter";
import { epochLossChart, lossChart, type ChartRun } from "../chart";
import { calibrationChart, histChart, lettersChart, sampleSlopeChart, type ScoreRun } from "../scorecharts";
import type { ViewCtx } from "../main";
import { pushToMlflow } from "./mlflow";
import { attempt, badge, bar, bytes, checkpointBadge, clear, confirmDialog, done, duration, h, navigate, onAppEvent, pagedGrid, pct, sci, select, svgNode, tagChips, thumb, when } from "../dom";
import { systemList } from "../system";

const BEFORE = "#9AA0A6";

export async function renderRun(root: HTMLElement, ctx: ViewCtx, id: number): Promise<void> {
  const [view, labels] = await Promise.all([api.runView(id), api.runLabels(id)]);
  if (ctx.left()) return;
  const info = view.detail.info;
  const live = info.status === "running" || info.status === "queued";
  const exportMsg = h("div", { testid: "export-result" });
  const exportCheckpoint = async () => {
    const r = await attempt(() => api.exportCheckpoint(id), "export checkpoint");
    if (r) clear(exportMsg, h("div", { class: "panel ok" }, "Checkpoint exported to ", h("span", { class: "path", testid: "exported-path" }, r.dir), ` (${r.files.length} files).`));
  };
  const exportReport = async () => {
    const r = await attempt(() => api.exportReport([id]), "export charts");
    if (r) clear(exportMsg, h("div", { class: "panel ok" }, `${r.files.length} charts and CSV written to `, h("span", { class: "path", testid: "exported-path" }, r.dir)));
  };
  const archive = async () => {
    if (await done(() => api.setArchived([id], !labels.run.archived), "archive")) void renderAgain();
  };
  const deleteRun = async () => {
    const plan = await attempt(() => api.deleteRuns([id], false), "delete");
    if (!plan) return;
    if (!(await confirmDialog(`Delete run #${id}?`, h("p", null, `This deletes ${plan.description}: the run's records and its folder on disk. It cannot be undone.`), "Delete"))) return;
    if ((await attempt(() => api.deleteRuns([id], true), "delete")) !== undefined) navigate("/runs");
  };
  const deleteCheckpoint = async () => {
    const ok = await confirmDialog(`Delete run #${id}'s checkpoint?`, h("p", null, "Its fine-tuned weights are deleted from the disk; the run's records (losses, scores, metrics) stay. It can no longer be exported."), "Delete checkpoint");
    if (!ok) return;
    const freed = await attempt(() => api.deleteCheckpoint(id), "delete checkpoint");
    if (freed !== undefined) {
      clear(exportMsg, h("div", { class: "panel ok", testid: "checkpoint-deleted" }, `Checkpoint deleted (${bytes(freed)} freed).`));
      window.setTimeout(() => void renderAgain(), 800);
    }
  };
  const again = async () => {
    const r = await attempt(() => api.startRun(info.experiment_id), "run again");
    if (r) navigate(`/runs/${r.id}`);
  };
  clear(
    root,
    h(
      "header",
      { class: "screen-head" },
      h("h1", { testid: "run-title" }, h("a", { attrs: { href: "#/runs" } }, "Runs"), ` / #${id} · ${info.experiment_name}`),
      h(
        "div",
        { class: "actions" },
        h("button", { testid: "export-checkpoint", attrs: { disabled: !view.detail.checkpoint }, on: { click: exportCheckpoint } }, "Export checkpoint…"),
        h("button", { testid: "export-report", attrs: { disabled: !view.summary }, on: { click: exportReport } }, "Export charts & CSV…"),
        h("button", { testid: "push-mlflow", on: { click: () => void attempt(() => pushToMlflow([id]), "push to MLflow") } }, "Push to MLflow…"),
        h("button", { testid: "clone-spec", on: { click: () => navigate(`/new?from=${info.experiment_id}`) } }, "Clone spec"),
        h("button", { testid: "run-again", attrs: { disabled: live }, on: { click: again } }, "Run again"),
        h("button", { testid: "archive-run", on: { click: archive } }, labels.run.archived ? "Unarchive" : "Archive"),
        h("button", { testid: "delete-checkpoint", attrs: { disabled: !view.detail.checkpoint || live }, on: { click: deleteCheckpoint } }, "Delete checkpoint…"),
        h("button", { class: "danger", testid: "delete-run", attrs: { disabled: live }, on: { click: deleteRun } }, "Delete run…"),
      ),
    ),
    h(
      "p",
      { class: "meta" },
      badge(info.status),
      " ",
      checkpointBadge(view.checkpoint_state),
      ` dataset ${info.dataset_name} · device ${info.device ?? "–"} · created ${when(info.created_at)}`,
      info.ended_at ? ` · ended ${when(info.ended_at)}` : "",
    ),
    exportMsg,
    info.error ? h("div", { class: "panel failed", testid: "run-error" }, h("b", null, "The run failed: "), info.error) : null,
  );
  if (live) {
    root.appendChild(livePanel(view, ctx, () => void renderAgain()));
  } else {
    root.appendChild(summaryTiles(view));
    const run = { run_id: id, label: view.series[0]?.label ?? `run ${id}`, colour: view.colour };
    const scores = view.score_charts.map((scores) => ({ ...run, scores }));
    root.appendChild(
      chartsGrid(view.charts, "run-charts", {
        series: view.series,
        beforeAfter: { runs: [{ ...run, metrics: info.metrics }], charts: ["metrics"] },
        scores,
        slope: { run, samples: view.slope, total: view.slope_total },
      }),
    );
  }
  root.appendChild(labelsPanel(id, labels, () => void renderAgain()));
  root.appendChild(specPanel(view));
  if (view.summary) root.appendChild(await samplesPanel(id, view.colour, ctx));

  async function renderAgain(): Promise<void> {
    if (ctx.left()) return;
    // Re-enter the route: the run finished, show its final state.
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }
}

function tile(label: string, before: number | null | undefined, after: number | null | undefined, testid: string): HTMLElement {
  return h(
    "div",
    { class: "tile" },
    h("div", { class: "tile-value", testid }, pct(before), h("span", { class: "muted" }, " → "), h("b", null, pct(after))),
    h("div", { class: "tile-label" }, label),
  );
}

function summaryTiles(view: RunView): HTMLElement {
  const m = view.detail.info.metrics;
  const last = view.detail.epoch_losses[view.detail.epoch_losses.length - 1];
  return h(
    "section",
    { class: "tiles", testid: "run-summary" },
    tile("Held-out accuracy", m.heldout_before?.accuracy, m.heldout_after?.accuracy, "heldout-acc"),
    tile("Held-out mean p(right caption)", m.heldout_before?.mean_label_prob, m.heldout_after?.mean_label_prob, "heldout-prob"),
    tile("Train accuracy", m.train_before?.accuracy, m.train_after?.accuracy, "train-acc"),
    h(
      "div",
      { class: "tile" },
      h("div", { class: "tile-value", testid: "final-loss" }, last ? last.train_loss.toFixed(4) : "–", last?.heldout_loss != null ? h("span", { class: "muted" }, ` / ${last.heldout_loss.toFixed(4)}`) : ""),
      h("div", { class: "tile-label" }, "Final loss (train / held-out)"),
    ),
  );
}

/** Progress bar, phase, ETA and the loss curve growing step by step; cancel. */
function livePanel(view: RunView, ctx: ViewCtx, onFinished: () => void): HTMLElement {
  const id = view.detail.info.id;
  let ended = false;
  const finished = () => {
    if (ended || ctx.left()) return;
    ended = true;
    onFinished();
  };
  // The end may come without an event this page sees: a run that failed between this page's load and its
  // subscription, or one another process runs (`cliplab run`, the queue). The store says so: look every 2 s.
  const poll = window.setInterval(() => {
    api
      .listRuns()
      .then((runs) => {
        const r = runs.find((x) => x.id === id);
        if (r && r.status !== "running" && r.status !== "queued") finished();
      })
      .catch(() => undefined); // the next look tries again
  }, 2000);
  ctx.cleanup(() => window.clearInterval(poll));
  const info = view.detail.info;
  const steps: [number, number][] = view.detail.step_losses.map((s) => [s.step, s.loss]);
  const phase = h("div", { class: "phase", testid: "live-phase" }, info.phase ? info.phase.replace("_", " ") : "starting");
  const fill = h("div", { class: "fill" });
  const progressText = h("div", { class: "small muted", testid: "live-progress" });
  const chart = h("div", { class: "live-chart", testid: "live-loss" });
  const log = h("div", { class: "log small", testid: "live-log" });
  const setProgress = (done: number, total: number, eta: number | null) => {
    fill.style.width = `${total ? ((done / total) * 100).toFixed(1) : 0}%`;
    progressText.textContent = `${done.toLocaleString()} / ${total.toLocaleString()} · ETA ${duration(eta)}`;
  };
  setProgress(info.phase_done ?? 0, info.phase_total ?? 0, info.phase_eta_s);
  const cancel = h(
    "button",
    { class: "danger", testid: "cancel-run", on: {
        click: async () => {
          cancel.disabled = true;
          cancel.textContent = "Cancelling…";
          // A run still waiting in the queue is taken out of it; a running one stops after its step.
          const running = await api.cancelRun(id).then(() => true, () => false);
          if (!running && (await done(() => api.cancelQueued(id), "cancel"))) finished();
        },
      } },
    "Cancel run",
  );
  const drawChart = () => clear(chart, lossSparkline(steps, view.colour));
  drawChart();
  ctx.cleanup(
    onAppEvent((e) => {
      if (e.type === "run_finished" && e.run_id === id) return finished();
      if (e.type !== "run" || e.run_id !== id) return;
      const ev = e.event;
      switch (ev.kind) {
        case "phase_started":
          document.querySelectorAll(".meta [data-testid=status]").forEach((b) => {
            b.textContent = "running";
            b.className = "badge status-running";
          });
          phase.textContent = ev.phase.replace("_", " ");
          setProgress(0, ev.total, null);
          break;
        case "progress":
          setProgress(ev.done, ev.total, ev.eta_s);
          break;
        case "step":
          steps.push([ev.step, ev.loss]);
          drawChart();
          break;
        case "epoch_ended":
          log.prepend(h("div", null, `epoch ${ev.epoch}: train loss ${ev.train_loss.toFixed(4)}${ev.heldout_loss != null ? `, held-out ${ev.heldout_loss.toFixed(4)}` : ""}`));
          break;
        case "info":
          log.prepend(h("div", null, ev.message));
          break;
      }
    }),
  );
  return h(
    "section",
    { class: "panel live", testid: "live-panel" },
    h("div", { class: "live-head" }, h("h2", null, "Running"), cancel),
    phase,
    h("div", { class: "progress" }, fill),
    progressText,
    chart,
    log,
  );
}

/** A small SVG line chart of the step losses, redrawn as steps arrive. */
export function lossSparkline(points: [number, number][], colour: string): Node {
  const W = 640;
  const H = 200;
  const P = 36;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "sparkline");
  const el = (tag: string, attrs: Record<string, string | number>, text?: string) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  if (points.length === 0) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#888" }, "the loss curve appears with the first step");
    return svg;
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys, y0 + 1e-6);
  const sx = (x: number) => P + ((x - x0) / (x1 - x0)) * (W - 2 * P);
  const sy = (y: number) => H - P + 8 - ((y - y0) / (y1 - y0)) * (H - 2 * P);
  el("line", { x1: P, y1: H - P + 8, x2: W - P, y2: H - P + 8, stroke: "#ccc" });
  el("text", { x: P, y: 14, fill: "#666", "font-size": 12 }, `loss ${y1.toFixed(3)}`);
  el("text", { x: P, y: H - 4, fill: "#666", "font-size": 12 }, `min ${y0.toFixed(3)} · step ${x1}`);
  el("polyline", { points: points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
  return svg;
}

/** What `chartsGrid` draws in the page rather than as the core's SVG: the step- and epoch-loss charts
 *  (`series`), the before → after charts it names (`beforeAfter`), the distribution, calibration and
 *  answer-letter charts (`scores`) and one run's per-sample slope chart (`slope`). */
export type Interactive = {
  series?: RunSeries[];
  beforeAfter?: { runs: BeforeAfterRun[]; charts: BeforeAfterKind[] };
  scores?: ScoreRun[];
  slope?: { run: ChartRun; samples: SampleDelta[]; total: number };
};

/** The charts: each one `interactive` covers drawn in the page from the store's numbers, the rest the core's
 *  SVGs. */
export function chartsGrid(charts: ChartSvg[], testid: string, interactive: Interactive): HTMLElement {
  const { series, beforeAfter, scores, slope } = interactive;
  const chart = (c: ChartSvg): HTMLElement => {
    const id = `chart-${c.name}`;
    if (series && c.name === "loss_steps") return lossChart(series, id, c.title);
    if (series && c.name === "loss_epochs") return epochLossChart(series, id, c.title);
    if (slope && c.name === "label_prob_slope") return sampleSlopeChart(slope.run, slope.samples, slope.total, id, c.title);
    const kind = beforeAfter?.charts.find((k) => k === c.name);
    if (beforeAfter && kind) return beforeAfterChart(beforeAfter.runs, kind, id, c.title);
    if (scores?.length && c.name === "label_prob_hist") return histChart(scores, id, c.title);
    if (scores?.length && c.name === "calibration") return calibrationChart(scores, id, c.title);
    if (scores?.length && c.name === "letters") return lettersChart(scores, id, c.title);
    return h("figure", { class: "chart", testid: id, attrs: { "data-chart": c.name } }, svgNode(c.svg));
  };
  return h("section", { class: "charts", testid }, charts.map(chart));
}

async function deleteExperiment(experimentId: number): Promise<void> {
  const plan = await attempt(() => api.deleteExperiment(experimentId, false), "delete experiment");
  if (!plan) return;
  if (!(await confirmDialog(`Delete experiment #${experimentId}?`, h("p", null, `This deletes ${plan.description}. It cannot be undone.`), "Delete"))) return;
  if ((await attempt(() => api.deleteExperiment(experimentId, true), "delete experiment")) !== undefined) navigate("/runs");
}

/** Tags and notes of the run and of its experiment, editable. */
function labelsPanel(id: number, labels: import("../bindings").LabelsView, changed: () => void): HTMLElement {
  const tagRow = (what: "run" | "experiment", tags: string[]) => {
    const input = h("input", { class: "tag-input", testid: `${what}-tag-input`, attrs: { placeholder: "add a tag", maxlength: 64 } });
    const set = async (tag: string, on: boolean) => {
      const ok = what === "run" ? await done(() => api.tagRun(id, tag, on), "tag") : await done(() => api.tagExperiment(labels.experiment_id, tag, on), "tag");
      if (ok) changed();
    };
    const add = () => {
      const t = input.value.trim();
      if (t) void set(t, true);
    };
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") add(); });
    return h("div", { class: "tag-row", testid: `${what}-tags` }, h("span", { class: "muted small" }, what === "run" ? "Run tags" : "Experiment tags"), tagChips(tags, (t) => void set(t, false), `${what}-tag`), input, h("button", { class: "mini", testid: `${what}-tag-add`, on: { click: add } }, "Add"));
  };
  const noteBox = (what: "run" | "experiment", note: string) => {
    const area = h("textarea", { testid: `${what}-note`, attrs: { rows: 2, placeholder: what === "run" ? "A note on this run" : "A note on its experiment" } });
    area.value = note;
    const status = h("span", { class: "small muted", testid: `${what}-note-status` });
    area.addEventListener("change", async () => {
      const ok = what === "run" ? await done(() => api.setRunNote(id, area.value), "note") : await done(() => api.setExperimentNote(labels.experiment_id, area.value), "note");
      if (ok) status.textContent = "saved";
    });
    return h("label", { class: "field" }, h("span", null, what === "run" ? "Run note" : "Experiment note"), area, status);
  };
  return h(
    "section",
    { class: "panel labels-panel", testid: "labels-panel" },
    h("h2", null, "Tags and notes"),
    labels.run.archived ? h("p", { class: "chip warn", testid: "archived-mark" }, "archived") : null,
    tagRow("run", labels.run.tags),
    tagRow("experiment", labels.experiment_tags),
    h("p", { class: "small" }, h("button", { class: "ghost mini failed-text", testid: "delete-experiment", on: { click: () => void deleteExperiment(labels.experiment_id) } }, "Delete the experiment and all its runs…")),
    h("div", { class: "two-col" }, noteBox("run", labels.run.note), noteBox("experiment", labels.experiment_note)),
  );
}

function specPanel(view: RunView): HTMLElement {
  const s = view.detail.spec;
  const rows: [string, string][] = [
    ["Model", s.model],
    ["Sample", `${s.sample.train} train + ${s.sample.heldout} held-out, seed ${s.sample.seed}`],
    ["Optimizer", `${s.train.optimizer}, lr ${sci(s.train.lr)}, weight decay ${s.train.weight_decay}`],
    ["Epochs × batch", `${s.train.epochs} × ${s.train.batch_size} (shuffle seed ${s.train.seed})`],
    ["Frozen", [s.freeze.vision && "vision", s.freeze.text && "text", s.freeze.logit_scale && "temperature", s.freeze.train_last_layers != null && `all but the last ${s.freeze.train_last_layers} layers`].filter(Boolean).join(", ") || "nothing"],
    ["Checkpoint", view.detail.checkpoint ?? (s.save_checkpoint ? "not saved (yet)" : "not kept")],
  ];
  if (s.notes) rows.push(["Notes", s.notes]);
  return h(
    "section",
    { class: "panel two-col" },
    h(
      "div",
      null,
      h("h2", null, "Spec"),
      h("dl", { class: "kv", testid: "run-spec" }, rows.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])),
      h("h2", null, "Speed and machine"),
      systemList(view.detail.system),
    ),
    h(
      "div",
      null,
      h("h2", null, "Log"),
      h("div", { class: "log small", testid: "run-log" }, view.detail.log.length ? view.detail.log.map((l) => h("div", null, h("span", { class: "muted" }, `${when(l.at)} `), l.message)) : h("span", { class: "muted" }, "nothing logged")),
    ),
  );
}

/** Per-sample cards: every caption with its probability before (grey) and after (the run's colour). */
async function samplesPanel(id: number, colour: string, ctx: ViewCtx): Promise<HTMLElement> {
  const split = select("card-split", [["", "train + held-out"], ["heldout", "held-out"], ["train", "train"]]);
  const sort = select("card-sort", [
    ["gain", "largest gain first"],
    ["loss", "largest loss first"],
    ["hardest", "lowest p(right) after"],
    ["order", "draw order"],
  ]);
  const flipped = h("input", { testid: "card-flipped", attrs: { type: "checkbox" } });
  const text = h("input", { testid: "card-filter", attrs: { type: "search", placeholder: "Search captions" } });
  const { grid, pagerBox, load, reset } = pagedGrid({
    testid: "run-cards",
    pagerTestid: "card-pager",
    limit: 24,
    left: ctx.left,
    fetch: (offset, limit) =>
      attempt(() =>
        api.runSamples(id, { split: split.value ? (split.value as Split) : null, sort: sort.value as SampleSort, flipped_only: flipped.checked, text: text.value, offset, limit }),
      ),
    render: (page) => page.items.map((c) => scoreCard(c, colour)),
  });
  const reload = reset(150);
  for (const el of [split, sort, flipped]) el.addEventListener("change", reload);
  text.addEventListener("input", reload);
  const panel = h(
    "section",
    { class: "panel", testid: "samples-panel" },
    h("h2", null, "Samples"),
    h(
      "p",
      { class: "muted small" },
      "Each caption's probability before (grey bar) and after fine-tuning (coloured bar); ",
      h("sup", null, "b"),
      " / ",
      h("sup", null, "a"),
      " mark the model's top choice before / after; the right caption is green.",
    ),
    h("div", { class: "toolbar" }, split, sort, h("label", { class: "check" }, flipped, "right/wrong changed"), text, pagerBox),
    grid,
  );
  await load();
  return panel;
}

export function scoreCard(c: SampleCard, colour: string): HTMLElement {
  const top = (p: number[] | null) => (p ? p.indexOf(Math.max(...p)) : -1);
  const tb = top(c.before);
  const ta = top(c.after);
  return h(
    "article",
    { class: "card score-card", testid: "score-card", attrs: { "data-sample": c.sample_id } },
    thumb(c.image_id, c.filename),
    h(
      "div",
      { class: "card-title" },
      h("span", null, c.filename),
      h("span", { class: `chip ${c.split}` }, c.split === "heldout" ? "held-out" : "train"),
      c.delta != null ? h("span", { class: c.delta >= 0 ? "ok-text" : "failed-text", testid: "card-delta" }, `${c.delta >= 0 ? "+" : ""}${(c.delta * 100).toFixed(1)} pts`) : null,
    ),
    h(
      "ol",
      { class: "choices scored" },
      c.choices.map((cap, i) =>
        h(
          "li",
          { class: i === c.label ? "right" : "", testid: i === c.label ? "right-choice" : "choice" },
          h("span", { class: "letter" }, c.letters[i], i === tb ? h("sup", { title: "top choice before" }, "b") : null, i === ta ? h("sup", { title: "top choice after" }, "a") : null),
          h("span", { class: "caption" }, cap),
          h(
            "span",
            { class: "probs" },
            bar(c.before?.[i], BEFORE, "before"),
            bar(c.after?.[i], colour, "after"),
            h("span", { class: "small", testid: "prob-text" }, `${pct(c.before?.[i], 0)} → ${pct(c.after?.[i], 0)}`),
          ),
        ),
      ),
    ),
  );
}
