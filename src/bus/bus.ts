/**
 * Typed in-process pub/sub for system events (docs/architecture.md#the-bus). The
 * RunManager publishes run lifecycle changes here; metrics, and later the
 * container, proxy and tunnel actors, subscribe. Handlers run synchronously in
 * publish order; a throwing handler is reported to `onError` and does not stop
 * the others.
 *
 * The bus imports only the contract (`src/protocol/`): a producer in a higher
 * layer declares its own topics by augmenting {@link BusEvents} next to its
 * payload types, e.g. `src/proxy/events.ts` and `src/tunnel/events.ts`:
 * `declare module "../bus/bus.ts" { interface BusEvents extends ProxyBusEvents {} }`.
 */
import type { RunEvent, RunStatus } from "../protocol/events.ts";

/**
 * The system events and their payloads: the run topics here, plus every topic a
 * producer adds by module augmentation (`proxy.*`, `tunnel.*`, see the module comment).
 */
export interface BusEvents {
  /** A run changed status; `prev` is null for a new run. */
  "run.status": { run_id: string; user_id: string; agent: string; status: RunStatus; prev: RunStatus | null };
  /**
   * A committed event somebody outside the run may want to hear about (webhooks):
   * `permission.request`, `permission.decision` and the terminal events. Published after the commit.
   */
  "run.event": { user_id: string; event: RunEvent };
  /** `count` events of one run were committed to the store. */
  "run.events.stored": { run_id: string; count: number };
  /** An SSE subscriber attached (+1) or left (-1). */
  "sse.subscribers": { delta: 1 | -1 };
}

export type BusTopic = keyof BusEvents;
export type BusHandler<T extends BusTopic> = (payload: BusEvents[T]) => void;

/** A typed bus. Create one per server instance (no module-level singleton). */
export class Bus {
  readonly #handlers = new Map<BusTopic, Set<BusHandler<any>>>();
  constructor(private readonly onError: (err: unknown, topic: string) => void = () => {}) {}

  /** Subscribes; returns the unsubscribe function. */
  on<T extends BusTopic>(topic: T, handler: BusHandler<T>): () => void {
    let set = this.#handlers.get(topic);
    if (!set) this.#handlers.set(topic, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Delivers `payload` to every handler of `topic`, synchronously. */
  publish<T extends BusTopic>(topic: T, payload: BusEvents[T]): void {
    const set = this.#handlers.get(topic);
    if (!set) return;
    for (const h of set) {
      try {
        h(payload);
      } catch (err) {
        this.onError(err, topic);
      }
    }
  }
}
