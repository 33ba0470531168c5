// New experiment: every spec field, the tutorial's defaults, validation as you type, clone an earlier spec. A
// hyperparameter field may hold a comma list (and a freezing box "both"): the form then makes a sweep, one run per
// combination, put in the queue that the app's worker runs one at a time.

import { api, type DeviceChoice, type ExperimentSpec, type FieldProblem, type GridAxis, type ModelChoice, type OptimizerKind } from "../bindings";
import type { ViewCtx } from "../main";
import { openJobDialog } from "../dialog";
import { attempt, clear, debounce, h, navigate, routeParams, select } from "../dom";

export async function renderNewExperiment(root: HTMLElement, ctx: ViewCtx): Promise<void> {
  const [datasets, experiments, defaults] = await Promise.all([api.listDatasets(), api.listExperiments(), api.defaultSpec()]);
  let models: ModelChoice[] = await api.listModels();
  if (ctx.left()) return;
  if (datasets.length === 0) {
    clear(root, h("h1", null, "New experiment"), h("div", { class: "empty" }, "Import a dataset first: ", h("a", { attrs: { href: "#/datasets" } }, "Datasets"), "."));
    return;
  }
  const from = routeParams().get("from");
  const cloneOf = from ? experiments.find((e) => e.id === Number(from)) : undefined;
  let spec: ExperimentSpec = cloneOf ? structuredClone(cloneOf.spec) : defaults;
  if (cloneOf) spec.name = `${cloneOf.spec.name} (copy)`;

  // ---- fields -------------------------------------------------------------------------------------------
  const errorsByField = new Map<string, HTMLElement>();
  const field = (key: string, label: string, input: HTMLElement, hint?: string) => {
    const err = h("div", { class: "field-error", testid: `error-${key}` });
    errorsByField.set(key, err);
    return h("label", { class: "field", testid: `field-${key}` }, h("span", null, label), input, hint ? h("small", { class: "muted" }, hint) : null, err);
  };
  const input = (testid: string, value: string | number, type = "text", attrs: Record<string, string | number> = {}) =>
    h("input", { testid, attrs: { type, value: String(value), ...attrs } });
  const check = (testid: string, on: boolean) => h("input", { testid, attrs: { type: "checkbox", checked: on } });

  const f = {
    name: input("spec-name", spec.name, "text", { placeholder: "e.g. tutorial lr 1e-4" }),
    dataset: select("spec-dataset", datasets.map((d) => [d.name, `${d.name} (${d.n_samples.toLocaleString()} samples)`]), spec.dataset || datasets[datasets.length - 1].name),
    model: h("select", { testid: "spec-model" }),
    device: select("spec-device", [["auto", "auto (GPU if there is one)"], ["cpu", "CPU"], ["cuda", "CUDA"], ["metal", "Metal"]], spec.device),
    notes: h("textarea", { testid: "spec-notes", attrs: { rows: 2 } }),
    train: input("spec-train", spec.sample.train, "text", { inputmode: "numeric" }),
    heldout: input("spec-heldout", spec.sample.heldout, "text", { inputmode: "numeric" }),
    sampleSeed: input("spec-sample-seed", spec.sample.seed, "text", { inputmode: "numeric" }),
    epochs: input("spec-epochs", spec.train.epochs, "text", { inputmode: "numeric" }),
    batch: input("spec-batch", spec.train.batch_size, "text", { inputmode: "numeric" }),
    optimizer: select("spec-optimizer", [["adam", "Adam (L2 weight decay)"], ["adamw", "AdamW (decoupled weight decay)"], ["adam,adamw", "both (one run each)"]], spec.train.optimizer),
    lr: input("spec-lr", spec.train.lr, "text"),
    wd: input("spec-wd", spec.train.weight_decay, "text"),
    trainSeed: input("spec-train-seed", spec.train.seed, "text", { inputmode: "numeric" }),
    evalBatch: input("spec-eval-batch", spec.train.eval_batch_size, "number", { min: 1 }),
    freezeVision: check("freeze-vision", spec.freeze.vision),
    freezeText: check("freeze-text", spec.freeze.text),
    freezeScale: check("freeze-logit-scale", spec.freeze.logit_scale),
    bothVision: check("sweep-freeze-vision", false),
    bothText: check("sweep-freeze-text", false),
    bothScale: check("sweep-freeze-logit-scale", false),
    lastLayers: input("freeze-last-layers", spec.freeze.train_last_layers ?? "", "number", { min: 1, placeholder: "all" }),
    save: check("spec-save", spec.save_checkpoint),
  };
  f.notes.value = spec.notes;
  const fillModels = (selected: string) => {
    clear(
      f.model,
      models.length === 0 ? h("option", { attrs: { value: "" } }, "— pick a model folder —") : null,
      models.map((m) => h("option", { attrs: { value: m.path, title: m.path } }, `${m.name} (${m.source})`)),
    );
    f.model.value = selected;
  };
  fillModels(spec.model);
  const browse = h(
    "button",
    {
      testid: "browse-model",
      on: {
        click: async () => {
          const m = await attempt(() => api.pickModel(), "model folder");
          if (m) {
            models = await api.listModels();
            fillModels(m.path);
            validate();
          }
        },
      },
    },
    "Browse…",
  );
  const download = h(
    "button",
    {
      testid: "download-model",
      on: {
        click: async () => {
          const m = await attempt(() => downloadModel(), "download model");
          if (m) {
            models = await api.listModels();
            fillModels(m.path);
            validate();
          }
        },
      },
    },
    "Download model…",
  );

  // The swept fields: spec key, the field, and its values as typed (a comma list; one value: no sweep).
  const listed: [string, HTMLInputElement | HTMLSelectElement][] = [
    ["sample.train", f.train],
    ["sample.heldout", f.heldout],
    ["sample.seed", f.sampleSeed],
    ["train.epochs", f.epochs],
    ["train.batch_size", f.batch],
    ["train.optimizer", f.optimizer],
    ["train.lr", f.lr],
    ["train.weight_decay", f.wd],
    ["train.seed", f.trainSeed],
  ];
  const values = (el: HTMLInputElement | HTMLSelectElement) => el.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
  /** The sweep's axes: every field with two or more values, each freezing box marked "both". */
  const grid = (): GridAxis[] => {
    const axes: GridAxis[] = listed.filter(([, el]) => values(el).length > 1).map(([key, el]) => ({ key, values: values(el) }));
    for (const [key, both] of [["freeze.vision", f.bothVision], ["freeze.text", f.bothText], ["freeze.logit_scale", f.bothScale]] as const) {
      if (both.checked) axes.push({ key, values: ["false", "true"] });
    }
    return axes;
  };
  const nRuns = () => grid().reduce((n, a) => n * a.values.length, 1);
  const read = (): ExperimentSpec => {
    const n = (el: HTMLInputElement) => (values(el).length === 0 ? NaN : Number(values(el)[0]));
    const last = f.lastLayers.value.trim();
    return {
      name: f.name.value,
      dataset: f.dataset.value,
      model: f.model.value,
      device: f.device.value as DeviceChoice,
      sample: { train: n(f.train), heldout: n(f.heldout), seed: n(f.sampleSeed) },
      train: {
        epochs: n(f.epochs),
        batch_size: n(f.batch),
        optimizer: (values(f.optimizer)[0] ?? "adam") as OptimizerKind,
        lr: n(f.lr),
        weight_decay: n(f.wd),
        seed: n(f.trainSeed),
        eval_batch_size: n(f.evalBatch),
      },
      freeze: { vision: f.freezeVision.checked, text: f.freezeText.checked, logit_scale: f.freezeScale.checked, train_last_layers: last === "" ? null : Number(last) },
      save_checkpoint: f.save.checked,
      notes: f.notes.value,
    };
  };

  // Numbers the browser cannot parse never reach Rust as NaN: they are caught here.
  const localErrors = (s: ExperimentSpec): FieldProblem[] => {
    const out: FieldProblem[] = [];
    const int = (v: number, field: string, min: number) => {
      if (!Number.isInteger(v) || v < min) out.push({ field, message: min === 0 ? "a whole number, 0 or more" : `a whole number, ${min} or more` });
    };
    int(s.sample.train, "sample.train", 1);
    int(s.sample.heldout, "sample.heldout", 0);
    int(s.sample.seed, "sample.seed", 0);
    int(s.train.epochs, "train.epochs", 1);
    int(s.train.batch_size, "train.batch_size", 1);
    int(s.train.seed, "train.seed", 0);
    int(s.train.eval_batch_size, "train.eval_batch_size", 1);
    if (!Number.isFinite(s.train.lr)) out.push({ field: "train.lr", message: "a number, e.g. 1e-4" });
    if (!Number.isFinite(s.train.weight_decay)) out.push({ field: "train.weight_decay", message: "a number, e.g. 0 or 0.01" });
    if (s.freeze.train_last_layers !== null) int(s.freeze.train_last_layers, "freeze", 1);
    // Every value of a list, not only the first one the spec holds.
    for (const [key, el] of listed) {
      if (key === "train.optimizer") continue;
      const vs = values(el);
      if (vs.length > 1 && vs.some((v) => !Number.isFinite(Number(v)))) out.push({ field: key, message: "numbers separated by commas, e.g. 1e-5, 3e-5" });
    }
    return out;
  };

  const status = h("div", { class: "form-status", testid: "form-status" });
  const createBtn = h("button", { testid: "create-experiment" }, "Create");
  const runBtn = h("button", { class: "primary", testid: "create-and-run" }, "Create and run");
  const queueBtn = h("button", { testid: "queue-runs", title: "Put the run(s) in the queue; the app runs the queue one run at a time" }, "Queue");
  const count = h("span", { class: "run-count", testid: "run-count" }, "1 run");
  let valid = false;
  let seq = 0;
  const show = (errs: FieldProblem[]) => {
    for (const el of errorsByField.values()) el.textContent = "";
    const general: string[] = [];
    for (const e of errs) {
      const el = errorsByField.get(e.field);
      if (el) el.textContent = el.textContent ? `${el.textContent}; ${e.message}` : e.message;
      else general.push(e.field ? `${e.field}: ${e.message}` : e.message);
    }
    valid = errs.length === 0;
    const n = nRuns();
    createBtn.disabled = !valid || n > 1;
    runBtn.disabled = queueBtn.disabled = !valid;
    runBtn.textContent = n > 1 ? `Queue ${n} runs` : "Create and run";
    count.textContent = n > 1 ? `${n} runs` : "1 run";
    status.textContent = valid ? "Ready to run." : general.length ? general.join(" · ") : `${errs.length} field(s) to fix.`;
    status.className = `form-status ${valid ? "ok-text" : "failed-text"}`;
  };
  const validate = async () => {
    const mine = ++seq;
    const s = read();
    const local = localErrors(s);
    if (local.length) return show(local);
    const errs = await attempt(() => api.checkSpec(s), "validation");
    if (errs && mine === seq && !ctx.left()) show(errs);
  };
  const later = debounce(() => void validate(), 250);
  root.addEventListener("input", later);
  root.addEventListener("change", later);

  const enqueue = async () => {
    await validate();
    if (!valid) return;
    const q = await attempt(() => api.queueRuns(read(), grid()), "queue");
    if (!q) return;
    navigate(q.sweep_id != null ? `/sweeps/${q.sweep_id}` : "/runs");
  };
  queueBtn.addEventListener("click", () => void enqueue());
  const create = async (run: boolean) => {
    if (nRuns() > 1) return enqueue();
    await validate();
    if (!valid) return;
    const exp = await attempt(() => api.createExperiment(read()), "create experiment");
    if (!exp) return;
    if (!run) return navigate(`/runs`);
    const r = await attempt(() => api.startRun(exp.id), "start run");
    if (r) navigate(`/runs/${r.id}`);
  };
  createBtn.addEventListener("click", () => void create(false));
  runBtn.addEventListener("click", () => void create(true));

  const template = select(
    "spec-template",
    [["", "The tutorial's defaults"], ...experiments.map((e): [string, string] => [String(e.id), `Clone: ${e.name} (#${e.id})`])],
    cloneOf ? String(cloneOf.id) : "",
  );
  template.addEventListener("change", () => navigate(template.value ? `/new?from=${template.value}` : "/new"));

  clear(
    root,
    h("header", { class: "screen-head" }, h("h1", null, "New experiment"), h("label", { class: "inline-group" }, h("span", { class: "muted" }, "Start from"), template)),
    h(
      "div",
      { class: "form" },
      h(
        "section",
        { class: "panel" },
        h("h2", null, "What"),
        h(
          "div",
          { class: "form-grid" },
          field("name", "Name", f.name),
          field("dataset", "Dataset", f.dataset),
          field("model", "Model (Hugging Face CLIP folder)", h("div", { class: "inline-group" }, f.model, browse, download), "a folder with config.json, weights and tokenizer, or a model from the hub"),
          field("device", "Device", f.device),
        ),
        field("notes", "Notes", f.notes),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", null, "Sample"),
        h("p", { class: "muted small" }, "A seeded random draw; the held-out split shares no image with the training split."),
        h("div", { class: "form-grid" }, field("sample.train", "Training samples", f.train), field("sample.heldout", "Held-out samples", f.heldout), field("sample.seed", "Seed", f.sampleSeed)),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", null, "Training"),
        h("p", { class: "muted small" }, "Any of these fields may hold a comma list (lr 1e-5, 3e-5, 1e-4): the form then makes a sweep, one run per combination, queued and run one at a time."),
        h(
          "div",
          { class: "form-grid" },
          field("train.epochs", "Epochs", f.epochs),
          field("train.batch_size", "Batch size", f.batch),
          field("train.optimizer", "Optimizer", f.optimizer),
          field("train.lr", "Learning rate", f.lr),
          field("train.weight_decay", "Weight decay", f.wd),
          field("train.seed", "Shuffle seed", f.trainSeed),
          field("train.eval_batch_size", "Scoring batch size", f.evalBatch),
        ),
      ),
      h(
        "section",
        { class: "panel" },
        h("h2", null, "What to freeze"),
        h(
          "div",
          { class: "form-grid" },
          h("span", null, h("label", { class: "check" }, f.freezeVision, "Vision tower"), h("label", { class: "check small muted" }, f.bothVision, "both")),
          h("span", null, h("label", { class: "check" }, f.freezeText, "Text tower"), h("label", { class: "check small muted" }, f.bothText, "both")),
          h("span", null, h("label", { class: "check" }, f.freezeScale, "Temperature (logit scale)"), h("label", { class: "check small muted" }, f.bothScale, "both")),
          field("freeze", "Train only the last N layers", f.lastLayers, "empty: all layers"),
        ),
        h("label", { class: "check" }, f.save, "Save the fine-tuned checkpoint (needed for export)"),
      ),
      h("div", { class: "actions sticky" }, status, count, createBtn, queueBtn, runBtn),
    ),
  );
  await validate();
}

/** "Download model…": a CLIP model from the Hugging Face hub into its standard cache (shared with transformers). */
function downloadModel(): Promise<ModelChoice | undefined> {
  return openJobDialog<ModelChoice>({
    title: "Download a CLIP model",
    testid: "model-download",
    intro: "From the Hugging Face hub (HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE apply). An interrupted download resumes.",
    fields: [{ key: "repo", label: "Model id", value: "openai/clip-vit-base-patch32", placeholder: "owner/name or owner/name@revision", required: true }],
    startLabel: "Download",
    start: (v, job) => api.pullModel(job, v.repo),
    done: (m) => `Downloaded ${m.name} into ${m.path}.`,
    closeOnDone: true,
  });
}
