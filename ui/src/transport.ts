// How the page reaches the app, chosen once at start: Tauri's IPC in the desktop app; under `cliplab serve`, HTTP
// (`POST /api/<command>` with the named arguments as JSON, events as server-sent events from `/api/events`). The
// generated bindings call `invoke`, the event bus `listen`, thumbnails use `imageBase`: nothing else in the page
// knows which transport it runs on.
//
// In the browser, a command that would open a native dialog (import, model, export) asks for a path instead: the
// server sends this tab a `pick` event, `askPath` shows a path field, and the server refuses any path outside the
// folders it was allowed.

import { convertFileSrc, invoke as tauriInvoke } from "@tauri-apps/api/core";
import { listen as tauriListen } from "@tauri-apps/api/event";

/** True in the desktop app: Tauri injects its IPC before the page's scripts run. */
const inTauri = "__TAURI_INTERNALS__" in window;

/** This tab's id: the file prompts of its commands come back to it (not a secret: the token is the cookie). */
const tab = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");

/** Where thumbnails come from: the `cliplab://` protocol (its form differs per platform), or the server. */
export const imageBase: string = inTauri ? convertFileSrc("", "cliplab") : "/";

/** Calls a command with its named arguments; rejects with the command's readable error message. */
export async function invoke<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
  if (inTauri) return tauriInvoke<T>(cmd, args);
  // File prompts reach this tab over the event stream: have it open before a command may ask.
  await connected();
  const res = await fetch(`/api/${cmd}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-cliplab-tab": tab },
    body: JSON.stringify(args),
    credentials: "same-origin",
  });
  if (res.status === 401) throw "this page has no valid token: open the URL `cliplab serve` printed";
  const body: unknown = await res.json().catch(() => res.statusText);
  if (!res.ok) throw typeof body === "string" ? body : JSON.stringify(body);
  return body as T;
}

/** Calls `fn` with the payload of every `event` the app pushes. */
export async function listen<T>(event: string, fn: (payload: T) => void): Promise<void> {
  if (inTauri) {
    await tauriListen<T>(event, (e) => fn(e.payload));
    return;
  }
  stream().source.addEventListener(event, (e) => fn(JSON.parse((e as MessageEvent<string>).data) as T));
}

let events: { source: EventSource; open: Promise<void> } | undefined;

/** The tab's event stream (opened once; the browser reconnects it by itself). */
function stream(): { source: EventSource; open: Promise<void> } {
  if (events) return events;
  const source = new EventSource(`/api/events?tab=${tab}`);
  const open = new Promise<void>((resolve) => {
    source.addEventListener("open", () => resolve(), { once: true });
    // Never hold a command back for long: without the stream it still runs, only its prompts cannot come.
    window.setTimeout(resolve, 3000);
  });
  source.addEventListener("pick", (e) => askPath(JSON.parse((e as MessageEvent<string>).data) as Prompt));
  source.addEventListener("lagged", (e) => console.warn(`missed ${(e as MessageEvent<string>).data} events`));
  events = { source, open };
  return events;
}

function connected(): Promise<void> {
  return stream().open;
}

/** What the server asks for instead of a native dialog. */
interface Prompt {
  id: number;
  kind: "file" | "folder";
  title: string;
  filters: { name: string; extensions: string[] }[];
  /** The folders the path may lie in. */
  roots: string[];
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, testid: string, text = "", cls = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.dataset.testid = testid;
  if (text) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

/** A modal path field answering prompt `p`; closing it (Cancel, Escape, an empty path) cancels the pick. */
function askPath(p: Prompt): void {
  const dialog = el("dialog", "pick");
  dialog.setAttribute("style", "min-width:36rem;max-width:90vw");
  const kinds = p.filters.map((f) => `${f.name} (${f.extensions.map((x) => `.${x}`).join(", ")})`).join("; ");
  const hint = `${p.kind === "file" ? "A file" : "A folder"} on the server${kinds ? `: ${kinds}` : ""}. Allowed under: ${p.roots.join(", ")}`;
  const input = el("input", "pick-path");
  input.type = "text";
  input.value = p.roots.length ? `${p.roots[0]}/` : "";
  input.setAttribute("style", "width:100%;box-sizing:border-box;margin:0.5rem 0");
  const error = el("p", "pick-error", "", "error-text");
  const ok = el("button", "pick-ok", "Open", "primary");
  const cancel = el("button", "pick-cancel", "Cancel", "ghost");
  const actions = el("div", "pick-actions", "", "actions");
  actions.append(cancel, ok);
  dialog.append(el("h3", "pick-title", p.title), el("p", "pick-hint", hint, "muted small"), input, error, actions);

  let done = false;
  const send = async (path: string | null) => {
    if (done) return;
    const res = await fetch(`/api/pick/${p.id}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path }),
      credentials: "same-origin",
    });
    // 404: the prompt is gone (timed out, answered from elsewhere): nothing left to answer.
    if (res.ok || res.status === 404) {
      done = true;
      dialog.close();
      dialog.remove();
      return;
    }
    const body: unknown = await res.json().catch(() => res.statusText);
    error.textContent = typeof body === "string" ? body : JSON.stringify(body);
  };
  const submit = () => void send(input.value.trim() || null);
  ok.addEventListener("click", submit);
  cancel.addEventListener("click", () => void send(null));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") submit();
  });
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    void send(null);
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  input.focus();
}
