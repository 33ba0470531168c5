// Small DOM helpers: element builder, formatting, the error banner and the event bus.

import { EVENT_NAME, type AppEvent, type CheckpointState } from "./bindings";
import { imageBase, listen } from "./transport";

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Props {
  class?: string;
  testid?: string;
  title?: string;
  style?: string;
  on?: Partial<{ [K in keyof HTMLElementEventMap]: (e: HTMLElementEventMap[K]) => void }>;
  attrs?: Record<string, string | number | boolean | undefined>;
}

/** `<select>` of `options` (`[value, text]`): the first one chosen, or `value`'s when given. */
export function select(testid: string, options: [string, string][], value?: string): HTMLSelectElement {
  const s = h("select", { testid }, options.map(([v, t]) => h("option", { attrs: { value: v } }, t)));
  if (value !== undefined) s.value = value;
  return s;
}

/** `h("div", { class: "x", testid: "y" }, child, ...)`: builds an element. Text is set as text, never as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props | null = null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    if (props.class) el.className = props.class;
    if (props.testid) el.dataset.testid = props.testid;
    if (props.title) el.title = props.title;
    if (props.style) el.setAttribute("style", props.style);
    for (const [k, v] of Object.entries(props.attrs ?? {})) {
      if (v === undefined || v === false) continue;
      if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    for (const [k, fn] of Object.entries(props.on ?? {})) {
      el.addEventListener(k, fn as EventListener);
    }
  }
  append(el, children);
  return el;
}

/** A panel titled `title` holding one table: `heads` over `rows` (each a `tr`). */
export function tablePanel(title: string, table: { testid: string; class?: string }, heads: Child[], rows: Child[]): HTMLElement {
  return h(
    "section",
    { class: "panel" },
    h("h2", null, title),
    h(
      "table",
      { class: table.class ?? "grid-table", testid: table.testid },
      h("thead", null, h("tr", null, heads.map((t) => h("th", null, t)))),
      h("tbody", null, rows),
    ),
  );
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Inserts an SVG document drawn by the core (plotters) as live SVG, so its elements can be inspected. */
export function svgNode(svg: string): Node {
  const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
  const root = doc.documentElement;
  if (root.nodeName !== "svg") return h("p", { class: "muted" }, "(chart could not be drawn)");
  root.querySelectorAll("script, foreignObject").forEach((n) => n.remove());
  root.removeAttribute("width");
  root.removeAttribute("height");
  return document.importNode(root, true);
}

export function pct(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : `${(x * 100).toFixed(digits)}%`;
}

export function num(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits);
}

export function sci(x: number): string {
  if (x === 0) return "0";
  return Math.abs(x) < 1e-2 || Math.abs(x) >= 1e4 ? x.toExponential(0) : String(x);
}

export function duration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso.includes("T") || iso.endsWith("Z") ? iso : iso.replace(" ", "T") + "Z");
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function imageUrl(imageId: number, size = 192): string {
  return `${imageBase}image/${imageId}?size=${size}`;
}

export function thumb(imageId: number, alt: string, size = 192): HTMLImageElement {
  const img = h("img", { class: "thumb", attrs: { src: imageUrl(imageId, size), alt, loading: "lazy", decoding: "async" } });
  img.addEventListener("error", () => img.classList.add("broken"));
  return img;
}

/** Text of a rejected command (the Rust side sends its error as a readable string). */
export function message(e: unknown): string {
  if (typeof e === "string") return e;
  if (e instanceof Error) return e.message;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

/** Shows an error in the banner at the top of the window (it stays until closed). */
export function showError(e: unknown, context?: string): void {
  const box = document.getElementById("errors");
  const text = (context ? `${context}: ` : "") + message(e);
  console.error(text);
  if (!box) return;
  const item = h(
    "div",
    { class: "error", testid: "error" },
    h("span", { class: "error-text" }, text),
    h("button", { class: "ghost", title: "Dismiss", on: { click: () => item.remove() } }, "×"),
  );
  box.appendChild(item);
}

export function clearErrors(): void {
  document.getElementById("errors")?.replaceChildren();
}

/** Runs `fn`, showing its error in the banner; returns undefined on failure. */
export async function attempt<T>(fn: () => Promise<T>, context?: string): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    showError(e, context);
    return undefined;
  }
}

type Listener = (e: AppEvent) => void;
const listeners = new Set<Listener>();

/** Subscribes to the app's events; returns the unsubscribe function. */
export function onAppEvent(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export async function startEventBus(): Promise<void> {
  await listen<AppEvent>(EVENT_NAME, (payload) => {
    for (const fn of [...listeners]) {
      try {
        fn(payload);
      } catch (err) {
        showError(err);
      }
    }
  });
}

/** Calls `fn` at most once per `ms` (trailing call kept). */
export function throttle(fn: () => void, ms: number): () => void {
  let timer: number | undefined;
  let last = 0;
  return () => {
    const now = Date.now();
    if (timer !== undefined) return;
    const wait = Math.max(0, last + ms - now);
    timer = window.setTimeout(() => {
      timer = undefined;
      last = Date.now();
      fn();
    }, wait);
  };
}

export function debounce(fn: () => void, ms: number): () => void {
  let timer: number | undefined;
  return () => {
    if (timer !== undefined) window.clearTimeout(timer);
    timer = window.setTimeout(fn, ms);
  };
}

/** A pager: "41–80 of 2,000" with previous/next buttons. */
export function pager(total: number, offset: number, limit: number, go: (offset: number) => void, testid = "pager"): HTMLElement {
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(total, offset + limit);
  return h(
    "div",
    { class: "pager", testid },
    h("button", { class: "ghost", attrs: { disabled: offset <= 0 }, on: { click: () => go(Math.max(0, offset - limit)) } }, "‹ Previous"),
    h("span", { testid: `${testid}-text` }, `${from.toLocaleString()}–${to.toLocaleString()} of ${total.toLocaleString()}`),
    h("button", { class: "ghost", attrs: { disabled: to >= total }, on: { click: () => go(offset + limit) } }, "Next ›"),
  );
}

/** A grid of cards over a paged query, with its pager: `fetch` brings the page at an offset (undefined on error),
 * `render` draws its cards. The newest load wins; nothing is drawn once the screen is left. */
export function pagedGrid<P extends { total: number; offset: number; items: unknown[] }>(o: {
  testid: string;
  pagerTestid?: string;
  limit: number;
  left: () => boolean;
  fetch: (offset: number, limit: number) => Promise<P | undefined>;
  render: (page: P) => Node[];
}): { grid: HTMLElement; pagerBox: HTMLElement; load: () => Promise<void>; reset: (ms: number) => () => void } {
  const grid = h("div", { class: "cards", testid: o.testid });
  const pagerBox = h("div");
  let offset = 0;
  let seq = 0;
  const load = async () => {
    const mine = ++seq;
    const page = await o.fetch(offset, o.limit);
    if (!page || mine !== seq || o.left()) return;
    clear(pagerBox, pager(page.total, page.offset, o.limit, (to) => { offset = to; void load(); }, o.pagerTestid));
    clear(grid, page.items.length ? o.render(page) : h("div", { class: "empty" }, "No sample matches."));
  };
  /** A debounced "back to the first page and load" for filter inputs. */
  const reset = (ms: number) => debounce(() => { offset = 0; void load(); }, ms);
  return { grid, pagerBox, load, reset };
}

/** A checkbox that keeps `id`'s membership of `set`, calling `changed` after each click. */
export function setBox<T>(testid: string, set: Set<T>, id: T, changed: () => void): HTMLInputElement {
  const box = h("input", { testid, attrs: { type: "checkbox", checked: set.has(id) } });
  box.addEventListener("change", () => {
    if (box.checked) set.add(id);
    else set.delete(id);
    changed();
  });
  return box;
}

/** The route's query parameters. */
export function routeParams(): URLSearchParams {
  const hash = location.hash.replace(/^#/, "");
  const q = hash.indexOf("?");
  return new URLSearchParams(q >= 0 ? hash.slice(q + 1) : "");
}

export function navigate(to: string): void {
  location.hash = to;
}

/** A status badge. */
export function badge(status: string): HTMLElement {
  return h("span", { class: `badge status-${status}`, testid: "status" }, status);
}

/** "checkpoint: kept / deleted / none", as the store records it (`keep_best` deletes those not among the best). */
export function checkpointBadge(state: CheckpointState, prefix = true): HTMLElement {
  const why: Record<CheckpointState, string> = {
    kept: "its fine-tuned checkpoint is on disk",
    deleted: "its checkpoint was deleted (keep_best, or by hand); its records stay",
    none: "it wrote no checkpoint",
  };
  return h("span", { class: `badge ckpt-${state}`, testid: "checkpoint-state", title: why[state], attrs: { "data-state": state } }, prefix ? `checkpoint: ${state}` : state);
}

/** Probability bar: grey for before, the run colour for after. */
export function bar(p: number | undefined, colour: string, kind: "before" | "after"): HTMLElement {
  const width = p === undefined ? 0 : Math.max(0, Math.min(1, p)) * 100;
  return h("div", { class: `bar ${kind}` }, h("div", { class: "fill", style: `width:${width.toFixed(1)}%;background:${colour}` }));
}

/** Bytes as "12.3 MB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (n === 0) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  const k = Math.min(units.length - 1, Math.floor(Math.log10(Math.max(1, n)) / 3));
  return `${(n / 1000 ** k).toFixed(k === 0 ? 0 : 1)} ${units[k]}`;
}

/** A date on one line: "12-01 14:05" this year, "2025-12-01" before. */
export function shortWhen(iso: string | null | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso.includes("T") || iso.endsWith("Z") ? iso : iso.replace(" ", "T") + "Z");
  if (Number.isNaN(d.getTime())) return iso;
  const p = (x: number) => String(x).padStart(2, "0");
  if (d.getFullYear() !== new Date().getFullYear()) return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A modal confirmation: `title`, what it does (`body`), and an OK button labelled `ok`; resolves true on OK. */
export function confirmDialog(title: string, body: Child, ok: string): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    const dlg = h(
      "dialog",
      { class: "confirm", testid: "confirm-dialog" },
      h("h2", null, title),
      h("div", { testid: "confirm-text" }, body),
      h(
        "div",
        { class: "actions" },
        h("button", { testid: "confirm-cancel", on: { click: () => done(false) } }, "Cancel"),
        h("button", { class: "danger", testid: "confirm-ok", on: { click: () => done(true) } }, ok),
      ),
    );
    dlg.addEventListener("cancel", () => done(false));
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

/** Tag chips, each with a remove button when `remove` is given. */
export function tagChips(tags: string[], remove?: (tag: string) => void, testid = "tag"): HTMLElement[] {
  return tags.map((t) =>
    h("span", { class: "chip tag", testid, attrs: { "data-tag": t } }, t, remove ? h("button", { class: "chip-x", title: `Remove ${t}`, testid: `${testid}-remove`, on: { click: () => remove(t) } }, "×") : null),
  );
}

/** Runs `fn` (a command that returns nothing), showing its error in the banner; true when it succeeded. */
export async function done(fn: () => Promise<unknown>, context?: string): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    showError(e, context);
    return false;
  }
}
