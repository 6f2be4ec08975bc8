/** Agents health (`GET /health/agents`): which agents can run here, their versions, paths, and why not. */
import { useSession } from "../context.ts";
import { describeError } from "../errors.ts";
import { usePoll } from "../use-poll.ts";

export function AgentsPage() {
  const { client } = useSession();
  const { data, error, refresh } = usePoll((signal) => client.agentsHealth({ signal }), () => 60_000, [client]);
  return (
    <section aria-labelledby="agents-title">
      <div className="title-row">
        <h1 id="agents-title">Agents</h1>
        <button type="button" onClick={refresh}>
          Refresh
        </button>
      </div>
      {error ? <p className="error">Could not load: {describeError(error)}</p> : null}
      {!data ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Available</th>
              <th scope="col">Version</th>
              <th scope="col">Tested</th>
              <th scope="col">Path / reason</th>
            </tr>
          </thead>
          <tbody>
            {data.map((a) => (
              <tr key={a.agent} data-agent={a.agent}>
                <th scope="row">{a.agent}</th>
                <td>
                  <span className={`badge ${a.available ? "good" : "bad"}`}>{a.available ? "yes" : "no"}</span>
                </td>
                <td>{a.version ?? "–"}</td>
                <td>{a.tested === undefined ? "–" : a.tested ? "yes" : `no (tested ${a.tested_version ?? "?"})`}</td>
                <td>{a.available ? <code>{a.path ?? ""}</code> : (a.reason ?? "")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
