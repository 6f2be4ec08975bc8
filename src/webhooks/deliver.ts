/**
 * One webhook HTTP attempt: POST the body to an already checked target,
 * connecting to the checked address (a `lookup` that answers with it, so the
 * name is never resolved again) while `Host` and TLS verification use the URL's
 * host name. Redirects are not followed. The response body is read up to 64 KiB
 * and discarded. Node's `http`/`https` only; no agent reuse across attempts.
 */
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import type { ResolvedTarget } from "./target.ts";

/** The result of one attempt. Times in ms. */
export interface AttemptResult {
  ok: boolean;
  status_code: number | null;
  error: string | null;
  /** Worth retrying: network error, timeout, 408, 429 or 5xx. */
  retryable: boolean;
  duration_ms: number;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * Sends `body` with `headers` and settles within `timeoutMs` (connect to last
 * response byte). Never throws.
 */
export function sendWebhookAttempt(target: ResolvedTarget, body: string, headers: Record<string, string>, timeoutMs: number): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const isHttps = target.url.protocol === "https:";
  return new Promise<AttemptResult>((resolve) => {
    let done = false;
    const finish = (r: Omit<AttemptResult, "duration_ms">) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, duration_ms: elapsed() });
    };
    const req = (isHttps ? https : http).request(
      {
        protocol: target.url.protocol,
        hostname: target.hostname,
        port: target.url.port === "" ? (isHttps ? 443 : 80) : Number(target.url.port),
        path: `${target.url.pathname}${target.url.search}`,
        method: "POST",
        headers: { ...headers, "Content-Length": String(Buffer.byteLength(body)), Host: target.url.host },
        lookup: pinned,
        agent: false,
        ...(isHttps ? { servername: target.hostname.includes(":") || /^[\d.]+$/.test(target.hostname) ? undefined : target.hostname } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on("data", (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) res.destroy();
        });
        const settle = () => {
          const ok = status >= 200 && status < 300;
          const retryable = status === 408 || status === 429 || status >= 500;
          const error = ok ? null : status >= 300 && status < 400 ? "redirect not followed" : `HTTP ${status}`;
          finish({ ok, status_code: status, error, retryable });
        };
        res.on("end", settle);
        res.on("close", settle);
        res.on("error", settle);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, status_code: null, error: `timeout after ${timeoutMs} ms`, retryable: true });
    }, timeoutMs);
    req.on("error", (err: NodeJS.ErrnoException) => finish({ ok: false, status_code: null, error: err.code ? `${err.code}: ${err.message}` : err.message, retryable: true }));
    req.end(body);
  });
}
