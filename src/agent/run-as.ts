/**
 * Host runs under an unprivileged OS user. When the server runs as root, an
 * agent on the host would otherwise read everything the server can: the JWT
 * secret and database in the data folder, the server's environment through
 * /proc. Runs therefore drop to `host_run_user` (default 65534:65534, `nobody`)
 * and own only their workspace and home directories.
 */
import { lchown, readdir } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../errors.ts";

/** A numeric user and group to run agents as. */
export interface RunAs {
  uid: number;
  gid: number;
}

/** The default unprivileged user when the server is root: nobody/nogroup. */
export const DEFAULT_RUN_AS: RunAs = { uid: 65534, gid: 65534 };

/**
 * Resolves the configured `host_run_user` ("uid:gid", or "none" to keep the
 * server's user). Unset: {@link DEFAULT_RUN_AS} when the server is root, else none
 * (only root can switch users).
 * @throws ConfigError when a user is configured but the server is not root, or uid 0 is named
 */
export function resolveRunAs(setting: string | undefined, serverUid: number | undefined): RunAs | undefined {
  if (setting === "none") return undefined;
  if (setting === undefined) return serverUid === 0 ? DEFAULT_RUN_AS : undefined;
  const m = /^(\d+):(\d+)$/.exec(setting);
  if (!m) throw new ConfigError("host_run_user", '"uid:gid" with numbers, or "none"', setting);
  const runAs = { uid: Number(m[1]), gid: Number(m[2]) };
  if (runAs.uid === 0) throw new ConfigError("host_run_user", "a non-root uid", setting);
  if (serverUid !== 0) throw new ConfigError("host_run_user", "unset or \"none\" unless the server runs as root", setting);
  return runAs;
}

/**
 * Gives `dir` and everything below it to `runAs`, without following symlinks,
 * visiting at most `maxEntries` entries (a huge workspace is left partly as it is).
 * Returns how many entries were changed.
 */
export async function chownTree(dir: string, runAs: RunAs, maxEntries = 50_000): Promise<number> {
  let count = 0;
  const stack = [dir];
  while (stack.length > 0 && count < maxEntries) {
    const cur = stack.pop()!;
    await lchown(cur, runAs.uid, runAs.gid);
    count++;
    let entries: import("node:fs").Dirent[] = [];
    try {
      entries = await readdir(cur, { withFileTypes: true });
    } catch {
      continue; // not a directory
    }
    for (const e of entries) {
      const p = path.join(cur, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (count < maxEntries) {
        await lchown(p, runAs.uid, runAs.gid);
        count++;
      }
    }
  }
  return count;
}
