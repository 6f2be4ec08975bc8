/**
 * The asynchronous face of the SQLite store. better-sqlite3 is synchronous; the {@link Store}
 * interfaces are asynchronous (one set for SQLite and PostgreSQL). A call runs at once on the
 * one connection and resolves (or rejects) with its result, unless a transaction is open: an
 * open {@link Store.transaction} spans `await`s, so calls from outside it wait, in arrival
 * order, until it commits or rolls back, and are never folded into it. Inside, `tx` runs its
 * calls at once; a nested `tx.transaction` is a SAVEPOINT.
 */
import type { Database as Db } from "better-sqlite3";
import type { Repos } from "./types.ts";

/** A repository's synchronous twin: the same methods, returning plain values. */
export type SyncOf<R> = { [K in keyof R]: R[K] extends (...a: infer A) => Promise<infer T> ? (...a: A) => T : never };

/** The synchronous repositories of one connection (all but `transaction`). */
export type SyncRepos = { [K in Exclude<keyof Repos, "transaction">]: SyncOf<Repos[K]> };

/** Runs `op` now: its value resolved, or what it throws as a rejection. */
export function attempt<T>(op: () => T): Promise<T> {
  try {
    return Promise.resolve(op());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Serializes callers around open transactions of one connection; see the module comment. */
export class SqliteGate {
  #open = false;
  #waiting: Array<() => void> = [];
  #savepoints = 0;

  constructor(private readonly db: Db) {}

  /** Runs a synchronous store call now, or once the open transaction has ended. */
  run<T>(op: () => T): Promise<T> {
    if (!this.#open) return attempt(op);
    return new Promise<T>((resolve, reject) => this.#waiting.push(() => attempt(op).then(resolve, reject)));
  }

  /** An outer transaction: BEGIN IMMEDIATE … COMMIT, or ROLLBACK when `fn` rejects. */
  transaction<T>(fn: (tx: Repos) => Promise<T>, tx: Repos): Promise<T> {
    if (!this.#open) return this.#begin(fn, tx);
    return new Promise<T>((resolve, reject) => this.#waiting.push(() => void this.#begin(fn, tx).then(resolve, reject)));
  }

  /** A nested transaction inside the open one: a SAVEPOINT, released or rolled back to. */
  async savepoint<T>(fn: (tx: Repos) => Promise<T>, tx: Repos): Promise<T> {
    if (!this.#open) throw new Error("savepoint outside a transaction");
    const name = `sp${++this.#savepoints}`;
    this.db.exec(`SAVEPOINT ${name}`);
    try {
      const out = await fn(tx);
      this.db.exec(`RELEASE ${name}`);
      return out;
    } catch (err) {
      if (this.db.inTransaction) {
        this.db.exec(`ROLLBACK TO ${name}`);
        this.db.exec(`RELEASE ${name}`);
      }
      throw err;
    }
  }

  async #begin<T>(fn: (tx: Repos) => Promise<T>, tx: Repos): Promise<T> {
    this.#open = true;
    try {
      this.db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      this.#end();
      throw err;
    }
    try {
      const out = await fn(tx);
      this.db.exec("COMMIT");
      return out;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw err;
    } finally {
      this.#end();
    }
  }

  #end(): void {
    this.#open = false;
    this.#savepoints = 0;
    while (!this.#open && this.#waiting.length > 0) this.#waiting.shift()!();
  }
}

/** Wraps a synchronous repository: each method runs through `run` and resolves its result. */
export function asyncRepo<R>(sync: SyncOf<R>, run: <T>(op: () => T) => Promise<T>): R {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(sync as Record<string, (...a: unknown[]) => unknown>)) {
    out[name] = (...args: unknown[]) => run(() => fn(...args));
  }
  return out as R;
}
