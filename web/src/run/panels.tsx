/**
 * The run page's side panels: the follow-up (resume) box, the run's
 * artifacts with downloads (fetched with the session's header, saved from a
 * blob, so no token is put in a link), and preview links of the run's ports.
 */
import { useEffect, useState, type FormEvent } from "react";
import type { ArtifactList, OpenRunnerClient, PreviewLinkResponse, RunView } from "openrunner/client";
import { describeError } from "../errors.ts";
import { formatCount, formatTime } from "../format.ts";
import { navigate } from "../router.tsx";

/** A follow-up prompt: a new run resuming this run's agent session (`metadata.resume`). */
export function ResumeBox({ client, run }: { client: OpenRunnerClient; run: RunView }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const acp = typeof run.metadata.acp_agent === "string" ? { acp_agent: run.metadata.acp_agent } : {};
      const { run_id } = await client.resumeRun(run.id, { input: { text }, metadata: { agent_type: run.agent, ...acp } });
      setText("");
      navigate(`/runs/${encodeURIComponent(run_id)}`);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="panel" onSubmit={submit} aria-labelledby="resume-title" noValidate>
      <h2 id="resume-title">Follow up</h2>
      <label>
        Prompt
        <textarea name="followup" rows={3} value={text} onChange={(e) => setText(e.target.value)} placeholder={run.session_id ? "continue the agent's session…" : "this run has no agent session to resume"} />
      </label>
      {error ? (
        <p role="alert" className="error">
          {error}
        </p>
      ) : null}
      <button type="submit" disabled={busy || text.trim() === ""}>
        Send follow-up
      </button>
    </form>
  );
}

/** The files a run produced (`GET /api/runs/:id/artifacts`), loaded once the run has ended. */
export function Artifacts({ client, runId, ended }: { client: OpenRunnerClient; runId: string; ended: boolean }) {
  const [list, setList] = useState<ArtifactList>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (!ended) return;
    const ac = new AbortController();
    client.listArtifacts(runId, { signal: ac.signal }).then(setList, (err) => !ac.signal.aborted && setError(describeError(err)));
    return () => ac.abort();
  }, [client, runId, ended]);
  const download = async (path: string) => {
    try {
      const res = await client.downloadArtifact(runId, path);
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = path.split("/").at(-1) ?? "artifact";
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(describeError(err));
    }
  };
  if (!list || (list.artifacts.length === 0 && !error)) return null;
  return (
    <section className="panel" aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts</h2>
      {error ? <p className="error">{error}</p> : null}
      <ul className="artifacts">
        {list.artifacts.map((a) => (
          <li key={a.path}>
            <button type="button" className="link" onClick={() => void download(a.path)}>
              {a.path}
            </button>{" "}
            <span className="muted">{formatCount(a.size_bytes)} bytes</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** Preview links (`POST /api/runs/:id/preview-links`): an expiring URL that opens a port of the run in a new tab. */
export function PreviewLinks({ client, runId }: { client: OpenRunnerClient; runId: string }) {
  const [port, setPort] = useState("");
  const [links, setLinks] = useState<Array<PreviewLinkResponse & { port: number }>>([]);
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const n = Number(port);
      const link = await client.createPreviewLink(runId, { port: n });
      setLinks((l) => [{ ...link, port: n }, ...l.filter((x) => x.port !== n)]);
    } catch (err) {
      setError(describeError(err));
    }
  };
  return (
    <form className="panel" onSubmit={submit} aria-labelledby="preview-title" noValidate>
      <h2 id="preview-title">Preview a port</h2>
      <label>
        Port
        <input name="port" inputMode="numeric" value={port} onChange={(e) => setPort(e.target.value)} placeholder="5173" />
      </label>
      {error ? (
        <p role="alert" className="error">
          {error}
        </p>
      ) : null}
      <button type="submit" disabled={port.trim() === ""}>
        Create preview link
      </button>
      <ul>
        {links.map((l) => (
          <li key={l.port}>
            <a href={l.path} target="_blank" rel="noopener noreferrer">
              port {l.port}
            </a>{" "}
            <span className="muted">until {formatTime(l.expires_at)}</span>
          </li>
        ))}
      </ul>
    </form>
  );
}
