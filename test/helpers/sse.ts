/**
 * A minimal SSE test client over fetch, parsing with eventsource-parser.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Reads an SSE response until it ends, `stopAfter` returns true, or `signal` aborts.
 * Resolves with the messages received (comments excluded).
 */
export async function readSse(
  url: string,
  opts: { token?: string; lastEventId?: number; stopAfter?: (m: SseMessage, all: SseMessage[]) => boolean; timeoutMs?: number } = {},
): Promise<{ messages: SseMessage[]; ended: boolean; status: number }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 30_000);
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.lastEventId !== undefined) headers["Last-Event-ID"] = String(opts.lastEventId);
  const messages: SseMessage[] = [];
  let stopped = false;
  const res = await fetch(url, { headers, signal: ac.signal });
  if (res.status !== 200 || !res.body) {
    clearTimeout(timer);
    return { messages, ended: false, status: res.status };
  }
  const parser = createParser({
    onEvent(e: EventSourceMessage) {
      if (stopped) return;
      const m: SseMessage = { data: e.data, ...(e.id !== undefined ? { id: e.id } : {}), ...(e.event !== undefined ? { event: e.event } : {}) };
      messages.push(m);
      if (opts.stopAfter?.(m, messages)) {
        stopped = true;
        ac.abort();
      }
    },
  });
  const decoder = new TextDecoder();
  let ended = false;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    ended = true;
  } catch (err) {
    if (!stopped && (err as Error).name !== "AbortError") throw err;
  } finally {
    clearTimeout(timer);
  }
  return { messages, ended, status: res.status };
}
