/**
 * The AG-UI view of a run (docs/architecture.md#ag-ui): RunEvents mapped onto
 * the event types of the Agent–User Interaction protocol, as published in
 * `@ag-ui/core` 1.0 (`EventType`, `EventSchemas`; https://docs.ag-ui.com/concepts/events).
 * A projection of the one RunEvent union, never a second union: every AG-UI
 * event comes from exactly one RunEvent, and a RunEvent without an AG-UI
 * counterpart becomes a `RAW` event carrying it whole (`source: "openrunner"`).
 *
 * | RunEvent | AG-UI |
 * |---|---|
 * | `run.queued` (the first event) | `RUN_STARTED {threadId, runId}` |
 * | `message.delta` | `TEXT_MESSAGE_START` (first delta of a message), `TEXT_MESSAGE_CONTENT` |
 * | `message` | `TEXT_MESSAGE_END` after deltas; else `START`, `CONTENT`, `END` |
 * | `reasoning` | `REASONING_START`, `REASONING_MESSAGE_START/CONTENT/END`, `REASONING_END` |
 * | `tool.call` | `TOOL_CALL_START {toolCallId, toolCallName}`, `TOOL_CALL_ARGS` (the input as JSON), `TOOL_CALL_END` |
 * | `tool.result` | `TOOL_CALL_RESULT {toolCallId, content}` (text, or the output as JSON) |
 * | `plan` | `STATE_SNAPSHOT {snapshot: {plan: entries}}` |
 * | `permission.request` / `permission.decision` | `CUSTOM {name: "openrunner.permission.request" / "…decision", value: data}` |
 * | `run.completed` | `RUN_FINISHED {result, outcome: {type: "success"}}` |
 * | `run.cancelled` | `RUN_FINISHED {outcome: {type: "cancelled"}}` |
 * | `run.failed` | `RUN_ERROR {message, code}` |
 * | `run.timed_out` | `RUN_ERROR {message, code: "timed_out"}` |
 * | anything else (`run.started`, `agent.session`, `usage`, `log`, `container.*` …) | `RAW {event, source: "openrunner"}` |
 *
 * Text messages still open when a tool call starts or the run ends are closed
 * first (`TEXT_MESSAGE_END`), so the stream keeps AG-UI's nesting rules. Every
 * AG-UI event carries `timestamp` (ms since the epoch, from the RunEvent's `ts`).
 * The mapper is pure: state (open messages) lives in the object it returns,
 * and the same RunEvents always give the same AG-UI events.
 */
import { EventType, type BaseEvent } from "@ag-ui/core";
import type { RunEvent } from "../protocol/events.ts";

/** One AG-UI event (the `@ag-ui/core` `BaseEvent` with its type's fields). */
export type AguiEvent = BaseEvent & Record<string, unknown>;

/** What names the AG-UI run and thread. */
export interface AguiMapOptions {
  /** The AG-UI `threadId` (default: the run id). */
  threadId?: string;
}

/** Maps a run's events, in id order, to AG-UI events; one per run and stream. */
export interface AguiMapper {
  /** The AG-UI events of one RunEvent (none, one or several). */
  map(event: RunEvent): AguiEvent[];
}

/** The `source` of `RAW` events. */
export const RAW_SOURCE = "openrunner";

/**
 * A mapper for one run's event stream (see the module comment for the table).
 * Feed it every event from the first on: it tracks which text messages are open.
 * @example
 * const m = createAguiMapper();
 * for (const e of events) for (const a of m.map(e)) send(a);
 */
export function createAguiMapper(opts: AguiMapOptions = {}): AguiMapper {
  const open = new Set<string>();
  let started = false;
  let reasoningSeq = 0;

  const closeOpen = (timestamp: number): AguiEvent[] => {
    const out = [...open].map((messageId) => ev(EventType.TEXT_MESSAGE_END, timestamp, { messageId }));
    open.clear();
    return out;
  };

  return {
    map(e: RunEvent): AguiEvent[] {
      const t = Date.parse(e.ts);
      const threadId = opts.threadId ?? e.run_id;
      const out: AguiEvent[] = [];
      if (!started) {
        started = true;
        out.push(ev(EventType.RUN_STARTED, t, { threadId, runId: e.run_id }));
        if (e.type === "run.queued") return out;
      }
      switch (e.type) {
        case "message.delta": {
          const { message_id: messageId, text } = e.data;
          if (!open.has(messageId)) {
            open.add(messageId);
            out.push(ev(EventType.TEXT_MESSAGE_START, t, { messageId, role: "assistant" }));
          }
          if (text !== "") out.push(ev(EventType.TEXT_MESSAGE_CONTENT, t, { messageId, delta: text }));
          return out;
        }
        case "message": {
          const { message_id: messageId, text } = e.data;
          if (!open.has(messageId)) {
            out.push(ev(EventType.TEXT_MESSAGE_START, t, { messageId, role: "assistant" }));
            if (text !== "") out.push(ev(EventType.TEXT_MESSAGE_CONTENT, t, { messageId, delta: text }));
          }
          open.delete(messageId);
          out.push(ev(EventType.TEXT_MESSAGE_END, t, { messageId }));
          return out;
        }
        case "reasoning": {
          if (e.data.text === "") return out;
          const messageId = `${e.run_id}:reasoning:${e.id}:${++reasoningSeq}`;
          out.push(
            ev(EventType.REASONING_START, t, { messageId }),
            ev(EventType.REASONING_MESSAGE_START, t, { messageId, role: "reasoning" }),
            ev(EventType.REASONING_MESSAGE_CONTENT, t, { messageId, delta: e.data.text }),
            ev(EventType.REASONING_MESSAGE_END, t, { messageId }),
            ev(EventType.REASONING_END, t, { messageId }),
          );
          return out;
        }
        case "tool.call": {
          const toolCallId = e.data.call_id;
          out.push(...closeOpen(t), ev(EventType.TOOL_CALL_START, t, { toolCallId, toolCallName: e.data.name }));
          const args = JSON.stringify(e.data.input ?? {});
          if (args !== "") out.push(ev(EventType.TOOL_CALL_ARGS, t, { toolCallId, delta: args }));
          out.push(ev(EventType.TOOL_CALL_END, t, { toolCallId }));
          return out;
        }
        case "tool.result": {
          const output = e.data.output;
          const content = typeof output === "string" ? output : JSON.stringify(output ?? null);
          out.push(ev(EventType.TOOL_CALL_RESULT, t, { messageId: `${e.data.call_id}:result`, toolCallId: e.data.call_id, content, role: "tool" }));
          return out;
        }
        case "plan":
          out.push(ev(EventType.STATE_SNAPSHOT, t, { snapshot: { plan: e.data.entries } }));
          return out;
        case "permission.request":
        case "permission.decision":
          out.push(ev(EventType.CUSTOM, t, { name: `openrunner.${e.type}`, value: stripRaw(e.data) }));
          return out;
        case "run.completed":
          out.push(...closeOpen(t), ev(EventType.RUN_FINISHED, t, { threadId, runId: e.run_id, ...(e.data.result !== undefined ? { result: e.data.result } : {}), outcome: { type: "success" } }));
          return out;
        case "run.cancelled":
          out.push(...closeOpen(t), ev(EventType.RUN_FINISHED, t, { threadId, runId: e.run_id, outcome: { type: "cancelled" } }));
          return out;
        case "run.failed":
          out.push(...closeOpen(t), ev(EventType.RUN_ERROR, t, { message: e.data.error.message, code: e.data.error.code }));
          return out;
        case "run.timed_out":
          out.push(...closeOpen(t), ev(EventType.RUN_ERROR, t, { message: `the run timed out after ${e.data.timeout_ms} ms`, code: "timed_out" }));
          return out;
        default:
          out.push(ev(EventType.RAW, t, { event: e, source: RAW_SOURCE }));
          return out;
      }
    },
  };
}

function ev(type: EventType, timestamp: number, fields: Record<string, unknown>): AguiEvent {
  return { type, timestamp, ...fields };
}

/** `data` without the agent's original object (`raw`), which AG-UI consumers have no schema for. */
function stripRaw(data: object): Record<string, unknown> {
  const { raw: _raw, ...rest } = data as Record<string, unknown>;
  return rest;
}
