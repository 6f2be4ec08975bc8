/**
 * The first administrator (docs/architecture.md#authentication): when the users table is
 * empty at boot, create `admin` with the configured password or a generated
 * one. A generated password is handed to `print` exactly once and never logged.
 */
import crypto from "node:crypto";
import { ConflictError } from "../errors.ts";
import { isConstraintViolation, type Store, type UserRow } from "../store/types.ts";
import { hashPassword } from "./passwords.ts";

/** Username of the bootstrap administrator. */
export const FIRST_ADMIN_USERNAME = "admin";

/** Options of {@link ensureFirstAdmin}. */
export interface EnsureFirstAdminOptions {
  store: Store;
  /** Configured password (`admin_password`, at least 8 characters); generated when absent. */
  password?: string;
  /** Shows a message to the operator once (e.g. writes to the terminal, not to the log). */
  print: (message: string) => void;
}

/** What {@link ensureFirstAdmin} did. */
export type FirstAdminOutcome =
  | { created: false }
  | { created: true; user_id: string; username: string; password_generated: boolean };

/**
 * Creates the first admin when there are no users; otherwise does nothing.
 * The count check and the insert run in one transaction, so two concurrent
 * boots on one database cannot both create it (on PostgreSQL, where both may
 * see no users, the unique username refuses the second insert: that boot
 * resolves `{created: false}`).
 * @throws Error (store) when the insert fails otherwise.
 * @example
 * const outcome = await ensureFirstAdmin({ store, password: config.admin_password, print: (m) => process.stdout.write(m + "\n") });
 */
export async function ensureFirstAdmin(opts: EnsureFirstAdminOptions): Promise<FirstAdminOutcome> {
  const { store, print } = opts;
  if ((await store.users.count()) > 0) return { created: false };
  const generated = opts.password === undefined;
  const password = opts.password ?? crypto.randomBytes(18).toString("base64url");
  const password_hash = await hashPassword(password);
  let user: UserRow | undefined;
  try {
    user = await store.transaction(async (tx) =>
      (await tx.users.count()) > 0 ? undefined : tx.users.create({ username: FIRST_ADMIN_USERNAME, password_hash, role: "admin" }),
    );
  } catch (err) {
    const taken = (err instanceof ConflictError && err.code === "username_taken") || isConstraintViolation(err);
    if (!taken) throw err;
    return { created: false };
  }
  if (!user) return { created: false };
  if (generated) {
    print(
      `Created the first administrator.\n  username: ${FIRST_ADMIN_USERNAME}\n  password: ${password}\n` +
        "This password is shown only once; log in and keep it safe.",
    );
  }
  return { created: true, user_id: user.id, username: user.username, password_generated: generated };
}
