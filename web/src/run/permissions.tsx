/**
 * The run's open permission requests (`GET /api/runs/:id/permissions`), each
 * with its options as buttons (`POST …/permissions/:request_id`) and the time
 * left before the default decision applies, counting down each second.
 * Reloaded whenever the set of open requests in the event stream changes.
 */
import { useEffect, useState } from "react";
import type { OpenRunnerClient, PendingPermissionView } from "openrunner/client";
import { describeError } from "../errors.ts";
import { formatValue } from "./tool-detail.ts";

/** Seconds as `4:05` (or `1:02:03`). */
function formatLeft(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function Countdown({ deadline }: { deadline: string }) {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const left = Date.parse(deadline) - now;
  return (
    <span className="countdown" role="timer" aria-label="time left to answer">
      {left > 0 ? `${formatLeft(left)} left` : "deadline passed"}
    </span>
  );
}

export function PermissionRequests({ client, runId, openKey }: { client: OpenRunnerClient; runId: string; openKey: string }) {
  const [open, setOpen] = useState<PendingPermissionView[]>([]);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState<string>();

  useEffect(() => {
    if (openKey === "") {
      setOpen([]);
      return;
    }
    const ac = new AbortController();
    client.listPermissions(runId, { signal: ac.signal }).then(setOpen, (err) => !ac.signal.aborted && setError(describeError(err)));
    return () => ac.abort();
  }, [client, runId, openKey]);

  const answer = async (req: PendingPermissionView, optionId: string) => {
    setBusy(req.request_id);
    setError(undefined);
    try {
      await client.answerPermission(runId, req.request_id, optionId);
      setOpen((o) => o.filter((r) => r.request_id !== req.request_id));
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(undefined);
    }
  };

  if (open.length === 0 && !error) return null;
  return (
    <section className="permissions" aria-labelledby="perm-title">
      <h2 id="perm-title">Waiting for your answer</h2>
      {error ? (
        <p role="alert" className="error">
          {error}
        </p>
      ) : null}
      {open.map((req) => (
        <article key={req.request_id} className="permission" data-request-id={req.request_id}>
          <header>
            <strong>{req.name}</strong> <Countdown deadline={req.deadline} />
          </header>
          {req.input !== undefined && req.input !== null ? <pre>{formatValue(req.input)}</pre> : null}
          <div className="options" role="group" aria-label={`answer ${req.name}`}>
            {req.options.map((o) => (
              <button key={o.option_id} type="button" className={o.kind.startsWith("allow") ? "allow" : "reject"} disabled={busy === req.request_id} onClick={() => void answer(req, o.option_id)}>
                {o.name}
              </button>
            ))}
          </div>
        </article>
      ))}
    </section>
  );
}
