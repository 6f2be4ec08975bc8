/**
 * A run's events folded into the items the run page shows, incrementally:
 * each {@link Timeline.add} costs O(1), so a 100,000-event run is built in one
 * pass and a live run appends without re-reading what came before.
 *
 * - `message.delta`s of one `message_id` merge into one message item; the
 *   whole `message` then replaces its text (or starts the item when no delta came);
 * - a `tool.result` attaches to the item of its `tool.call` (by `call_id`);
 * - a `permission.decision` attaches to its `permission.request`;
 * - `usage` events are summed into {@link Timeline.usage};
 * - an event whose id is not above the last one is ignored, so a replay never
 *   doubles anything.
 *
 * Items are replaced, never mutated, when they change, so a React row can be
 * memoized on its item.
 */
import type { RunEvent, RunEventType } from "openrunner/client";

type DataOf<T extends RunEventType> = Extract<RunEvent, { type: T }>["data"];

/** One row of the run page. `id` is the event id that created it (stable, unique). */
export type TimelineItem =
  | { kind: "message"; id: number; messageId: string; text: string; complete: boolean }
  | { kind: "reasoning"; id: number; text: string }
  | { kind: "tool"; id: number; callId: string; name: string; input: unknown; result?: { id: number; output: unknown; isError: boolean; raw: unknown } }
  | { kind: "plan"; id: number; entries: DataOf<"plan">["entries"] }
  | { kind: "permission"; id: number; requestId: string; name: string; input: unknown; options: unknown[]; decision?: DataOf<"permission.decision"> }
  | { kind: "usage"; id: number; usage: DataOf<"usage"> }
  | { kind: "log"; id: number; stream: "stdout" | "stderr"; text: string }
  | { kind: "status"; id: number; type: RunEventType; text: string }
  | { kind: "end"; id: number; event: Extract<RunEvent, { type: "run.completed" | "run.failed" | "run.cancelled" | "run.timed_out" }> };

/** Token counts (tokens) and cost (USD) summed over a run's `usage` events. */
export interface UsageTotals {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number;
  /** Whether any event carried a cost. */
  has_cost: boolean;
}

/** The one-line text of a lifecycle event (queued, started, session, container). */
function statusText(ev: RunEvent): string | undefined {
  switch (ev.type) {
    case "run.queued":
      return `queued (position ${ev.data.position}) for ${ev.data.agent}`;
    case "run.started":
      return `started ${ev.data.agent}${ev.data.agent_version ? ` ${ev.data.agent_version}` : ""}${ev.data.pid ? `, pid ${ev.data.pid}` : ""}${ev.data.container_id ? `, container ${ev.data.container_id.slice(0, 12)}` : ""} in ${ev.data.cwd}`;
    case "agent.session":
      return `agent session ${ev.data.session_id}`;
    case "container.created":
    case "container.started":
    case "container.stopped":
    case "container.removed":
      return `${ev.type.replace(".", " ")} ${ev.data.container_id.slice(0, 12)}`;
    default:
      return undefined;
  }
}

/** See the module comment. */
export class Timeline {
  /** The rows, in the order of the events that created them. */
  readonly items: TimelineItem[] = [];
  /** The id of the last event added (0 before any). */
  lastId = 0;
  /** How many events were added (equals `lastId` when nothing was missed). */
  count = 0;
  /** The terminal event, once it arrived. */
  end: Extract<TimelineItem, { kind: "end" }>["event"] | undefined;
  /** The latest `plan`, for the page's header. */
  plan: DataOf<"plan">["entries"] | undefined;
  /** How many lifecycle rows (queued, started, session, container) there are: changes when the run's state does. */
  statusCount = 0;
  /** The run's process id (`run.started.data.pid`), when it ran on the host. */
  pid: number | undefined;
  readonly usage: UsageTotals = { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0, has_cost: false };
  readonly #messages = new Map<string, number>();
  readonly #tools = new Map<string, number>();
  readonly #permissions = new Map<string, number>();

  /** Adds one event; returns false (and changes nothing) for an id already seen. */
  add(ev: RunEvent): boolean {
    if (ev.id <= this.lastId) return false;
    this.lastId = ev.id;
    this.count++;
    switch (ev.type) {
      case "message.delta": {
        const at = this.#messages.get(ev.data.message_id);
        const prev = at === undefined ? undefined : this.items[at];
        if (prev?.kind === "message") this.items[at!] = { ...prev, text: prev.text + ev.data.text };
        else this.#push({ kind: "message", id: ev.id, messageId: ev.data.message_id, text: ev.data.text, complete: false }, this.#messages, ev.data.message_id);
        break;
      }
      case "message": {
        const at = this.#messages.get(ev.data.message_id);
        const prev = at === undefined ? undefined : this.items[at];
        if (prev?.kind === "message") this.items[at!] = { ...prev, text: ev.data.text, complete: true };
        else this.#push({ kind: "message", id: ev.id, messageId: ev.data.message_id, text: ev.data.text, complete: true }, this.#messages, ev.data.message_id);
        break;
      }
      case "reasoning":
        this.items.push({ kind: "reasoning", id: ev.id, text: ev.data.text });
        break;
      case "plan":
        this.plan = ev.data.entries;
        this.items.push({ kind: "plan", id: ev.id, entries: ev.data.entries });
        break;
      case "tool.call":
        this.#push({ kind: "tool", id: ev.id, callId: ev.data.call_id, name: ev.data.name, input: ev.data.input }, this.#tools, ev.data.call_id);
        break;
      case "tool.result": {
        const at = this.#tools.get(ev.data.call_id);
        const prev = at === undefined ? undefined : this.items[at];
        const result = { id: ev.id, output: ev.data.output, isError: ev.data.is_error, raw: ev.data.raw };
        if (prev?.kind === "tool") this.items[at!] = { ...prev, result };
        else this.#push({ kind: "tool", id: ev.id, callId: ev.data.call_id, name: "(unknown call)", input: undefined, result }, this.#tools, ev.data.call_id);
        break;
      }
      case "permission.request":
        this.#push(
          { kind: "permission", id: ev.id, requestId: ev.data.request_id, name: ev.data.name, input: ev.data.input, options: ev.data.options },
          this.#permissions,
          ev.data.request_id,
        );
        break;
      case "permission.decision": {
        const at = this.#permissions.get(ev.data.request_id);
        const prev = at === undefined ? undefined : this.items[at];
        if (prev?.kind === "permission") this.items[at!] = { ...prev, decision: ev.data };
        break;
      }
      case "usage":
        this.#addUsage(ev.data);
        this.items.push({ kind: "usage", id: ev.id, usage: ev.data });
        break;
      case "log":
        this.items.push({ kind: "log", id: ev.id, stream: ev.data.stream, text: ev.data.text });
        break;
      case "run.completed":
      case "run.failed":
      case "run.cancelled":
      case "run.timed_out":
        this.end = ev;
        this.items.push({ kind: "end", id: ev.id, event: ev });
        break;
      default: {
        if (ev.type === "run.started" && ev.data.pid !== undefined) this.pid = ev.data.pid;
        const text = statusText(ev);
        if (text !== undefined) {
          this.statusCount++;
          this.items.push({ kind: "status", id: ev.id, type: ev.type, text });
        }
      }
    }
    return true;
  }

  /** Permission requests without a decision, oldest first. */
  openPermissions(): Extract<TimelineItem, { kind: "permission" }>[] {
    const out: Extract<TimelineItem, { kind: "permission" }>[] = [];
    for (const at of this.#permissions.values()) {
      const it = this.items[at];
      if (it?.kind === "permission" && !it.decision) out.push(it);
    }
    return out;
  }

  #push(item: TimelineItem, index: Map<string, number>, key: string): void {
    index.set(key, this.items.length);
    this.items.push(item);
  }

  #addUsage(u: DataOf<"usage">): void {
    this.usage.input_tokens += u.input_tokens;
    this.usage.output_tokens += u.output_tokens;
    this.usage.cache_read_tokens += u.cache_read_tokens ?? 0;
    this.usage.cache_write_tokens += u.cache_write_tokens ?? 0;
    if (u.cost_usd !== undefined) {
      this.usage.cost_usd += u.cost_usd;
      this.usage.has_cost = true;
    }
  }
}
