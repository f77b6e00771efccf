// Server-Sent Events over fetch(): EventSource cannot send the Authorization header, so the
// stream is read with a ReadableStream reader and parsed here (text/event-stream framing).
// On a dropped connection it reconnects with Last-Event-ID so no event is lost or repeated.

import { API, authHeaders } from "./api";

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

export interface StreamOptions {
  onEvent: (ev: SseEvent) => void;
  /** Return true when the stream should not be reopened (e.g. the job is terminal). */
  isDone: () => boolean;
  onState?: (state: "open" | "reconnecting" | "closed") => void;
  onUnauthorized?: () => void;
}

/** Incremental parser: feed decoded text chunks, get complete events back. */
export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];
  lastEventId: string | null = null;

  feed(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    let nl: number;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const sep = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + sep);
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  private line(line: string): SseEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }

  private dispatch(): SseEvent | null {
    if (this.id !== null) this.lastEventId = this.id;
    const ev =
      this.data.length > 0
        ? { id: this.lastEventId, event: this.event || "message", data: this.data.join("\n") }
        : null;
    this.event = "";
    this.data = [];
    return ev;
  }
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      resolve();
    });
  });

async function readOnce(path: string, parser: SseParser, opts: StreamOptions, signal: AbortSignal) {
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (parser.lastEventId !== null) headers["Last-Event-ID"] = parser.lastEventId;
  const resp = await fetch(`${API}${path}`, { headers, signal, cache: "no-store" });
  if (resp.status === 401) {
    opts.onUnauthorized?.();
    return false;
  }
  if (!resp.ok || !resp.body) throw new Error(`event stream answered ${resp.status}`);
  opts.onState?.("open");
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return true;
    for (const ev of parser.feed(value)) opts.onEvent(ev);
  }
}

/** Follow an SSE endpoint until `isDone()` or the signal aborts; reconnects with backoff. */
export async function followEvents(path: string, opts: StreamOptions, signal: AbortSignal) {
  const parser = new SseParser();
  let backoff = 500;
  while (!signal.aborted) {
    try {
      const keepGoing = await readOnce(path, parser, opts, signal);
      if (!keepGoing) break;
      backoff = 500;
    } catch {
      if (signal.aborted) break;
      backoff = Math.min(backoff * 2, 10000);
    }
    if (signal.aborted || opts.isDone()) break;
    opts.onState?.("reconnecting");
    await sleep(backoff, signal);
  }
  opts.onState?.("closed");
}
