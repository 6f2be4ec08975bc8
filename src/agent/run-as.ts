/**
 * Host runs under an unprivileged OS user. When the server runs as root, an
 * agent on the host would otherwise read everything the server can: the JWT
 * secret and database in the data folder, the server's environment through
 * /proc. Runs therefore drop to `host_run_user` (default 65534:65534, `nobody`)
 * and own only their workspace and home directories.
 */
import { ConfigError } from "../errors.ts";
import { chownTree as chownTreeByFd, MAX_TREE_ENTRIES } from "./safe-fs.ts";

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
 * Gives `dir` and everything below it to `runAs`, without following symlinks (also one swapped in
 * while it runs: descriptors are walked), leaving hard-linked files as they are, and visiting at most
 * `maxEntries` entries (a huge workspace is left partly as it is); see `chownTree` in `safe-fs.ts`.
 * @returns how many entries were visited
 */
export function chownTree(dir: string, runAs: RunAs, maxEntries = MAX_TREE_ENTRIES): Promise<number> {
  return chownTreeByFd(dir, runAs, maxEntries);
}
