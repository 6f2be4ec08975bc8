/**
 * The client's transport: one `fetch` per request against the server, the
 * bearer token, the optional per-request timeout, and the mapping of error
 * answers to {@link OpenRunnerError} (see `./errors.ts`). The endpoints are
 * in `./client.ts`.
 */
import { describeFetchFailure, OpenRunnerError, OpenRunnerNetworkError, readErrorResponse } from "./errors.ts";

/** The `fetch` the client calls (default: the global one). */
export type FetchLike = (input: string | URL, init: RequestInit) => Promise<Response>;

/** Options of {@link OpenRunnerClient}. */
export interface OpenRunnerClientOptions {
  /** The server, e.g. `http://127.0.0.1:3000` (trailing slashes are dropped). */
  baseUrl: string;
  /** A bearer token: a JWT from {@link OpenRunnerClient.login} or an API key (`or_…`). */
  token?: string;
  /** Another `fetch` (tests, proxies, a polyfill). */
  fetch?: FetchLike;
  /** Milliseconds before a request (not an event stream) gives up with a network error `timed out`; default none. */
  timeoutMs?: number;
  /** Called with every error before it is thrown; returns the error to throw (e.g. to add a hint to a 401). */
  mapError?: (error: OpenRunnerError) => OpenRunnerError;
}

/** The options every method takes. */
export interface CallOptions {
  /** Aborts the call; it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One request of {@link Transport.send}. */
export interface RequestSpec {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** No client timeout (event streams). */
  stream?: boolean;
}

/** Sends requests to one server with one (changeable) token. */
export class Transport {
  /** The server address, without trailing slashes. */
  readonly baseUrl: string;
  /** The bearer token sent with each request, if any. */
  token: string | undefined;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number | undefined;
  readonly #mapError: (error: OpenRunnerError) => OpenRunnerError;

  constructor(opts: OpenRunnerClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.token = opts.token;
    this.#fetch = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = opts.timeoutMs;
    this.#mapError = opts.mapError ?? ((e) => e);
  }

  /**
   * Sends one request and returns the successful response (its body unread).
   * @throws {OpenRunnerError} for an error status; {@link OpenRunnerNetworkError} without an answer
   */
  async send(spec: RequestSpec): Promise<Response> {
    const url = new URL(this.baseUrl + spec.path);
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: "application/json", ...spec.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (spec.body !== undefined) headers["content-type"] = "application/json";
    const signals = [spec.signal, !spec.stream && this.#timeoutMs ? AbortSignal.timeout(this.#timeoutMs) : undefined].filter((s): s is AbortSignal => s !== undefined);
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method: spec.method,
        headers,
        ...(spec.body !== undefined ? { body: JSON.stringify(spec.body) } : {}),
        ...(signals.length > 0 ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
      });
    } catch (err) {
      if (spec.signal?.aborted) throw spec.signal.reason;
      throw this.#mapError(new OpenRunnerNetworkError(this.baseUrl, describeFetchFailure(err), err));
    }
    if (!res.ok) throw this.#mapError(await readErrorResponse(res));
    return res;
  }

  /** Sends one request and parses the JSON answer (`undefined` for 204 or an empty body). */
  async json<T>(spec: RequestSpec): Promise<T> {
    const res = await this.send(spec);
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (spec.signal?.aborted) throw spec.signal.reason;
      throw this.#mapError(new OpenRunnerNetworkError(this.baseUrl, describeFetchFailure(err), err));
    }
    if (res.status === 204 || text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw this.#mapError(new OpenRunnerError(res.status, "bad_response", `the server answered ${spec.method} ${spec.path} with non-JSON`));
    }
  }
}
