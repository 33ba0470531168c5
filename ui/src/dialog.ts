// A modal form for work that runs a while on another machine's account (an MLflow push or pull, a model download,
// an import from a URL): fields, a Start button, the job's live progress from `job` events, Cancel, and the result
// or the error inside the dialog. One job number per start, chosen here.

import { api, type Event } from "./bindings";
import { clear, h, message, onAppEvent } from "./dom";

export interface Field {
  key: string;
  label: string;
  value?: string;
  placeholder?: string;
  /** A checkbox instead of a text field ("true"/"" as its value). */
  check?: boolean;
  required?: boolean;
  hint?: string;
}

export interface JobDialog<T> {
  title: string;
  testid: string;
  intro?: string;
  fields: Field[];
  startLabel: string;
  /** Runs the job; rejects with the command's readable message. */
  start(values: Record<string, string>, job: number): Promise<T>;
  /** What to show once it is done (the dialog stays open until closed, unless `closeOnDone`). */
  done(result: T): Node | string;
  /** Close as soon as the job succeeds (the caller goes on with the result). */
  closeOnDone?: boolean;
}

let nextJob = Math.floor(Math.random() * 1_000_000_000);

/** One line for a job's progress event. */
function describe(e: Event): string | null {
  switch (e.kind) {
    case "info":
      return e.message;
    case "progress":
      return `${e.phase.replace(/_/g, " ")} ${e.done} / ${e.total}`;
    case "phase_started":
      return e.phase.replace(/_/g, " ");
    default:
      return null;
  }
}

/** Opens the dialog; resolves with the job's result once it succeeded (undefined if closed before). */
export function openJobDialog<T>(d: JobDialog<T>): Promise<T | undefined> {
  return new Promise((resolve) => {
    let result: T | undefined;
    let running: number | null = null;
    const inputs = new Map<string, HTMLInputElement>();
    const rows = d.fields.map((f) => {
      const input = h("input", {
        testid: `${d.testid}-${f.key}`,
        attrs: { type: f.check ? "checkbox" : "text", placeholder: f.placeholder, spellcheck: "false" },
      });
      if (f.check) input.checked = f.value === "true";
      else input.value = f.value ?? "";
      inputs.set(f.key, input);
      return h("label", { class: f.check ? "check" : "field" }, f.check ? [input, " ", f.label] : [h("span", null, f.label), input], f.hint ? h("span", { class: "muted small" }, f.hint) : null);
    });
    const status = h("div", { class: "job-status", testid: `${d.testid}-status`, attrs: { "aria-live": "polite" } });
    const startBtn = h("button", { class: "primary", testid: `${d.testid}-start` }, d.startLabel);
    const cancelBtn = h("button", { testid: `${d.testid}-cancel` }, "Close");
    const dialog = h("dialog", { class: "job-dialog", testid: d.testid }, h("h2", null, d.title), d.intro ? h("p", { class: "muted" }, d.intro) : null, h("div", { class: "form" }, rows), status, h("div", { class: "actions" }, startBtn, cancelBtn));
    const off = onAppEvent((ev) => {
      if (ev.type === "job" && ev.job === running) {
        const line = describe(ev.event);
        if (line) clear(status, h("span", { class: "muted" }, line));
      }
    });
    const close = () => {
      if (running !== null) {
        void api.cancelJob(running).catch(() => undefined);
      }
      off();
      dialog.close();
      dialog.remove();
      resolve(result);
    };
    cancelBtn.addEventListener("click", close);
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      close();
    });
    startBtn.addEventListener("click", async () => {
      const values: Record<string, string> = {};
      for (const f of d.fields) {
        const input = inputs.get(f.key);
        values[f.key] = f.check ? (input?.checked ? "true" : "") : (input?.value ?? "").trim();
        if (f.required && !values[f.key]) {
          clear(status, h("span", { class: "error-text", testid: `${d.testid}-error` }, `${f.label}: required`));
          return;
        }
      }
      const job = ++nextJob;
      running = job;
      startBtn.disabled = true;
      cancelBtn.textContent = "Cancel";
      clear(status, h("span", { class: "muted" }, "Starting…"));
      try {
        result = await d.start(values, job);
        if (d.closeOnDone) {
          running = null;
          close();
          return;
        }
        clear(status, h("div", { class: "ok", testid: `${d.testid}-done` }, d.done(result)));
      } catch (e) {
        clear(status, h("span", { class: "error-text", testid: `${d.testid}-error` }, message(e)));
      } finally {
        running = null;
        startBtn.disabled = false;
        cancelBtn.textContent = "Close";
      }
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}
