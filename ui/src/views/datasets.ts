// Datasets: import (pick files, see the validation report, confirm), the list, and a sample browser.

import { api, type ColumnMap, type ImportDraft, type ImportPreview, type StoredSample } from "../bindings";
import type { ViewCtx } from "../main";
import { openJobDialog } from "../dialog";
import { attempt, clear, confirmDialog, h, navigate, onAppEvent, pagedGrid, thumb, when } from "../dom";

export async function renderDatasets(root: HTMLElement, ctx: ViewCtx): Promise<void> {
  const importBox = h("div", { testid: "import-box" });
  const list = h("div", { testid: "dataset-list" });
  const demoSize = h("input", { class: "narrow", testid: "demo-images", attrs: { type: "number", min: 10, step: 10, value: 2000, title: "Generated images" } });

  const startDraft = (draft: ImportDraft | null | undefined) => {
    if (draft) showDraft(importBox, draft, async () => refresh());
  };
  clear(
    root,
    h(
      "header",
      { class: "screen-head" },
      h("h1", null, "Datasets"),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "primary", testid: "import-dataset", on: { click: async () => startDraft(await attempt(() => api.pickImport())) } }, "Import dataset…"),
        h("button", { testid: "import-url", on: { click: async () => startDraft(await attempt(() => importFromUrl(), "import from URL")) } }, "Import from URL…"),
        h(
          "span",
          { class: "inline-group", title: "Generated caption-contest drawings and a tiny random CLIP: no download" },
          h("button", { testid: "demo-data", on: { click: async () => startDraft(await attempt(() => api.demoImport(Number(demoSize.value) || 2000), "demo data")) } }, "Demo data"),
          demoSize,
          h("span", { class: "muted small" }, "images"),
        ),
      ),
    ),
    h("p", { class: "muted" }, "A dataset is a folder of images plus a metadata file (parquet, CSV or JSONL) with filename, caption_choices and label, joined on the file name."),
    importBox,
    list,
  );

  async function refresh(): Promise<void> {
    const datasets = await api.listDatasets();
    if (ctx.left()) return;
    if (datasets.length === 0) {
      clear(list, h("div", { class: "empty" }, "No dataset yet. Import one, or try the demo data."));
      return;
    }
    clear(
      list,
      h(
        "table",
        { class: "grid-table" },
        h("thead", null, h("tr", null, ["Name", "Samples", "Images", "Skipped at import", "Metadata", "Imported", ""].map((t) => h("th", null, t)))),
        h(
          "tbody",
          null,
          datasets.map((d) =>
            h(
              "tr",
              { class: "clickable", testid: `dataset-row-${d.id}`, on: { click: () => navigate(`/datasets/${d.id}`) } },
              h("td", null, h("a", { attrs: { href: `#/datasets/${d.id}` } }, d.name)),
              h("td", { class: "num", testid: "n-samples" }, d.n_samples.toLocaleString()),
              h("td", { class: "num" }, d.n_images.toLocaleString()),
              h("td", { class: "num" }, d.n_skipped.toLocaleString()),
              h("td", { class: "path", title: d.metadata_path }, d.metadata_path),
              h("td", null, when(d.created_at)),
              h("td", null, h("button", { class: "ghost mini", testid: `delete-dataset-${d.id}`, title: "Delete this dataset", on: { click: (e) => { e.stopPropagation(); void deleteDataset(d.id, d.name); } } }, "Delete…")),
            ),
          ),
        ),
      ),
    );
  }
  /** Deletes a dataset after a confirmation naming what goes (with the runs that use it, when there are some). */
  async function deleteDataset(id: number, name: string): Promise<void> {
    let withRuns = false;
    let plan = await api.deleteDataset(id, false, false).catch(() => undefined);
    if (!plan) {
      withRuns = true;
      plan = await attempt(() => api.deleteDataset(id, true, false), "delete dataset");
      if (!plan) return;
    }
    const body = h(
      "div",
      null,
      h("p", null, `This deletes ${plan.description}.`),
      withRuns ? h("p", { class: "failed-text" }, `Experiments use this dataset: their runs and run folders go too.`) : null,
      h("p", { class: "muted small" }, "Your own metadata file and image folder are never touched; only images an import extracted into the CLIP Lab home go."),
    );
    if (!(await confirmDialog(`Delete dataset ${name}?`, body, withRuns ? "Delete with its runs" : "Delete"))) return;
    if (await attempt(() => api.deleteDataset(id, withRuns, true), "delete dataset")) await refresh();
  }
  await refresh();
}

/** The import panel: file names, column names, validate, then the report and confirm. */
/** "Import from URL…": bucket or web URLs for the metadata and the images (or a dataset folder alone). */
function importFromUrl(): Promise<ImportDraft | undefined> {
  return openJobDialog<ImportDraft>({
    title: "Import from URL",
    testid: "url-import",
    intro: "gs://, s3:// or https://. Public buckets need no credentials; otherwise the standard environment's (GOOGLE_APPLICATION_CREDENTIALS, AWS_*). Images download in parallel into the home's cache when you validate.",
    fields: [
      { key: "metadata", label: "Metadata file (or dataset folder ending in /)", placeholder: "gs://datachain-demo/newyorker_caption_contest/", required: true },
      { key: "images", label: "Image folder", placeholder: "(the folder's images/, or embedded in the metadata)" },
    ],
    startLabel: "Continue",
    start: (v) => api.importUrl(v.metadata, v.images || null),
    done: (d) => d.name,
    closeOnDone: true,
  });
}

function showDraft(box: HTMLElement, draft: ImportDraft, done: () => Promise<void>): void {
  const name = h("input", { testid: "import-name", attrs: { value: draft.name } });
  const cols: Record<keyof ColumnMap, HTMLInputElement> = {
    filename: h("input", { attrs: { value: draft.columns.filename } }),
    choices: h("input", { attrs: { value: draft.columns.choices } }),
    label: h("input", { attrs: { value: draft.columns.label } }),
    image: h("input", { attrs: { value: draft.columns.image } }),
  };
  const report = h("div", { testid: "import-report" });
  const progress = h("div", { class: "muted small", testid: "import-progress" });
  const off = onAppEvent((e) => {
    if (e.type === "import" && e.token === draft.token) {
      const ev = e.event;
      if (ev.kind === "progress") progress.textContent = `Checking images… ${ev.done.toLocaleString()} / ${ev.total.toLocaleString()}`;
      else if (ev.kind === "info") progress.textContent = ev.message;
    }
  });
  const close = async () => {
    off();
    await attempt(() => api.cancelImport(draft.token));
    box.replaceChildren();
  };
  const validate = async () => {
    clear(report, h("p", { class: "muted" }, "Validating every row and image…"));
    const columns: ColumnMap = { filename: cols.filename.value, choices: cols.choices.value, label: cols.label.value, image: cols.image.value };
    const preview = await attempt(() => api.previewImport(draft.token, name.value, columns), "validation");
    progress.textContent = "";
    if (!preview) {
      report.replaceChildren();
      return;
    }
    showReport(report, preview, async (skip) => {
      const ds = await attempt(() => api.confirmImport(draft.token, skip), "import");
      if (ds) {
        off();
        clear(box, h("div", { class: "panel ok", testid: "import-done" }, `Imported “${ds.name}”: ${ds.n_samples.toLocaleString()} samples, ${ds.n_images.toLocaleString()} images.`));
        await done();
      }
    });
  };
  clear(
    box,
    h(
      "section",
      { class: "panel", testid: "import-panel" },
      h("h2", null, "Import"),
      h(
        "dl",
        { class: "kv" },
        h("dt", null, "Metadata"),
        h("dd", { class: "path", testid: "import-metadata" }, draft.metadata),
        h("dt", null, "Images"),
        h("dd", { class: "path" }, draft.images_dir ?? "next to the metadata file / embedded"),
      ),
      h("label", { class: "field" }, h("span", null, "Dataset name"), name),
      h(
        "details",
        null,
        h("summary", null, "Column names"),
        h(
          "div",
          { class: "form-grid" },
          (Object.keys(cols) as (keyof ColumnMap)[]).map((k) => h("label", { class: "field" }, h("span", null, k), cols[k])),
        ),
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { class: "primary", testid: "validate-import", on: { click: validate } }, "Validate"),
        h("button", { class: "ghost", on: { click: close } }, "Cancel"),
      ),
      progress,
      report,
    ),
  );
}

function showReport(box: HTMLElement, p: ImportPreview, confirm: (skip: boolean) => Promise<void>): void {
  const r = p.report;
  const bad = r.problems.length;
  const summary = h(
    "div",
    { class: "tiles" },
    tile("Rows", r.total_rows.toLocaleString(), "report-total"),
    tile("Valid", r.valid_rows.toLocaleString(), "report-valid"),
    tile("Problems", bad.toLocaleString(), "report-problems", bad > 0 ? "warn" : "ok"),
    tile("Images", p.n_images.toLocaleString(), "report-images"),
  );
  const kinds = p.problem_kinds.length
    ? h("p", null, p.problem_kinds.map((k) => h("span", { class: "chip warn" }, `${k.kind.replaceAll("_", " ")} × ${k.count}`)))
    : null;
  const problems = bad
    ? h(
        "table",
        { class: "grid-table compact", testid: "problem-table" },
        h("thead", null, h("tr", null, ["Row", "File", "Problem"].map((t) => h("th", null, t)))),
        h(
          "tbody",
          null,
          r.problems.slice(0, 100).map((pr) => h("tr", null, h("td", { class: "num" }, pr.row ?? "–"), h("td", { class: "path" }, pr.file ?? ""), h("td", null, pr.reason))),
        ),
      )
    : null;
  const examples = p.examples.length
    ? h(
        "details",
        null,
        h("summary", null, "First rows"),
        h("ul", { class: "examples" }, p.examples.map((e) => h("li", null, h("b", null, `row ${e.row} · ${e.filename}`), " — ", e.choices.map((c, i) => h("span", { class: i === e.label ? "right" : "" }, `${e.letters[i]}: ${c}  `))))),
      )
    : null;
  const actions = h("div", { class: "actions" });
  if (!p.importable) {
    append(actions, h("p", { class: "failed-text" }, "Nothing can be imported: fix the file (or the column names) and validate again."));
  } else if (bad === 0) {
    append(actions, h("button", { class: "primary", testid: "confirm-import", on: { click: () => confirm(false) } }, `Import ${r.valid_rows.toLocaleString()} samples`));
  } else {
    append(
      actions,
      h("button", { class: "primary", testid: "confirm-import", on: { click: () => confirm(true) } }, `Skip ${bad} bad row(s) and import ${r.valid_rows.toLocaleString()}`),
    );
  }
  clear(box, summary, kinds, problems, examples, actions);
}

function append(el: HTMLElement, ...c: HTMLElement[]): void {
  for (const x of c) el.appendChild(x);
}

function tile(label: string, value: string, testid: string, tone = ""): HTMLElement {
  return h("div", { class: `tile ${tone}` }, h("div", { class: "tile-value", testid }, value), h("div", { class: "tile-label" }, label));
}

/** One dataset: filter and page through its samples as cards. */
export async function renderDataset(root: HTMLElement, ctx: ViewCtx, id: number): Promise<void> {
  const datasets = await api.listDatasets();
  const ds = datasets.find((d) => d.id === id);
  if (!ds) throw new Error(`no dataset with id ${id}`);
  const text = h("input", { testid: "sample-filter", attrs: { type: "search", placeholder: "Search captions and file names" } });
  const labelSel = h(
    "select",
    { testid: "label-filter" },
    h("option", { attrs: { value: "" } }, "any answer"),
  );
  // The answers A to E, lettered by the app (the first page brings the letters).
  const fillLabels = (letters: string[]) => {
    if (labelSel.options.length > 1) return;
    labelSel.append(...letters.slice(0, 5).map((l, i) => h("option", { attrs: { value: i } }, `answer ${l}`)));
  };
  const { grid, pagerBox, load, reset } = pagedGrid({
    testid: "sample-cards",
    limit: 48,
    left: ctx.left,
    fetch: (offset, limit) => attempt(() => api.datasetSamples(id, { text: text.value, label: labelSel.value === "" ? null : Number(labelSel.value), offset, limit })),
    render: (page) => {
      fillLabels(page.letters);
      return page.items.map((s) => sampleCard(s, page.letters));
    },
  });
  const reload = reset(200);
  text.addEventListener("input", reload);
  labelSel.addEventListener("change", reload);
  clear(
    root,
    h("header", { class: "screen-head" }, h("h1", null, h("a", { attrs: { href: "#/datasets" } }, "Datasets"), " / ", ds.name)),
    h(
      "p",
      { class: "muted" },
      `${ds.n_samples.toLocaleString()} samples · ${ds.n_images.toLocaleString()} images · ${ds.n_skipped} rows skipped at import · `,
      h("span", { class: "path" }, ds.metadata_path),
    ),
    h("div", { class: "toolbar" }, text, labelSel, pagerBox),
    grid,
  );
  await load();
}

function sampleCard(s: StoredSample, letters: string[]): HTMLElement {
  return h(
    "article",
    { class: "card", testid: "sample-card" },
    thumb(s.image_id, s.filename),
    h("div", { class: "card-title" }, h("span", null, s.filename), h("span", { class: "muted small" }, `row ${s.row}`)),
    h(
      "ol",
      { class: "choices" },
      s.choices.map((c, i) =>
        h("li", { class: i === s.label ? "right" : "", testid: i === s.label ? "right-choice" : "choice" }, h("span", { class: "letter" }, letters[i]), h("span", { class: "caption" }, c), i === s.label ? h("span", { class: "tick", title: "the right caption" }, "✓") : null),
      ),
    ),
  );
}
