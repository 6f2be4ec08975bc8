/**
 * Where a PostgreSQL repository's statements go: the pool (outside a transaction, each statement
 * on whichever connection is free, in autocommit) or one checked-out client between BEGIN and
 * COMMIT (inside {@link Exec.atomic}), with nested `atomic` calls as savepoints.
 *
 * PostgreSQL aborts a whole transaction on a failed statement (later statements fail with
 * SQLSTATE 25P02), where SQLite undoes only the statement. So that a caller never mistakes an
 * aborted transaction for a committed one, a transaction (or savepoint) whose function resolves
 * after one of its statements failed is rolled back and rejects with that statement's error.
 */
import pg from "pg";
import type { Pool, PoolClient, QueryResult, QueryResultRow } from "pg";

/** A target for statements, in or out of a transaction. */
export interface Exec {
  /** Runs one statement (`$1`, `$2` … placeholders); rejects with the driver's error (SQLSTATE in `code`). */
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
  /** True inside {@link atomic}'s function. */
  readonly inTransaction: boolean;
  /**
   * Runs `fn` atomically: a transaction on a checked-out client when called on the pool, a
   * savepoint when already inside one (calls on one level run one after the other). Resolves what
   * `fn` resolves after COMMIT / RELEASE; when `fn` rejects (or one of its statements failed),
   * rolls back what it wrote and rejects with that error.
   */
  atomic<T>(fn: (exec: Exec) => Promise<T>): Promise<T>;
}

/** The pool's {@link Exec}. */
export function poolExec(pool: Pool): Exec {
  return {
    inTransaction: false,
    query: <R extends QueryResultRow>(text: string, values?: unknown[]) => pool.query<R>(text, values),
    atomic: (fn) => inTransaction(pool, fn),
  };
}

/** The state of one transaction on its client. */
class Transaction {
  /** Set once COMMIT or ROLLBACK was sent: a statement after that would run outside the transaction. */
  ended = false;
  /** The first error of a statement since BEGIN or the last savepoint rolled back (the transaction is aborted). */
  abortedBy: unknown = undefined;
  savepoints = 0;
  constructor(readonly client: PoolClient) {}

  async query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    if (this.ended) throw new Error("transaction has ended: use the repositories given to transaction(fn) only inside fn");
    try {
      return await this.client.query<R>(text, values);
    } catch (err) {
      this.abortedBy ??= err;
      throw err;
    }
  }

  /** The end of the transaction itself (not counted as a statement of the caller's). */
  control(text: string): Promise<QueryResult> {
    return this.client.query(text);
  }
}

async function inTransaction<T>(pool: Pool, fn: (exec: Exec) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const tx = new Transaction(client);
  let broken: Error | undefined; // the connection is in an unknown state: the pool must not reuse it
  // A checked-out client has no pool listener: its connection failing between statements would be an unhandled 'error' (a crash).
  const onError = (err: Error) => {
    broken = err;
    tx.abortedBy ??= err;
  };
  client.on("error", onError);
  try {
    try {
      await tx.control("BEGIN");
    } catch (err) {
      broken = asError(err);
      throw err;
    }
    let out: T;
    try {
      out = await fn(txExec(tx));
      if (tx.abortedBy !== undefined) throw tx.abortedBy;
    } catch (err) {
      tx.ended = true;
      await tx.control("ROLLBACK").catch((e: unknown) => void (broken = asError(e)));
      throw err;
    }
    tx.ended = true;
    let result: QueryResult;
    try {
      result = await tx.control("COMMIT");
    } catch (err) {
      if (!(err instanceof pg.DatabaseError)) broken = asError(err);
      throw err;
    }
    // COMMIT of an aborted transaction answers ROLLBACK without an error.
    if (result.command === "ROLLBACK") throw tx.abortedBy ?? new Error("the transaction was rolled back at COMMIT");
    return out;
  } finally {
    tx.ended = true;
    client.off("error", onError);
    client.release(broken);
  }
}

function txExec(tx: Transaction): Exec {
  let chain: Promise<unknown> = Promise.resolve();
  return {
    inTransaction: true,
    query: <R extends QueryResultRow>(text: string, values?: unknown[]) => tx.query<R>(text, values),
    atomic<T>(fn: (exec: Exec) => Promise<T>): Promise<T> {
      const run = () => inSavepoint(tx, fn);
      const p = chain.then(run, run);
      chain = p.catch(() => undefined);
      return p;
    },
  };
}

async function inSavepoint<T>(tx: Transaction, fn: (exec: Exec) => Promise<T>): Promise<T> {
  const name = `openrunner_sp_${++tx.savepoints}`;
  await tx.query(`SAVEPOINT ${name}`);
  let out: T;
  try {
    out = await fn(txExec(tx));
    if (tx.abortedBy !== undefined) throw tx.abortedBy;
  } catch (err) {
    try {
      await tx.query(`ROLLBACK TO SAVEPOINT ${name}`);
      tx.abortedBy = undefined; // the transaction goes on as it was before the savepoint
      await tx.query(`RELEASE SAVEPOINT ${name}`);
    } catch {
      // the connection failed: the transaction stays aborted and the outer level rolls back
    }
    throw err;
  }
  await tx.query(`RELEASE SAVEPOINT ${name}`);
  return out;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
