/**
 * Removes containers nobody owns any more (docs/architecture.md#containers):
 *
 * - at start, `sweepOrphans()`: every container labelled with this server
 *   instance is a leftover of an earlier process (per-run and pool containers
 *   always; project containers unless the caller adopts them, e.g. running
 *   ones, to keep them for their users);
 * - periodically, `sweepIdle()`: project containers of this instance that
 *   nobody holds and nobody touched for `idleMs` are removed.
 *
 * The engine is the source of truth (containers are found by label, not from
 * memory); the sweeper only remembers when it last saw each project container
 * used. A container it meets for the first time counts as used at that moment,
 * so an adopted container gets a full idle period.
 */
import type { Log } from "../log.ts";
import { LABEL } from "./labels.ts";
import type { ContainerClient, ContainerSummary } from "./types.ts";

/** Options of {@link ContainerSweeper}. */
export interface SweeperOptions {
  client: ContainerClient;
  /** This server's instance id (the `openrunner.instance` label value). */
  instance: string;
  /** How long a project container may stay unused (default 600 000 ms). */
  idleMs?: number;
  /** Period of `sweepIdle` once `start()`ed (default 30 000 ms). */
  intervalMs?: number;
  log?: Pick<Log, "info" | "warn">;
  /** Clock (ms), injectable for tests. */
  now?: () => number;
  /** Called after each removal (e.g. to publish `container.removed` on the bus). */
  onRemoved?: (c: ContainerSummary, reason: "orphan" | "idle") => void;
}

/** Result of {@link ContainerSweeper.sweepOrphans}. */
export interface OrphanSweep {
  removed: ContainerSummary[];
  adopted: ContainerSummary[];
  /** Containers whose removal failed (logged), with the error message. */
  failed: Array<{ container: ContainerSummary; error: string }>;
}

/**
 * See the module comment. One per server; `close()` (or `await using`) stops the timer and waits for a sweep in flight.
 * @example
 * const sweeper = new ContainerSweeper({ client, instance, idleMs: 600_000, log });
 * await sweeper.sweepOrphans({ adopt: (c) => c.labels["openrunner.kind"] === "project" && c.state === "running" });
 * sweeper.start();
 * const release = sweeper.hold(containerId); // while a run uses it
 * release();                                  // touches it
 */
export class ContainerSweeper implements AsyncDisposable {
  readonly #o: Required<Pick<SweeperOptions, "idleMs" | "intervalMs" | "now">> & SweeperOptions;
  readonly #lastUsed = new Map<string, number>();
  readonly #holds = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<unknown> | null = null;
  #closed = false;

  constructor(opts: SweeperOptions) {
    this.#o = { idleMs: 600_000, intervalMs: 30_000, now: Date.now, ...opts };
  }

  /** When a container was last used (ms since the epoch), if the sweeper has seen it. */
  lastUsed(id: string): number | undefined {
    return this.#lastUsed.get(id);
  }

  /** Whether a run holds the container (see {@link hold}). */
  isHeld(id: string): boolean {
    return this.#holds.has(id);
  }

  /** The configured idle time, ms. */
  get idleMs(): number {
    return this.#o.idleMs;
  }

  /** Marks a container as used now. */
  touch(id: string): void {
    this.#lastUsed.set(id, this.#o.now());
  }

  /** Keeps a container from being idle-swept until the returned release is called (which touches it). Idempotent release. */
  hold(id: string): () => void {
    this.#holds.set(id, (this.#holds.get(id) ?? 0) + 1);
    this.touch(id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#holds.get(id) ?? 1) - 1;
      if (n <= 0) this.#holds.delete(id);
      else this.#holds.set(id, n);
      this.touch(id);
    };
  }

  /** Removes this instance's containers, except those `adopt` returns true for (they are touched instead). */
  async sweepOrphans(opts: { adopt?: (c: ContainerSummary) => boolean } = {}): Promise<OrphanSweep> {
    return this.#exclusive(async () => {
      const out: OrphanSweep = { removed: [], adopted: [], failed: [] };
      for (const c of await this.#o.client.list({ [LABEL.instance]: this.#o.instance })) {
        if (opts.adopt?.(c)) {
          this.touch(c.id);
          out.adopted.push(c);
          continue;
        }
        await this.#remove(c, "orphan", out);
      }
      if (out.removed.length || out.failed.length) this.#o.log?.info("swept orphan containers", { removed: out.removed.length, failed: out.failed.length, adopted: out.adopted.length });
      return out;
    });
  }

  /** Removes project containers of this instance that are not held and were last used more than `idleMs` ago. */
  async sweepIdle(): Promise<ContainerSummary[]> {
    return this.#exclusive(async () => {
      const out: OrphanSweep = { removed: [], adopted: [], failed: [] };
      const now = this.#o.now();
      const seen = new Set<string>();
      for (const c of await this.#o.client.list({ [LABEL.instance]: this.#o.instance, [LABEL.kind]: "project" })) {
        seen.add(c.id);
        if (this.#holds.has(c.id)) continue;
        const last = this.#lastUsed.get(c.id);
        if (last === undefined) {
          this.#lastUsed.set(c.id, now);
          continue;
        }
        if (now - last >= this.#o.idleMs) await this.#remove(c, "idle", out);
      }
      // Forget containers that are gone (removed elsewhere).
      for (const id of this.#lastUsed.keys()) if (!seen.has(id) && !this.#holds.has(id)) this.#lastUsed.delete(id);
      return out.removed;
    });
  }

  /** Runs `sweepIdle` every `intervalMs` (the timer does not keep the process alive). Errors are logged. */
  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => {
      void this.sweepIdle().catch((err: unknown) => this.#o.log?.warn("idle container sweep failed", { err: err instanceof Error ? err.message : String(err) }));
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Stops the timer and waits for a sweep in flight. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight?.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** One sweep at a time: a second caller waits for the first, then runs. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#inFlight) await this.#inFlight.catch(() => {});
    const p = fn();
    this.#inFlight = p;
    try {
      return await p;
    } finally {
      if (this.#inFlight === p) this.#inFlight = null;
    }
  }

  async #remove(c: ContainerSummary, reason: "orphan" | "idle", out: OrphanSweep): Promise<void> {
    try {
      await this.#o.client.get(c.id).remove({ force: true });
      this.#lastUsed.delete(c.id);
      out.removed.push(c);
      this.#o.onRemoved?.(c, reason);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      out.failed.push({ container: c, error });
      this.#o.log?.warn("could not remove container", { container_id: c.id, reason, error });
    }
  }
}
