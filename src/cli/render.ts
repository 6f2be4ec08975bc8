/**
 * Turns run events into terminal text, without any I/O: the CLI's `run` and
 * `logs` commands write what {@link createRenderer} returns. Assistant text
 * streams inline from `message.delta`; the whole `message` is printed only when
 * it was not streamed. Unknown event types (newer servers) get a generic line.
 */
import type { RunEvent, Usage } from "../protocol/events.ts";
import {
  createPaint,
  formatCount,
  formatDuration,
  summarizeToolInput,
  summarizeToolOutput,
  type Paint,
} from "./format.ts";

/** An event as received: a known {@link RunEvent} or one of a type this client does not know. */
export type RenderableEvent = RunEvent | { id: number; run_id?: string; ts?: string; type: string; data?: unknown };

/** Options of {@link createRenderer}. */
export interface RenderOptions {
  /** Use ANSI colours (default false). */
  color?: boolean;
}

/** A stateful event-to-text renderer. */
export interface Renderer {
  /** Text to write for this event: zero or more whole lines, or an inline delta. */
  render(event: RenderableEvent): string;
  /** A newline when the last output left the cursor mid-line (an unfinished delta), else "". */
  flush(): string;
  /** True when the last output ended mid-line. */
  readonly midLine: boolean;
}

const MAX_STREAMED_IDS = 256;
const MAX_STDOUT_TAIL = 64 * 1024;

/**
 * Creates a renderer. It keeps only what the output needs: whether the cursor
 * is mid-line, which messages were already streamed, whether any text or usage
 * was shown.
 * @example
 * const r = createRenderer({ color: false });
 * r.render({ id: 1, run_id: "r", ts: "", type: "tool.call", data: { call_id: "c", name: "Bash", input: { command: "ls" } } });
 * // "→ Bash(ls)\n"
 */
export function createRenderer(opts: RenderOptions = {}): Renderer {
  const paint = createPaint(opts.color ?? false);
  let midLine = false;
  let openMessage: string | undefined;
  const streamed = new Set<string>();
  let printedText = false;
  let printedUsage = false;
  /** The last stdout log text, to skip a `result` that only repeats it (the shell agent). */
  let stdoutTail = "";

  /** Closes an open delta line before whole-line output. */
  const lines = (...ls: string[]): string => {
    const prefix = midLine ? "\n" : "";
    midLine = false;
    openMessage = undefined;
    return ls.length === 0 ? prefix : prefix + ls.map((l) => `${l}\n`).join("");
  };

  function renderDelta(messageId: string, text: string): string {
    if (text === "") return "";
    let out = "";
    if (openMessage !== messageId) {
      out = lines();
      openMessage = messageId;
      streamed.add(messageId);
      if (streamed.size > MAX_STREAMED_IDS) streamed.delete(streamed.values().next().value as string);
    }
    printedText = true;
    midLine = !text.endsWith("\n");
    return out + text;
  }

  function renderKnown(ev: RunEvent): string {
    switch (ev.type) {
      case "run.queued":
        return lines(paint("dim", ev.data.position > 0 ? `queued (position ${ev.data.position})` : "queued"));
      case "run.started": {
        const d = ev.data;
        const parts = [`started ${d.agent}${d.agent_version ? ` ${d.agent_version}` : ""}`];
        if (d.pid !== undefined) parts.push(`pid ${d.pid}`);
        if (d.container_id) parts.push(`container ${d.container_id.slice(0, 12)}`);
        if (d.cwd) parts.push(d.cwd);
        return lines(paint("dim", parts.join(" · ")));
      }
      case "agent.session":
        return lines(paint("dim", `session ${ev.data.session_id}`));
      case "message.delta":
        return renderDelta(ev.data.message_id, ev.data.text);
      case "message": {
        if (streamed.has(ev.data.message_id)) return lines();
        printedText = true;
        return lines(ev.data.text.replace(/\n+$/, ""));
      }
      case "reasoning":
        return lines(...ev.data.text.replace(/\n+$/, "").split("\n").map((l) => paint("dim", l)));
      case "plan":
        return lines(paint("bold", "plan:"), ...ev.data.entries.map((e) => `  ${planMark(e.status, paint)} ${e.content}`));
      case "tool.call":
        return lines(`${paint("cyan", "→")} ${paint("bold", ev.data.name)}(${summarizeToolInput(ev.data.input)})`);
      case "tool.result": {
        const mark = ev.data.is_error ? paint("red", "✗") : paint("green", "✓");
        const out = summarizeToolOutput(ev.data.output);
        return lines(`  ${mark}${out ? ` ${paint("dim", out)}` : ""}`);
      }
      case "permission.request":
        return lines(`${paint("yellow", "?")} permission requested: ${ev.data.name}(${summarizeToolInput(ev.data.input)})`);
      case "permission.decision":
        return lines(paint("dim", `  permission ${ev.data.decision} by ${ev.data.by}`));
      case "usage":
        printedUsage = true;
        return lines(paint("dim", formatUsage(ev.data)));
      case "log": {
        if (ev.data.stream === "stdout") stdoutTail = `${stdoutTail}${ev.data.text}\n`.slice(-MAX_STDOUT_TAIL);
        const tag = ev.data.stream === "stderr" ? "stderr│ " : "stdout│ ";
        const text = ev.data.text.replace(/\n+$/, "");
        return lines(...text.split("\n").map((l) => paint(ev.data.stream === "stderr" ? "yellow" : "dim", tag + l)));
      }
      case "container.created":
      case "container.started":
      case "container.stopped":
      case "container.removed":
        return lines(paint("dim", `container ${ev.type.slice(10)} ${ev.data.container_id.slice(0, 12)}`));
      case "run.stalled": {
        const d = ev.data;
        const why = d.cause === "tool_running" ? `tool running${d.cpu_busy ? ", busy" : ", idle"}` : d.cause === "model_request_open" ? `waiting for the model${d.endpoint ? ` at ${d.endpoint}` : ""}` : d.cause === "waiting_permission" ? "waiting for a permission answer" : "process idle";
        return lines(paint("yellow", `… no event for ${formatDuration(d.idle_ms)}: ${why}`));
      }
      case "run.resumed_activity":
        return lines(paint("dim", `… active again after ${formatDuration(ev.data.stalled_ms)}`));
      case "run.completed": {
        const d = ev.data;
        const out: string[] = [];
        const result = d.result?.replace(/\n+$/, "");
        if (result && !printedText && !stdoutTail.includes(result)) out.push(result);
        if (d.usage && !printedUsage) out.push(paint("dim", formatUsage(d.usage)));
        const exit = d.exit_code !== 0 ? ` (exit ${d.exit_code})` : "";
        out.push(`${paint("green", "✓ completed")}${exit}${paint("dim", ` in ${formatDuration(d.duration_ms)}`)}`);
        return lines(...out);
      }
      case "run.failed": {
        const d = ev.data;
        const exit = d.exit_code !== undefined ? ` (exit ${d.exit_code})` : "";
        const head = paint("red", `✗ failed: ${d.error.code}: ${d.error.message}`);
        return lines(`${head}${exit}${paint("dim", ` after ${formatDuration(d.duration_ms)}`)}`);
      }
      case "run.cancelled": {
        const d = ev.data;
        const head = /^cancel/i.test(d.reason) ? d.reason : `cancelled: ${d.reason}`;
        const by = d.by ? ` (by ${d.by})` : "";
        return lines(`${paint("yellow", `■ ${head}`)}${by}${paint("dim", ` after ${formatDuration(d.duration_ms)}`)}`);
      }
      case "run.timed_out": {
        const d = ev.data;
        const head = paint("red", `✗ timed out (limit ${formatDuration(d.timeout_ms)})`);
        return lines(`${head}${paint("dim", ` after ${formatDuration(d.duration_ms)}`)}`);
      }
      default:
        return renderUnknown(ev as RenderableEvent);
    }
  }

  function renderUnknown(ev: RenderableEvent): string {
    let data = "";
    try {
      data = ev.data === undefined ? "" : ` ${JSON.stringify(ev.data)}`;
    } catch {
      data = "";
    }
    return lines(paint("dim", `${ev.type}${data.length > 200 ? `${data.slice(0, 199)}…` : data}`));
  }

  return {
    render(event) {
      try {
        return renderKnown(event as RunEvent);
      } catch {
        // Malformed data from a newer or broken server: show it rather than crash.
        return renderUnknown(event);
      }
    },
    flush() {
      return lines();
    },
    get midLine() {
      return midLine;
    },
  };
}

/** Formats token usage: `usage: 1,200 in · 340 out · 50 cache read · $0.0123`. */
export function formatUsage(u: Usage): string {
  const parts = [`${formatCount(u.input_tokens)} in`, `${formatCount(u.output_tokens)} out`];
  if (u.cache_read_tokens) parts.push(`${formatCount(u.cache_read_tokens)} cache read`);
  if (u.cache_write_tokens) parts.push(`${formatCount(u.cache_write_tokens)} cache write`);
  if (u.cost_usd !== undefined) parts.push(`$${u.cost_usd.toFixed(4)}`);
  return `usage: ${parts.join(" · ")}`;
}

function planMark(status: string, paint: Paint): string {
  if (status === "completed" || status === "done") return paint("green", "✓");
  if (status === "in_progress" || status === "active") return paint("yellow", "▸");
  return paint("dim", "○");
}
