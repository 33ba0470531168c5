// New experiment: every spec field, the tutorial's defaults, validation as you type, clone an earlier spec.

import { api, type DeviceChoice, type ExperimentSpec, type FieldProblem, type ModelChoice, type OptimizerKind } from "../bindings";
import type { ViewCtx } from "../main";
import { attempt, clear, debounce, h, navigate, routeParams } from "../dom";

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
  const select = (testid: string, options: [string, string][], value: string) => {
    const s = h("select", { testid }, options.map(([v, t]) => h("option", { attrs: { value: v } }, t)));
    s.value = value;
    return s;
  };
  const check = (testid: string, on: boolean) => h("input", { testid, attrs: { type: "checkbox", checked: on } });

  const f = {
    name: input("spec-name", spec.name, "text", { placeholder: "e.g. tutorial lr 1e-4" }),
    dataset: select("spec-dataset", datasets.map((d) => [d.name, `${d.name} (${d.n_samples.toLocaleString()} samples)`]), spec.dataset || datasets[datasets.length - 1].name),
    model: h("select", { testid: "spec-model" }),
    device: select("spec-device", [["auto", "auto (GPU if there is one)"], ["cpu", "CPU"], ["cuda", "CUDA"], ["metal", "Metal"]], spec.device),
    notes: h("textarea", { testid: "spec-notes", attrs: { rows: 2 } }),
    train: input("spec-train", spec.sample.train, "number", { min: 1 }),
    heldout: input("spec-heldout", spec.sample.heldout, "number", { min: 0 }),
    sampleSeed: input("spec-sample-seed", spec.sample.seed, "number", { min: 0 }),
    epochs: input("spec-epochs", spec.train.epochs, "number", { min: 1 }),
    batch: input("spec-batch", spec.train.batch_size, "number", { min: 1 }),
    optimizer: select("spec-optimizer", [["adam", "Adam (L2 weight decay)"], ["adamw", "AdamW (decoupled weight decay)"]], spec.train.optimizer),
    lr: input("spec-lr", spec.train.lr, "text"),
    wd: input("spec-wd", spec.train.weight_decay, "text"),
    trainSeed: input("spec-train-seed", spec.train.seed, "number", { min: 0 }),
    evalBatch: input("spec-eval-batch", spec.train.eval_batch_size, "number", { min: 1 }),
    freezeVision: check("freeze-vision", spec.freeze.vision),
    freezeText: check("freeze-text", spec.freeze.text),
    freezeScale: check("freeze-logit-scale", spec.freeze.logit_scale),
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

  const read = (): ExperimentSpec => {
    const n = (el: HTMLInputElement) => (el.value.trim() === "" ? NaN : Number(el.value));
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
        optimizer: f.optimizer.value as OptimizerKind,
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
    return out;
  };

  const status = h("div", { class: "form-status", testid: "form-status" });
  const createBtn = h("button", { testid: "create-experiment" }, "Create");
  const runBtn = h("button", { class: "primary", testid: "create-and-run" }, "Create and run");
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
    createBtn.disabled = runBtn.disabled = !valid;
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

  const create = async (run: boolean) => {
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
          field("model", "Model (Hugging Face CLIP folder)", h("div", { class: "inline-group" }, f.model, browse), "config.json, model.safetensors, tokenizer.json"),
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
          h("label", { class: "check" }, f.freezeVision, "Vision tower"),
          h("label", { class: "check" }, f.freezeText, "Text tower"),
          h("label", { class: "check" }, f.freezeScale, "Temperature (logit scale)"),
          field("freeze", "Train only the last N layers", f.lastLayers, "empty: all layers"),
        ),
        h("label", { class: "check" }, f.save, "Save the fine-tuned checkpoint (needed for export)"),
      ),
      h("div", { class: "actions sticky" }, status, createBtn, runBtn),
    ),
  );
  await validate();
}
