/**
 * The runs list (`GET /api/runs`): the caller's runs (an admin's: everyone's,
 * with the owner shown), newest first, filtered by status and agent (kept in
 * the URL query), paged with the cursor. Polled: every second while a listed
 * run is live, every 5 s otherwise, backing off after errors.
 */
import { useState } from "react";
import type { RunListResponse, RunStatus } from "openrunner/client";
import { useSession } from "../context.ts";
import { describeError } from "../errors.ts";
import { formatTime, isTerminal, statusLabel } from "../format.ts";
import { Link, navigate, useLocation } from "../router.tsx";
import { usePoll } from "../use-poll.ts";

const STATUSES: RunStatus[] = ["queued", "preparing", "running", "waiting", "completed", "failed", "cancelled", "timed_out"];
const PAGE_SIZE = 25;

/** A status as a coloured badge. */
export function StatusBadge({ status }: { status: string }) {
  return <span className={`status status-${status}`}>{statusLabel(status)}</span>;
}

export function RunsPage() {
  const { client, me, signOut } = useSession();
  const { query } = useLocation();
  const status = (query.get("status") ?? "") as RunStatus | "";
  const agent = query.get("agent") ?? "";
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const { data, error } = usePoll<RunListResponse>(
    (signal) => client.listRuns({ signal, limit: PAGE_SIZE, ...(status ? { status } : {}), ...(agent ? { agent_type: agent } : {}), ...(cursor ? { cursor } : {}) }),
    (d) => (d.runs.some((r) => !isTerminal(r.status)) ? 1000 : 5000),
    [client, status, agent, cursor],
    signOut,
  );

  const setFilter = (key: string, value: string) => {
    const q = new URLSearchParams(query);
    if (value) q.set(key, value);
    else q.delete(key);
    setCursors([]);
    const s = q.toString();
    navigate(`/runs${s ? `?${s}` : ""}`, { replace: true });
  };

  return (
    <section aria-labelledby="runs-title">
      <div className="title-row">
        <h1 id="runs-title">Runs{me.role === "admin" ? <span className="muted"> (all users)</span> : null}</h1>
        <Link to="/runs/new" className="button">
          New run
        </Link>
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select name="status" value={status} onChange={(e) => setFilter("status", e.target.value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {statusLabel(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Agent
          <input name="agent" value={agent} placeholder="e.g. shell" onChange={(e) => setFilter("agent", e.target.value.trim())} />
        </label>
      </form>
      {error ? (
        <p role="alert" className="error">
          Could not load runs ({describeError(error)}); retrying.
        </p>
      ) : null}
      {!data ? (
        <p aria-busy="true">Loading…</p>
      ) : data.runs.length === 0 ? (
        <p>No runs{status || agent ? " match these filters" : " yet"}.</p>
      ) : (
        <table className="runs">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Status</th>
              <th scope="col">Agent</th>
              <th scope="col">Prompt</th>
              {me.role === "admin" ? <th scope="col">Owner</th> : null}
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {data.runs.map((r) => (
              <tr key={r.id} data-run-id={r.id}>
                <td>
                  <Link to={`/runs/${encodeURIComponent(r.id)}`}>{r.id}</Link>
                </td>
                <td>
                  <StatusBadge status={r.status} />
                </td>
                <td>{r.agent}</td>
                <td className="prompt">{r.input.text.slice(0, 120)}</td>
                {me.role === "admin" ? <td>{r.user_id === me.id ? "you" : <span className="badge other">{r.user_id}</span>}</td> : null}
                <td>{formatTime(r.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav className="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={!data?.next_cursor} onClick={() => data?.next_cursor && setCursors((c) => [...c, data.next_cursor!])}>
          Older
        </button>
      </nav>
    </section>
  );
}
