/**
 * The webhook dispatcher: hears committed run events on the bus (`run.event`:
 * `permission.request`, `permission.decision` and the terminal events), finds the
 * run owner's webhooks subscribed to the type, and delivers to each, off the
 * run's path:
 *
 * - the events heard are taken in one at a time, in the order heard (the store's
 *   writes are asynchronous; {@link WebhookDispatcher.whenIdle} resolves once all are in);
 * - a delivery is a row in the store, then a job in a bounded in-memory queue
 *   (`webhooks.max_queue` jobs held at once, queued, in flight or waiting to
 *   retry); past the bound the delivery is recorded `dropped`, logged and
 *   counted (`openrunner_webhook_deliveries_dropped_total`), never blocking;
 * - `webhooks.concurrency` workers send; before every attempt the target is
 *   checked again and resolved (`target.ts`), and the attempt connects to the
 *   checked address (`deliver.ts`);
 * - the body is `{id, type, run_id, event, delivered_at}` (`id` is the delivery
 *   id, the same on every attempt), signed (`signing.ts`) with a fresh timestamp per attempt;
 * - network errors, timeouts, 408, 429 and 5xx are retried with exponential
 *   backoff and jitter up to `webhooks.max_attempts`; every attempt is recorded.
 *
 * Secrets and URL paths never reach the log (only the webhook id and the URL's origin).
 */
import { Counter, type Registry } from "prom-client";
import type { Bus, BusEvents } from "../bus/bus.ts";
import type { Config } from "../config/schema.ts";
import type { Log } from "../log.ts";
import type { Store, WebhookRow } from "../store/types.ts";
import { sendWebhookAttempt, type AttemptResult } from "./deliver.ts";
import { WEBHOOK_HEADERS, signatureHeader } from "./signing.ts";
import { resolveWebhookTarget, TARGET_ERROR, type LookupAll } from "./target.ts";

/** Deliveries kept per webhook (older ones are pruned). */
export const DELIVERIES_KEPT_PER_WEBHOOK = 500;

export interface WebhookDispatcherOptions {
  store: Pick<Store, "webhooks">;
  bus: Bus;
  config: Config["webhooks"];
  log: Log;
  /** Registry for the dispatcher's counters (the server's metrics registry). */
  registry?: Registry;
  /** Host name resolution (tests); default `dns.promises.lookup`. */
  lookup?: LookupAll;
  /** Server version, for `User-Agent`. */
  version?: string;
  /**
   * The store is shared with other processes (distributed mode): pending deliveries may be theirs, so start and
   * close do not mark them `abandoned` (this process's undelivered ones stay `pending`). Default false.
   */
  sharedStore?: boolean;
}

interface Job {
  deliveryId: string;
  webhookId: string;
  event: BusEvents["run.event"]["event"];
  attempt: number;
}

/** See the module comment. One per server: `start()` after the store opens, `close()` in the ordered shutdown. */
export class WebhookDispatcher {
  readonly #o: WebhookDispatcherOptions;
  readonly #log: Log;
  readonly #queue: Job[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Jobs held: queued + in flight + waiting to retry. */
  #held = 0;
  #off: (() => void) | null = null;
  #closing: Promise<void> | null = null;
  /** The intake: events heard are recorded one after another (the tail of that chain; it never rejects). */
  #intake: Promise<void> = Promise.resolve();
  #started: Promise<void> | null = null;
  readonly #counters: { delivered: Counter<"outcome">; dropped: Counter } | null;

  constructor(opts: WebhookDispatcherOptions) {
    this.#o = opts;
    this.#log = opts.log.getSubLogger({ name: "webhooks" });
    this.#counters = opts.registry
      ? {
          delivered: new Counter({ name: "openrunner_webhook_deliveries_total", help: "Webhook deliveries finished, by outcome (delivered, failed).", labelNames: ["outcome"], registers: [opts.registry] }),
          dropped: new Counter({ name: "openrunner_webhook_deliveries_dropped_total", help: "Webhook deliveries dropped because the queue was full.", registers: [opts.registry] }),
        }
      : null;
  }

  /** Jobs held now (queued, in flight or waiting to retry). */
  get held(): number {
    return this.#held;
  }

  /**
   * Subscribes to the bus (at once: no event published after this call is missed) and marks the
   * deliveries left `pending` by an earlier process `abandoned`, before any new delivery is recorded.
   * Resolves once they are marked; rejects when the store refuses (the events heard are still taken
   * in). A second call resolves the first call's outcome.
   */
  start(): Promise<void> {
    if (this.#started) return this.#started;
    const abandoned = (this.#o.sharedStore ? Promise.resolve(0) : this.#o.store.webhooks.abandonPending()).then((n) => {
      if (n > 0) this.#log.warn("webhook deliveries of an earlier process abandoned", { count: n });
    });
    this.#started = abandoned;
    this.#intake = abandoned.catch((err: unknown) => {
      this.#log.error("could not mark earlier webhook deliveries abandoned", { err: String(err) });
    });
    this.#off = this.#o.bus.on("run.event", (p) => this.#onRunEvent(p));
    return abandoned;
  }

  /** Resolves once every event heard so far has been taken in (its deliveries recorded and queued, or dropped). */
  whenIdle(): Promise<void> {
    return this.#intake;
  }

  /**
   * Stops: no new deliveries, retries cancelled, waits for the events already heard to be taken
   * in and for attempts in flight (each bounded by `timeout_ms`) with their store writes, marks
   * what is left `abandoned`. Idempotent: resolves the first call's outcome.
   */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      this.#off?.();
      for (const t of this.#timers) clearTimeout(t);
      this.#timers.clear();
      this.#queue.length = 0;
      await this.#intake; // deliveries of events heard before: recorded pending (nothing sends them now), abandoned below
      this.#queue.length = 0;
      await Promise.allSettled([...this.#inFlight]);
      if (!this.#o.sharedStore) await this.#o.store.webhooks.abandonPending();
    })());
  }

  #onRunEvent(p: BusEvents["run.event"]): void {
    if (this.#closing) return;
    this.#intake = this.#intake
      .then(() => this.#takeIn(p))
      .catch((err: unknown) => {
        this.#log.error("webhook deliveries could not be recorded", { run_id: p.event.run_id, type: p.event.type, err: String(err) });
      });
  }

  /** Records one event's deliveries (one per subscribed webhook of the run's owner) and queues them. */
  async #takeIn({ user_id, event }: BusEvents["run.event"]): Promise<void> {
    const hooks = (await this.#o.store.webhooks.listByUser(user_id)).filter((h) => h.events.includes(event.type));
    for (const hook of hooks) {
      if (this.#held >= this.#o.config.max_queue) {
        await this.#o.store.webhooks.insertDelivery({ webhook_id: hook.id, run_id: event.run_id, event_type: event.type, event_id: event.id, status: "dropped" });
        this.#counters?.dropped.inc();
        this.#log.warn("webhook queue full; delivery dropped", { webhook_id: hook.id, run_id: event.run_id, type: event.type, max_queue: this.#o.config.max_queue });
        continue;
      }
      const d = await this.#o.store.webhooks.insertDelivery({ webhook_id: hook.id, run_id: event.run_id, event_type: event.type, event_id: event.id, status: "pending" });
      this.#held++;
      this.#queue.push({ deliveryId: d.id, webhookId: hook.id, event, attempt: 0 });
      this.#pump();
      await this.#o.store.webhooks.pruneDeliveries(hook.id, DELIVERIES_KEPT_PER_WEBHOOK).catch((err: unknown) => {
        this.#log.warn("could not prune a webhook's old deliveries", { webhook_id: hook.id, err: String(err) });
      });
    }
  }

  #pump(): void {
    while (!this.#closing && this.#inFlight.size < this.#o.config.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      const p = this.#attempt(job)
        .catch((err: unknown) => {
          this.#log.error("webhook attempt failed unexpectedly", { webhook_id: job.webhookId, delivery_id: job.deliveryId, err: String(err) });
          return this.#finish(job, "failed");
        })
        .finally(() => {
          this.#inFlight.delete(p);
          this.#pump();
        });
      this.#inFlight.add(p);
    }
  }

  async #attempt(job: Job): Promise<void> {
    const hook = await this.#o.store.webhooks.get(job.webhookId);
    if (!hook) return void this.#held--; // deleted meanwhile; its deliveries went with it
    job.attempt++;
    const cfg = this.#o.config;
    const at = new Date();
    const result = await this.#send(hook, job, at);
    if (!(await this.#o.store.webhooks.get(job.webhookId))) return void this.#held--; // deleted during the attempt
    await this.#o.store.webhooks.recordAttempt({ delivery_id: job.deliveryId, attempt: job.attempt, at: at.toISOString(), status_code: result.status_code, error: result.error, duration_ms: result.duration_ms });
    if (result.ok) return this.#finish(job, "delivered");
    const origin = safeOrigin(hook.url);
    if (this.#closing) return void this.#held--; // left pending: close() marks it abandoned
    if (!result.retryable || job.attempt >= cfg.max_attempts) {
      this.#log.warn("webhook delivery failed", { webhook_id: hook.id, delivery_id: job.deliveryId, origin, attempts: job.attempt, error: result.error });
      return this.#finish(job, "failed");
    }
    const delay = backoffMs(job.attempt, cfg.retry_base_ms, cfg.retry_max_ms);
    this.#log.debug("webhook attempt failed; will retry", { webhook_id: hook.id, delivery_id: job.deliveryId, origin, attempt: job.attempt, delay_ms: delay, error: result.error });
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#queue.push(job);
      this.#pump();
    }, delay);
    this.#timers.add(timer);
  }

  async #send(hook: WebhookRow, job: Job, at: Date): Promise<AttemptResult> {
    let target;
    try {
      target = await withDeadline(resolveWebhookTarget(hook.url, this.#o.config, this.#o.lookup), this.#o.config.timeout_ms);
    } catch (err) {
      const code = (err as { code?: string }).code ?? "webhook_target_error";
      return { ok: false, status_code: null, error: `${code}: ${(err as Error).message}`, retryable: code === TARGET_ERROR.unresolvable, duration_ms: 0 };
    }
    const { event } = job;
    const body = JSON.stringify({ id: job.deliveryId, type: event.type, run_id: event.run_id, event, delivered_at: at.toISOString() });
    const t = Math.floor(at.getTime() / 1000);
    return sendWebhookAttempt(
      target,
      body,
      {
        "Content-Type": "application/json",
        "User-Agent": `OpenRunner-Webhook/${this.#o.version ?? "0"}`,
        [WEBHOOK_HEADERS.event]: event.type,
        [WEBHOOK_HEADERS.delivery]: job.deliveryId,
        [WEBHOOK_HEADERS.signature]: signatureHeader(hook.secret, t, body),
      },
      this.#o.config.timeout_ms,
    );
  }

  /** Releases the job's place and resolves once its outcome is stored (a store error is logged, the delivery left pending). */
  async #finish(job: Job, status: "delivered" | "failed"): Promise<void> {
    this.#held--;
    this.#counters?.delivered.inc({ outcome: status });
    try {
      await this.#o.store.webhooks.updateDelivery(job.deliveryId, { status });
    } catch (err) {
      this.#log.error("could not record a webhook delivery's outcome", { webhook_id: job.webhookId, delivery_id: job.deliveryId, status, err: String(err) });
    }
  }
}

/**
 * Delay before retry `attempt + 1`, ms: `base * 2^(attempt-1)` capped at `max`,
 * then "equal jitter" (a uniform value in its upper half).
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** `p`, or a retryable `webhook_target_unresolvable` error after `ms` (getaddrinfo has no timeout of its own). */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`name resolution took over ${ms} ms`), { code: TARGET_ERROR.unresolvable })), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** `scheme://host:port` of a URL, for logs (never its path or query, which may carry tokens). */
function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "invalid-url";
  }
}
