/**
 * Loopback HTTP for the benchmarks: JSON requests over a keep-alive agent, and
 * SSE readers on raw sockets (no parser library, so the client costs little).
 * The server sends SSE with chunked transfer encoding; a frame counter looks
 * for "\nid: " (an `id:` field can only start a line, JSON escapes newlines,
 * and chunk-size lines are hex), and the body ends with the "0\r\n\r\n" chunk.
 */
import http from "node:http";
import net from "node:net";

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** A JSON request; resolves with status and parsed body. */
export function requestJson<T = unknown>(base: string, method: string, pathname: string, body?: unknown, token?: string, timeoutMs = 30_000): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { Accept: "application/json" };
    if (payload) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = payload.length;
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    const req = http.request(base + pathname, { method, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8");
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON; keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed as T });
      });
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${pathname}: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** Starts a shell run; resolves with its id. */
export async function createShellRun(base: string, token: string, text: string): Promise<string> {
  const res = await requestJson<{ run_id: string }>(base, "POST", "/api/runs", { input: { text }, metadata: { agent_type: "shell" } }, token);
  if (res.status !== 201) throw new Error(`POST /api/runs: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.run_id;
}

const ID_MARK = Buffer.from("\nid: ");
const END_MARK = Buffer.from("\r\n0\r\n\r\n");

/** Options of {@link openRawSse}. */
export interface RawSseOptions {
  host: string;
  port: number;
  runId: string;
  token: string;
  after?: number;
  /** Give up (destroy the socket, reject) when the stream has not ended by then. Default 120 s. */
  timeoutMs?: number;
  /** Every body chunk as it arrives (still chunk-encoded), with the number of frames that start in it. */
  onData?: (chunk: Buffer, framesInChunk: number) => void;
}

/** Outcome of one raw SSE stream. */
export interface RawSseResult {
  frames: number;
  bytes: number;
  /** The body's last chunk arrived (the server ended the stream). */
  ended: boolean;
  status: number;
}

/**
 * Opens `GET /api/runs/:id/events` on a raw socket and counts frames until the
 * server ends the chunked body. `connected` resolves once the response
 * headers arrived (the subscription is registered by then).
 */
export function openRawSse(opts: RawSseOptions): { connected: Promise<void>; done: Promise<RawSseResult>; socket: net.Socket } {
  const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
  let frames = 0;
  let bytes = 0;
  let status = 0;
  let headerDone = false;
  let head = "";
  let tail = Buffer.alloc(0);
  let ended = false;
  let onConnected!: () => void;
  let onConnectFail!: (e: Error) => void;
  const connected = new Promise<void>((res, rej) => {
    onConnected = res;
    onConnectFail = rej;
  });
  socket.on("connect", () => {
    socket.write(
      `GET /api/runs/${opts.runId}/events${opts.after !== undefined ? `?after=${opts.after}` : ""} HTTP/1.1\r\n` +
        `Host: ${opts.host}:${opts.port}\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${opts.token}\r\n\r\n`,
    );
  });
  let chunked = true;
  const done = new Promise<RawSseResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`SSE of ${opts.runId}: not ended after ${opts.timeoutMs ?? 120_000} ms (status ${status}, ${frames} frames, ${bytes} bytes)`));
    }, opts.timeoutMs ?? 120_000);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ frames, bytes, ended, status });
    };
    const countIn = (buf: Buffer): number => {
      let n = 0;
      // a mark split across the previous chunk and this one
      if (tail.length > 0) {
        const seam = Buffer.concat([tail.subarray(Math.max(0, tail.length - (ID_MARK.length - 1))), buf.subarray(0, ID_MARK.length - 1)]);
        if (seam.indexOf(ID_MARK) !== -1) n++;
      }
      let i = buf.indexOf(ID_MARK);
      while (i !== -1) {
        n++;
        i = buf.indexOf(ID_MARK, i + ID_MARK.length);
      }
      tail = buf.length >= END_MARK.length ? Buffer.from(buf.subarray(buf.length - END_MARK.length)) : Buffer.concat([tail, buf]).subarray(-END_MARK.length);
      return n;
    };
    socket.on("data", (buf: Buffer) => {
      if (!headerDone) {
        head += buf.toString("latin1");
        const i = head.indexOf("\r\n\r\n");
        if (i === -1) return;
        headerDone = true;
        status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
        chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head.slice(0, i));
        onConnected();
        if (status !== 200) return finish();
        // the leading CRLF of the separator stays in the body, so "\nid: " of the first frame is found
        buf = Buffer.from(head.slice(i + 2), "latin1");
        head = "";
      }
      bytes += buf.length;
      const n = countIn(buf);
      frames += n;
      opts.onData?.(buf, n);
      const t = tail.length >= END_MARK.length ? tail.subarray(tail.length - END_MARK.length) : tail;
      if (t.equals(END_MARK)) {
        ended = true;
        finish();
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      onConnectFail(err);
      reject(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      if (!headerDone) onConnectFail(new Error("socket closed before the response"));
      // a close-delimited body (no chunked encoding) ends when the server closes the connection
      if (headerDone && !chunked && status === 200) ended = true;
      resolve({ frames, bytes, ended, status });
    });
  });
  connected.catch(() => undefined); // a failed connect is reported through `done`
  return { connected, done, socket };
}
