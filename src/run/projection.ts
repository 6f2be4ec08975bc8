/**
 * How events project onto the run row (status, timestamps, session id,
 * result, usage): a table keyed by event type ({@link PROJECTIONS}) the
 * RunManager applies inside the EventWriter's commit transaction, so a row and
 * its events never disagree, and the status changes it publishes after the commit.
 */
import type { RunRow } from "../store/types.ts";
import { statusOfTerminal, TERMINAL_EVENT_TYPES, type RunEvent, type RunEventData, type RunEventType, type RunStatus, type TerminalEventType, type Usage } from "../protocol/events.ts";

/** Sums two usage records; optional counts stay absent when both are. */
export function addUsage(a: Usage | null, b: Usage): Usage {
  if (!a) return { ...b };
  const sum = (x?: number, y?: number) => (x === undefined && y === undefined ? undefined : (x ?? 0) + (y ?? 0));
  const out: Usage = { input_tokens: a.input_tokens + b.input_tokens, output_tokens: a.output_tokens + b.output_tokens };
  const cr = sum(a.cache_read_tokens, b.cache_read_tokens);
  const cw = sum(a.cache_write_tokens, b.cache_write_tokens);
  const cost = sum(a.cost_usd, b.cost_usd);
  if (cr !== undefined) out.cache_read_tokens = cr;
  if (cw !== undefined) out.cache_write_tokens = cw;
  if (cost !== undefined) out.cost_usd = cost;
  return out;
}

/**
 * The row patch of a terminal event. `usage`: the event's own, else the sum of
 * the run's `usage` events (`accumulated`), else null.
 */
export function terminalPatch(e: RunEvent & { type: TerminalEventType }, accumulated: Usage | null): Partial<RunRow> {
  const d = e.data as Record<string, unknown>;
  return {
    status: statusOfTerminal(e.type),
    ended_at: e.ts,
    result: typeof d.result === "string" ? d.result : null,
    error: (d.error as RunRow["error"]) ?? null,
    exit_code: typeof d.exit_code === "number" ? d.exit_code : null,
    usage: (d.usage as Usage | undefined) ?? accumulated,
  };
}

/**
 * The part of a live run the projection reads and keeps up to date (the RunManager's
 * record of the run carries it). Mutated only by {@link PROJECTIONS} entries.
 */
export interface ProjectionState {
  /** Sum of the run's `usage` events so far; null before the first. */
  usage: Usage | null;
  /** `permission.request` events not yet followed by their `permission.decision`. */
  pendingPermissions: number;
  /** The run's permission policy is `ask`: only then does a request block the run (`waiting`). */
  asksUser: boolean;
  /** The container the run's agent runs in, from its `run.started` (docker runs). */
  containerId?: string;
}

/**
 * What one event does to its run: `row`, the patch written to the run row in the commit
 * transaction; `status`, the status to publish on the bus (`run.status`) after the commit,
 * only when the run is live in this process.
 */
export interface RowPatch {
  row?: Partial<RunRow>;
  status?: RunStatus;
}

/**
 * One projection: `state` is the live run's (undefined for a run this process does not run,
 * e.g. one ended by recovery); it may update `state` and returns the row patch, or undefined
 * when the event changes nothing on the row.
 */
export type Projection<T extends RunEventType = RunEventType> = (state: ProjectionState | undefined, e: RunEvent & { type: T; data: RunEventData<T> }) => RowPatch | undefined;

const terminal: Projection<TerminalEventType> = (state, e) => {
  const row = terminalPatch(e, state?.usage ?? null);
  return { row, status: row.status! };
};

/**
 * The row projection, one entry per event type that changes the row or the live run's
 * {@link ProjectionState}; types without an entry change nothing. Applied by
 * `RunManager.project` (inside the EventWriter's commit transaction) in event order:
 *
 * - `run.started`: status `running`, `started_at`; remembers the container id.
 * - `agent.session`: `session_id`.
 * - `usage`: summed into the live run's usage (written with the terminal event).
 * - `permission.request` (policy `ask`): the first open request makes the run `waiting`.
 * - `permission.decision`: the last open request decided makes it `running` again.
 * - terminal types: {@link terminalPatch}.
 */
export const PROJECTIONS: { readonly [T in RunEventType]?: Projection<T> } = {
  "run.started": (state, e) => {
    if (state && e.data.container_id) state.containerId = e.data.container_id;
    return { row: { status: "running", started_at: e.ts }, status: "running" };
  },
  "agent.session": (_state, e) => ({ row: { session_id: e.data.session_id } }),
  usage: (state, e) => {
    if (state) state.usage = addUsage(state.usage, e.data);
    return undefined;
  },
  "permission.request": (state) => {
    // Blocked on a person: `waiting` until every open request is decided.
    if (!state?.asksUser || state.pendingPermissions++ !== 0) return undefined;
    return { row: { status: "waiting" }, status: "waiting" };
  },
  "permission.decision": (state) => {
    if (!state || state.pendingPermissions === 0 || --state.pendingPermissions !== 0) return undefined;
    return { row: { status: "running" }, status: "running" };
  },
  ...(Object.fromEntries(TERMINAL_EVENT_TYPES.map((t) => [t, terminal])) as { [T in TerminalEventType]: Projection<T> }),
};

/** The {@link RowPatch} of one event by {@link PROJECTIONS}; undefined when its type has no entry or it changes nothing. */
export function projectEvent(state: ProjectionState | undefined, e: RunEvent): RowPatch | undefined {
  const p = PROJECTIONS[e.type] as Projection | undefined;
  return p?.(state, e as Parameters<Projection>[1]);
}

/** Committed event types republished on the bus as `run.event` (for webhooks), after the row's status. */
export const NOTIFY_TYPES: ReadonlySet<RunEventType> = new Set<RunEventType>(["permission.request", "permission.decision", ...TERMINAL_EVENT_TYPES]);
