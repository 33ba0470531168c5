// What a run measured about itself (speed, memory, the machine), as the run page and the compare view show it.

import type { CompareRun, RunSystem } from "./bindings";
import { h, num, tablePanel } from "./dom";

/** One measure: its label, its test id and how it reads. */
type Measure = [label: string, testid: string, text: (s: RunSystem) => string];

const unit = (x: number | null | undefined, digits: number, u: string) => (x == null ? "–" : `${num(x, digits)} ${u}`);

const MEASURES: Measure[] = [
  ["Training step", "system-step", (s) => unit(s.train_step_s, 3, "s")],
  ["Training", "system-train-speed", (s) => unit(s.train_images_per_s, 1, "images/s")],
  ["Scoring", "system-score-speed", (s) => unit(s.score_images_per_s, 1, "images/s")],
  ["Peak memory", "system-peak", (s) => unit(s.peak_rss_mib, 0, "MiB") + (s.gpu_memory_mib == null ? "" : ` (GPU ${num(s.gpu_memory_mib, 0)} MiB)`)],
  ["Device", "system-device", (s) => s.machine.device + (s.machine.gpu ? ` (${s.machine.gpu})` : "")],
  ["Machine", "system-machine", (s) => `${s.machine.cpu}, ${s.machine.threads} threads`],
  ["Matrix products", "system-blas", (s) => s.machine.blas],
  ["CLIP Lab", "system-version", (s) => s.machine.version + (s.machine.features.length ? ` (${s.machine.features.join(", ")})` : "")],
];

/** The run page's "Speed and machine" list (a line saying so where the run measured nothing). */
export function systemList(s: RunSystem | null): HTMLElement {
  if (!s) return h("p", { class: "muted small", testid: "run-system" }, "Not measured: the run stopped before it scored, or it was pulled from MLflow.");
  return h("dl", { class: "kv", testid: "run-system" }, MEASURES.map(([label, testid, text]) => [h("dt", null, label), h("dd", { testid }, text(s))]));
}

/** The compare view's speed and memory of each run, one row per run. */
export function systemTable(runs: CompareRun[]): HTMLElement {
  const shown = MEASURES.filter(([, testid]) => testid !== "system-blas" && testid !== "system-version");
  return tablePanel(
    "Speed and memory",
    { testid: "compare-system", class: "grid-table compact" },
    ["Run", ...shown.map(([label]) => label)],
    runs.map((r) =>
      h(
        "tr",
        { testid: `system-row-${r.info.id}` },
        h("td", null, h("span", { class: "swatch", style: `background:${r.colour}` }), ` #${r.info.id}`),
        shown.map(([, testid, text]) => h("td", { class: testid === "system-machine" || testid === "system-device" ? "" : "num", testid }, r.system ? text(r.system) : "–")),
      ),
    ),
  );
}
