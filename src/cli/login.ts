/**
 * `openrunner login [--server URL] [--username U] [--password-stdin]`: exchanges
 * a username and password for a token (POST /api/auth/login) and stores
 * `{server, token, username}` (see `credentials.ts`).
 */
import { createApiClient, normalizeServerUrl, resolveServerUrl } from "./client.ts";
import { CliUsageError, printLine, type CliContext } from "./context.ts";
import { readCredentials, writeCredentials } from "./credentials.ts";
import { promptHidden, promptLine, readStdinText } from "./prompt.ts";

/** Flags of `login`. */
export interface LoginOptions {
  server?: string;
  username?: string;
  passwordStdin?: boolean;
}

/**
 * Runs `login`; returns the exit code.
 * @example echo "$PW" | openrunner login --server http://host:3000 --username admin --password-stdin
 */
export async function runLogin(ctx: CliContext, opts: LoginOptions): Promise<number> {
  const server = resolveServerUrl(ctx, opts.server);
  const interactive = ctx.stdin.isTTY === true;
  const stored = readCredentials(ctx.env);

  let username = opts.username ?? (stored && sameServer(stored.server, server) ? stored.username : undefined);
  if (!username) {
    if (opts.passwordStdin || !interactive) throw new CliUsageError("--username is required when stdin is not a terminal");
    username = await promptLine(ctx, "Username: ");
  }
  if (!username) throw new CliUsageError("a username is required");

  let password: string;
  if (opts.passwordStdin) password = await readStdinText(ctx);
  else if (interactive) password = await promptHidden(ctx, `Password for ${username}: `);
  else throw new CliUsageError("no password: use --password-stdin when stdin is not a terminal");
  if (password === "") throw new CliUsageError("the password is empty");

  const client = createApiClient(ctx, { server, token: null });
  const res = await client.api.login({ username, password });
  if (typeof res?.token !== "string") throw new Error("the server's login answer has no token");
  const file = writeCredentials(ctx.env, { server: client.baseUrl, token: res.token, username });
  const expiry = typeof res.expires_in === "number" ? `, token valid for ${Math.round(res.expires_in / 3600)}h` : "";
  printLine(ctx, `logged in to ${client.baseUrl} as ${username}${expiry} (saved in ${file})`);
  return 0;
}

function sameServer(a: string, b: string): boolean {
  try {
    return normalizeServerUrl(a) === b;
  } catch {
    return false;
  }
}
