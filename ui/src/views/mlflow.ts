// "Push to MLflow…" (a run, or the runs being compared) and "Pull from MLflow…" (the sidebar): MLflow's tracking
// server as the team's shared store. The tracking URI starts as the one this home last reached.

import { api, type PulledRuns, type PushedRun } from "../bindings";
import { h, navigate } from "../dom";
import { openJobDialog } from "../dialog";

const uriHint = "Credentials come from MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME / _PASSWORD.";

/** Opens "Push to MLflow…" for `runIds`; resolves once the dialog is closed. */
export async function pushToMlflow(runIds: number[]): Promise<void> {
  const defaults = await api.mlflowDefaults();
  await openJobDialog<PushedRun[]>({
    title: runIds.length === 1 ? `Push run ${runIds[0]} to MLflow` : `Push ${runIds.length} runs to MLflow`,
    testid: "mlflow-push",
    intro: "Params, tags, losses, the before/after metrics, charts and the per-sample CSV. Pushing again updates the same MLflow run.",
    fields: [
      { key: "uri", label: "Tracking URI", value: defaults.tracking_uri ?? "", placeholder: "http://127.0.0.1:5000", required: true, hint: uriHint },
      { key: "experiment", label: "MLflow experiment", placeholder: "(each run's experiment name)" },
      { key: "checkpoint", label: "Upload the fine-tuned checkpoint too", check: true },
    ],
    startLabel: "Push",
    start: (v, job) => api.mlflowPush(job, { run_ids: runIds, tracking_uri: v.uri, experiment: v.experiment || null, with_checkpoint: v.checkpoint === "true" }),
    done: (pushed) =>
      h(
        "ul",
        { class: "plain" },
        pushed.map((p) =>
          h(
            "li",
            { testid: "mlflow-pushed" },
            `Run ${p.run} → MLflow run ${p.remote_run_id} (${p.created ? "created" : "updated"}: ${p.metrics_logged} metric points, ${p.artifacts} artifacts) `,
            h("a", { attrs: { href: p.url, target: "_blank", rel: "noreferrer" } }, "open"),
            p.warnings.map((w) => h("div", { class: "muted small" }, w)),
          ),
        ),
      ),
  });
}

/** Opens "Pull from MLflow…"; after a pull, offers the pulled runs. */
export async function pullFromMlflow(): Promise<void> {
  const defaults = await api.mlflowDefaults();
  await openJobDialog<PulledRuns>({
    title: "Pull runs from MLflow",
    testid: "mlflow-pull",
    intro: "Brings the runs CLIP Lab pushed to an MLflow experiment (from any machine) into this store, read-only, to compare beside yours.",
    fields: [
      { key: "uri", label: "Tracking URI", value: defaults.tracking_uri ?? "", placeholder: "http://127.0.0.1:5000", required: true, hint: uriHint },
      { key: "experiment", label: "MLflow experiment", required: true },
      { key: "runs", label: "MLflow run ids", placeholder: "(all; or ids separated by commas)" },
    ],
    startLabel: "Pull",
    start: (v, job) =>
      api.mlflowPull(job, {
        tracking_uri: v.uri,
        experiment: v.experiment,
        remote_run_ids: v.runs.split(",").map((s) => s.trim()).filter(Boolean),
      }),
    done: (p) =>
      h(
        "div",
        null,
        h("p", { testid: "mlflow-pulled" }, p.runs.length === 0 ? "No runs to pull." : `Pulled ${p.runs.length} run${p.runs.length === 1 ? "" : "s"} (${p.replaced} updated): ${p.runs.join(", ")}.`),
        p.skipped.map((s) => h("div", { class: "muted small" }, s)),
        p.runs.length > 1 ? h("button", { testid: "mlflow-compare-pulled", on: { click: () => navigate(`/compare?ids=${p.runs.join(",")}`) } }, "Compare them") : null,
      ),
  });
}
