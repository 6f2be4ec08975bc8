/**
 * One row of the run page's event list, by item kind: assistant text,
 * reasoning (collapsed), a tool call with its input and its result (exit
 * code, output, file diffs), a plan, a permission request and its decision,
 * token usage, a log line, a lifecycle line, and the run's end (result, or the
 * failure code with its message). Memoized on the item (items are replaced
 * when they change).
 */
import { memo } from "react";
import { formatCost, formatCount, formatDuration } from "../format.ts";
import type { TimelineItem } from "./timeline.ts";
import { commandOf, exitCodeOf, fileChangesOf, formatValue, outputText, type FileChange } from "./tool-detail.ts";

/** Long outputs are cut in the list (the whole stays in the event). */
const MAX_CHARS = 20_000;
const clip = (s: string) => (s.length > MAX_CHARS ? `${s.slice(0, MAX_CHARS)}\n… (${formatCount(s.length - MAX_CHARS)} more characters)` : s);

function Diff({ change }: { change: FileChange }) {
  return (
    <figure className="diff">
      <figcaption>
        <span className="badge">{change.kind}</span> <code>{change.path}</code>
      </figcaption>
      {change.lines.length > 0 ? (
        <pre>
          {change.lines.slice(0, 400).map((l, i) => (
            <span key={i} className={l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : "ctx"}>
              {l}
              {"\n"}
            </span>
          ))}
        </pre>
      ) : null}
    </figure>
  );
}

function ToolRow({ item }: { item: Extract<TimelineItem, { kind: "tool" }> }) {
  const command = commandOf(item.input);
  const result = item.result;
  const exit = result ? exitCodeOf(result.output, result.raw) : undefined;
  const changes = fileChangesOf(item.input, result?.output);
  const out = result ? outputText(result.output) : "";
  return (
    <article className={`tool${result?.isError ? " is-error" : ""}`} aria-label={`tool call ${item.name}`}>
      <header>
        <span className="kind">tool</span> <strong className="tool-name">{item.name}</strong>{" "}
        {result ? (
          <span className={`badge ${result.isError ? "bad" : "good"}`}>{result.isError ? "error" : "done"}</span>
        ) : (
          <span className="badge">running</span>
        )}
        {exit !== undefined ? <span className="badge exit">exit {exit}</span> : null}
      </header>
      {command !== undefined ? (
        <pre className="command">$ {command}</pre>
      ) : item.input !== undefined ? (
        <details className="tool-input">
          <summary>input</summary>
          <pre>{clip(formatValue(item.input))}</pre>
        </details>
      ) : null}
      {changes.map((c, i) => (
        <Diff key={i} change={c} />
      ))}
      {result ? (
        <div className="tool-result">
          <span className="kind">result</span>
          <pre>{out === "" ? "(no output)" : clip(out)}</pre>
        </div>
      ) : null}
    </article>
  );
}

function EndRow({ item }: { item: Extract<TimelineItem, { kind: "end" }> }) {
  const ev = item.event;
  switch (ev.type) {
    case "run.completed":
      return (
        <article className="end good" aria-label="run completed">
          <strong>Completed</strong> in {formatDuration(ev.data.duration_ms)}, exit {ev.data.exit_code}
          {ev.data.result ? <pre className="result">{clip(ev.data.result)}</pre> : null}
        </article>
      );
    case "run.failed":
      return (
        <article className="end bad" aria-label="run failed">
          <strong>Failed</strong> <code className="code">{ev.data.error.code}</code> {ev.data.error.message}
          {ev.data.exit_code !== undefined ? <span className="badge exit">exit {ev.data.exit_code}</span> : null} after {formatDuration(ev.data.duration_ms)}
        </article>
      );
    case "run.cancelled":
      return (
        <article className="end warn" aria-label="run cancelled">
          <strong>Cancelled</strong> ({ev.data.reason}
          {ev.data.by ? ` by ${ev.data.by}` : ""}) after {formatDuration(ev.data.duration_ms)}
        </article>
      );
    case "run.timed_out":
      return (
        <article className="end warn" aria-label="run timed out">
          <strong>Timed out</strong> after {formatDuration(ev.data.timeout_ms)}
        </article>
      );
  }
}

function RowBody({ item }: { item: TimelineItem }) {
  switch (item.kind) {
    case "message":
      return (
        <article className="message" aria-label="assistant message">
          <p className="text">{item.text}</p>
        </article>
      );
    case "reasoning":
      return (
        <details className="reasoning">
          <summary>Reasoning</summary>
          <p className="text">{item.text}</p>
        </details>
      );
    case "tool":
      return <ToolRow item={item} />;
    case "plan":
      return (
        <article className="plan" aria-label="plan">
          <span className="kind">plan</span>
          <ol>
            {item.entries.map((e, i) => (
              <li key={i} className={`plan-${e.status}`}>
                <span className="badge">{e.status.replace("_", " ")}</span> {e.content}
                {e.priority ? <span className="muted"> ({e.priority})</span> : null}
              </li>
            ))}
          </ol>
        </article>
      );
    case "permission":
      return (
        <article className="permission-row" aria-label={`permission request ${item.name}`}>
          <span className="kind">permission</span> <strong>{item.name}</strong>{" "}
          {item.decision ? (
            <span className={`badge ${item.decision.kind?.startsWith("allow") ? "good" : "bad"}`}>
              {item.decision.option_name ?? item.decision.decision} by {item.decision.by}
            </span>
          ) : (
            <span className="badge warn">waiting for an answer</span>
          )}
        </article>
      );
    case "usage":
      return (
        <p className="usage">
          <span className="kind">usage</span> {formatCount(item.usage.input_tokens)} in / {formatCount(item.usage.output_tokens)} out
          {item.usage.cache_read_tokens ? ` / ${formatCount(item.usage.cache_read_tokens)} cache read` : ""}
          {item.usage.cost_usd !== undefined ? ` · ${formatCost(item.usage.cost_usd)}` : ""}
        </p>
      );
    case "log":
      return <pre className={`log ${item.stream}`}>{item.text}</pre>;
    case "status":
      return <p className="lifecycle">{item.text}</p>;
    case "end":
      return <EndRow item={item} />;
  }
}

/** One row; `data-ev-id` is the id of the event that created it. */
export const EventRow = memo(function EventRow({ item }: { item: TimelineItem }) {
  return (
    <div className={`row row-${item.kind}`} data-ev-id={item.id} data-kind={item.kind}>
      <RowBody item={item} />
    </div>
  );
});
