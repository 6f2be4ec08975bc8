/**
 * The HTTP client every CLI command uses. Base URL: `--server`, else
 * `OPENRUNNER_URL`, else the stored login's server, else
 * `http://127.0.0.1:3000`. Token: `OPENRUNNER_TOKEN`, else the stored login's
 * token when it was issued by the same server (a token is never sent to a
 * server it did not come from). API errors become {@link ApiError}; an
 * unreachable server becomes {@link ConnectionError}.
 */
import type { CliContext } from "./context.ts";
import { CliUsageError } from "./context.ts";
import { readCredentials } from "./credentials.ts";

/** The server used when nothing else names one. */
export const DEFAULT_SERVER = "http://127.0.0.1:3000";

/** An API error response `{error: {code, message}}` (or a non-JSON error status). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The server could not be reached, or the connection broke. */
export class ConnectionError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach the OpenRunner server at ${url} (${reason})`);
    this.name = "ConnectionError";
  }
}

/** Options of one {@link ApiClient.request}. */
export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Milliseconds before giving up (default 60 000); 0 for none. */
  timeoutMs?: number;
}

/** A client bound to one server and (maybe) one token. */
export interface ApiClient {
  readonly baseUrl: string;
  /** True when a token will be sent. */
  readonly authenticated: boolean;
  /** Sends a request and returns the parsed JSON body (undefined for 204). */
  request<T>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  /** Sends a request and returns the raw, successful response (for streams). */
  open(method: string, path: string, opts?: RequestOptions): Promise<Response>;
}

/**
 * Normalizes a server address: adds `http://` when no scheme is given and
 * drops trailing slashes. Throws {@link CliUsageError} when it is no URL.
 * @example normalizeServerUrl("localhost:3000/") === "http://localhost:3000"
 */
export function normalizeServerUrl(server: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `http://${server}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliUsageError(`invalid server URL: ${JSON.stringify(server)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliUsageError(`invalid server URL: ${JSON.stringify(server)} (expected http:// or https://)`);
  }
  return url.toString().replace(/\/+$/, "");
}

/** The server a command talks to (see the module comment for the order). */
export function resolveServerUrl(ctx: CliContext, server?: string): string {
  const chosen = server || ctx.env.OPENRUNNER_URL || readCredentials(ctx.env)?.server || DEFAULT_SERVER;
  return normalizeServerUrl(chosen);
}

/**
 * Creates the client for a command.
 * @param opts.server the `--server` flag; `opts.token` overrides every other token source
 *   (`null`: send none, as `login` does).
 */
export function createApiClient(ctx: CliContext, opts: { server?: string; token?: string | null } = {}): ApiClient {
  const baseUrl = resolveServerUrl(ctx, opts.server);
  const stored = readCredentials(ctx.env);
  let token: string | undefined;
  if (opts.token !== undefined) token = opts.token ?? undefined;
  else if (ctx.env.OPENRUNNER_TOKEN) token = ctx.env.OPENRUNNER_TOKEN;
  else if (stored && safeNormalize(stored.server) === baseUrl) token = stored.token;

  async function open(method: string, path: string, ro: RequestOptions = {}): Promise<Response> {
    const url = new URL(baseUrl + path);
    for (const [k, v] of Object.entries(ro.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: "application/json", ...ro.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    if (ro.body !== undefined) headers["content-type"] = "application/json";
    const timeoutMs = ro.timeoutMs ?? 60_000;
    const signals = [ro.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: ro.body === undefined ? undefined : JSON.stringify(ro.body),
        signal: signals.length > 0 ? AbortSignal.any(signals) : undefined,
      });
    } catch (err) {
      if (ro.signal?.aborted) throw err;
      throw new ConnectionError(baseUrl, describeFetchFailure(err));
    }
    if (!res.ok) throw await readApiError(res, token === undefined && opts.token !== null);
    return res;
  }

  return {
    baseUrl,
    authenticated: token !== undefined,
    open,
    async request<T>(method: string, path: string, ro?: RequestOptions): Promise<T> {
      const res = await open(method, path, ro);
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      if (text === "") return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new ApiError(res.status, "bad_response", `the server answered ${method} ${path} with non-JSON`);
      }
    },
  };
}

/**
 * The one line to print for an error, and the exit code: API errors
 * `error: <code>: <message>` (1), unreachable server (1), usage (2).
 */
export function describeCliError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof ApiError) return { line: `error: ${err.code}: ${err.message}`, exitCode: 1 };
  if (err instanceof ConnectionError) return { line: `error: ${err.message}`, exitCode: 1 };
  if (err instanceof CliUsageError) return { line: `error: ${err.message}`, exitCode: 2 };
  const message = err instanceof Error ? err.message : String(err);
  return { line: `error: ${message}`, exitCode: 1 };
}

/** Reads `{error: {code, message}}`; `hintLogin` adds how to log in to a 401. */
async function readApiError(res: Response, hintLogin: boolean): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || "request failed";
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401 && hintLogin) message += " (not logged in: run `openrunner login` or set OPENRUNNER_TOKEN)";
  return new ApiError(res.status, code, message);
}

function describeFetchFailure(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError") return "timed out";
  const code = e?.cause?.code;
  if (code === "ECONNREFUSED") return "connection refused; is `openrunner serve` running?";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host not found";
  if (code) return code;
  return e?.cause?.message ?? e?.message ?? "network error";
}

function safeNormalize(server: string): string | undefined {
  try {
    return normalizeServerUrl(server);
  } catch {
    return undefined;
  }
}
