/**
 * One server per data folder. Two servers on the same SQLite data would each
 * "recover" the other's live runs (ending them as interrupted and killing their
 * processes). The lock is `<data_dir>/server.lock` holding the owner's PID; a
 * lock whose process is gone (crash, SIGKILL) is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";

/** A held lock; `release()` is idempotent. */
export interface DataDirLock {
  release(): void;
}

/** Thrown when another live process holds the data folder. */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(`data folder ${dataDir} is in use by another OpenRunner server or engine (pid ${pid})`);
    this.name = "DataDirLockedError";
  }
}

/** Data folders locked by this process (resolved paths). */
const HELD = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the data folder's lock.
 * @throws DataDirLockedError when a live process holds it
 */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  const file = path.join(dataDir, "server.lock");
  // The file records a PID, so it cannot tell two engines of this process apart (createOpenRunner twice).
  const key = path.resolve(dataDir);
  if (HELD.has(key)) throw new DataDirLockedError(dataDir, process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let released = false;
      HELD.add(key);
      return {
        release() {
          if (released) return;
          released = true;
          HELD.delete(key);
          rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number(readFileSync(file, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) throw new DataDirLockedError(dataDir, pid);
      rmSync(file, { force: true }); // stale: its owner is gone
    }
  }
  throw new Error(`could not take the lock ${file}`);
}
