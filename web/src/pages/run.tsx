/**
 * A run's page: its header (status, agent, working directory, token usage
 * and cost, the latest plan), the cancel button, open permission requests,
 * the live event list, and the follow-up, artifacts and preview panels.
 * The run's row is reloaded when its events change its state.
 */
import { useEffect, useState } from "react";
import { OpenRunnerError, type RunView } from "openrunner/client";
import { useSession } from "../context.ts";
import { describeError, isUnauthorized } from "../errors.ts";
import { formatCost, formatCount, formatTime, isTerminal } from "../format.ts";
import { Link } from "../router.tsx";
import { EventList } from "../run/event-list.tsx";
import { Artifacts, PreviewLinks, ResumeBox } from "../run/panels.tsx";
import { PermissionRequests } from "../run/permissions.tsx";
import { useRunEvents } from "../run/use-run-events.ts";
import { StatusBadge } from "./runs.tsx";

export function RunPage({ runId }: { runId: string }) {
  const { client, me, signOut } = useSession();
  const { timeline, version, reconnecting, error, done } = useRunEvents(client, runId, signOut);
  const [run, setRun] = useState<RunView>();
  const [runError, setRunError] = useState<unknown>();
  const [cancelError, setCancelError] = useState<string>();
  const [cancelling, setCancelling] = useState(false);

  const open = timeline.openPermissions();
  const openKey = open.map((p) => p.requestId).join(",");
  // The row changes with lifecycle events, permission requests and the end: reload it then.
  const phase = `${timeline.statusCount}|${openKey}|${timeline.end?.id ?? 0}`;

  useEffect(() => {
    const ac = new AbortController();
    client.getRun(runId, { signal: ac.signal }).then(
      (r) => {
        setRun(r);
        setRunError(undefined);
      },
      (err) => {
        if (ac.signal.aborted) return;
        if (isUnauthorized(err)) signOut();
        else setRunError(err);
      },
    );
    return () => ac.abort();
  }, [client, runId, phase, signOut]);

  const notFound = (runError instanceof OpenRunnerError && runError.status === 404) || (error instanceof OpenRunnerError && error.status === 404);
  if (notFound)
    return (
      <section>
        <h1>Run not found</h1>
        <p>
          There is no run <code>{runId}</code> that you can see. <Link to="/runs">Back to runs</Link>
        </p>
      </section>
    );

  const status = timeline.end ? timeline.end.type.slice(4) : (run?.status ?? "queued");
  const ended = done || (run ? isTerminal(run.status) : false);
  const usage = run?.usage ?? (timeline.usage.input_tokens + timeline.usage.output_tokens > 0 ? timeline.usage : undefined);
  const cost = run?.usage?.cost_usd ?? (timeline.usage.has_cost ? timeline.usage.cost_usd : undefined);

  const cancel = async () => {
    setCancelling(true);
    setCancelError(undefined);
    try {
      await client.cancelRun(runId);
    } catch (err) {
      setCancelError(describeError(err));
    } finally {
      setCancelling(false);
    }
  };

  return (
    <section className="run-page" aria-labelledby="run-title">
      <div className="title-row">
        <h1 id="run-title">
          Run <code>{runId}</code>
        </h1>
        <span aria-live="polite" data-testid="run-status">
          <StatusBadge status={status} />
        </span>
        {!ended ? (
          <button type="button" className="danger" onClick={() => void cancel()} disabled={cancelling}>
            {cancelling ? "Cancelling…" : "Cancel run"}
          </button>
        ) : null}
      </div>
      {cancelError ? (
        <p role="alert" className="error">
          {cancelError}
        </p>
      ) : null}
      {runError ? <p className="error">Could not load the run: {describeError(runError)}</p> : null}
      <dl className="facts">
        <dt>Agent</dt>
        <dd>{run ? `${run.agent}${typeof run.metadata.acp_agent === "string" ? ` (${run.metadata.acp_agent})` : ""}` : "…"}</dd>
        {run && me.role === "admin" && run.user_id !== me.id ? (
          <>
            <dt>Owner</dt>
            <dd>
              <span className="badge other">{run.user_id}</span>
            </dd>
          </>
        ) : null}
        <dt>Working directory</dt>
        <dd>
          <code>{run?.cwd ?? "…"}</code>
        </dd>
        <dt>Created</dt>
        <dd>{formatTime(run?.created_at)}</dd>
        <dt>Tokens</dt>
        <dd data-testid="usage">
          {usage ? `${formatCount(usage.input_tokens)} in / ${formatCount(usage.output_tokens)} out` : "–"}
          {cost !== undefined ? ` · ${formatCost(cost)}` : ""}
        </dd>
        <dt>Events</dt>
        <dd data-testid="event-count" data-count={timeline.count} data-last-id={timeline.lastId}>
          {formatCount(timeline.count)}
          {reconnecting ? <span className="badge warn"> reconnecting…</span> : null}
        </dd>
      </dl>
      {run ? (
        <details className="prompt-box">
          <summary>Prompt</summary>
          <pre>{run.input.text}</pre>
        </details>
      ) : null}
      {timeline.plan ? (
        <section className="plan-now" aria-label="current plan">
          <h2>Plan</h2>
          <ol>
            {timeline.plan.map((e, i) => (
              <li key={i} className={`plan-${e.status}`}>
                <span className="badge">{e.status.replace("_", " ")}</span> {e.content}
              </li>
            ))}
          </ol>
        </section>
      ) : null}
      <PermissionRequests client={client} runId={runId} openKey={openKey} />
      {error && !notFound ? (
        <p role="alert" className="error">
          The event stream stopped: {describeError(error)}
        </p>
      ) : null}
      <EventList items={timeline.items} version={version} />
      <div className="panels">
        {run && ended && run.session_id ? <ResumeBox client={client} run={run} /> : null}
        <Artifacts client={client} runId={runId} ended={ended} />
        {run && !ended ? <PreviewLinks client={client} runId={runId} /> : null}
      </div>
    </section>
  );
}
