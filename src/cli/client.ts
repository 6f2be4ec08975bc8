/**
 * How every CLI command reaches the server: the typed client of `src/client/`
 * bound to the command's server and token. Base URL: `--server`, else
 * `OPENRUNNER_URL`, else the stored login's server, else
 * `http://127.0.0.1:3000`. Token: `OPENRUNNER_TOKEN`, else the stored login's
 * token when it was issued by the same server (a token is never sent to a
 * server it did not come from). Errors are the client's
 * {@link OpenRunnerError}; {@link describeCliError} turns them into one line.
 */
import { OpenRunnerClient } from "../client/client.ts";
import { OpenRunnerError, OpenRunnerNetworkError } from "../client/errors.ts";
import type { CliContext } from "./context.ts";
import { CliUsageError } from "./context.ts";
import { readCredentials } from "./credentials.ts";

/** The server used when nothing else names one. */
export const DEFAULT_SERVER = "http://127.0.0.1:3000";

/** Milliseconds before a request (not an event stream) gives up. */
const REQUEST_TIMEOUT_MS = 60_000;

/** The client of one command, bound to one server and (maybe) one token. */
export interface ApiClient {
  readonly baseUrl: string;
  /** True when a token will be sent. */
  readonly authenticated: boolean;
  /** The typed API client every request and event stream goes through. */
  readonly api: OpenRunnerClient;
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
  const hintLogin = token === undefined && opts.token !== null;
  const api = new OpenRunnerClient({
    baseUrl,
    ...(token !== undefined ? { token } : {}),
    timeoutMs: REQUEST_TIMEOUT_MS,
    mapError: (e) => withCliHint(e, hintLogin),
  });
  return { baseUrl, authenticated: token !== undefined, api };
}

/** Adds how to start the server to a refused connection, and how to log in to a 401 when no token was sent. */
function withCliHint(e: OpenRunnerError, hintLogin: boolean): OpenRunnerError {
  if (e instanceof OpenRunnerNetworkError) {
    return e.reason === "connection refused" ? new OpenRunnerNetworkError(e.baseUrl, `${e.reason}; is \`openrunner serve\` running?`, e.cause) : e;
  }
  if (e.status === 401 && hintLogin) {
    return new OpenRunnerError(e.status, e.code, `${e.message} (not logged in: run \`openrunner login\` or set OPENRUNNER_TOKEN)`, e.details);
  }
  return e;
}

/**
 * The one line to print for an error, and the exit code: API errors
 * `error: <code>: <message>` (1), unreachable server (1), usage (2).
 */
export function describeCliError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof OpenRunnerNetworkError) return { line: `error: ${err.message}`, exitCode: 1 };
  if (err instanceof OpenRunnerError) return { line: `error: ${err.code}: ${err.message}`, exitCode: 1 };
  if (err instanceof CliUsageError) return { line: `error: ${err.message}`, exitCode: 2 };
  const message = err instanceof Error ? err.message : String(err);
  return { line: `error: ${message}`, exitCode: 1 };
}

function safeNormalize(server: string): string | undefined {
  try {
    return normalizeServerUrl(server);
  } catch {
    return undefined;
  }
}
