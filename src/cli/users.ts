/**
 * `openrunner users add NAME [--role admin|user] [--password-stdin]`,
 * `users list`, `users rm ID`: user administration (admin only, /api/users).
 */
import type { CreateUserBody } from "../protocol/api.ts";
import { createApiClient } from "./client.ts";
import { CliUsageError, printLine, type CliContext } from "./context.ts";
import { formatTable, formatTimestamp } from "./format.ts";
import { promptHidden, readStdinText } from "./prompt.ts";

/**
 * Runs `users add`; the password comes from stdin or a prompt (asked twice).
 * @example echo "$PW" | openrunner users add alice --role user --password-stdin
 */
export async function runUsersAdd(
  ctx: CliContext,
  opts: { server?: string; username: string; role?: string; passwordStdin?: boolean },
): Promise<number> {
  let password: string;
  if (opts.passwordStdin) {
    password = await readStdinText(ctx);
  } else if (ctx.stdin.isTTY) {
    password = await promptHidden(ctx, `Password for ${opts.username}: `);
    if ((await promptHidden(ctx, "Repeat the password: ")) !== password) throw new CliUsageError("the passwords differ");
  } else {
    throw new CliUsageError("no password: use --password-stdin when stdin is not a terminal");
  }
  if (password === "") throw new CliUsageError("the password is empty");
  const client = createApiClient(ctx, { server: opts.server });
  const u = await client.api.createUser({ username: opts.username, password, role: (opts.role ?? "user") as CreateUserBody["role"] });
  printLine(ctx, `created user ${u.username}${u.id ? ` (${u.id})` : ""}, role ${u.role}`);
  return 0;
}

/**
 * Runs `users list`.
 * @example openrunner users list
 */
export async function runUsersList(ctx: CliContext, opts: { server?: string }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const users = await client.api.listUsers();
  const rows = users.map((u) => [u.id, u.username, u.role, formatTimestamp(u.created_at)]);
  printLine(ctx, formatTable(["ID", "USERNAME", "ROLE", "CREATED"], rows));
  return 0;
}

/**
 * Runs `users rm ID`.
 * @example openrunner users rm usr_01J…
 */
export async function runUsersRemove(ctx: CliContext, opts: { server?: string; id: string }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  await client.api.deleteUser(opts.id);
  printLine(ctx, `removed user ${opts.id}`);
  return 0;
}
