/**
 * The new-run form (`POST /api/runs`): the agent (only those `/health/agents`
 * reports available, with their versions; ACP agents as `acp:<name>`), the
 * prompt, working directory or project, isolation, model, timeout and
 * permission policy. The API's own validation errors are shown beside their
 * field: the `code` and the JSON Pointer of each `validation_failed` detail,
 * and codes that name one field (`workspace_busy` at the working directory …).
 */
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import type { AgentHealthView, CreateRunBody } from "openrunner/client";
import { useSession } from "../context.ts";
import { describeError, fieldProblems, type FieldProblem } from "../errors.ts";
import { navigate } from "../router.tsx";

/** Codes without details that belong to one field. */
const CODE_FIELDS: Record<string, string> = {
  unknown_agent: "/metadata/agent_type",
  agent_unavailable: "/metadata/agent_type",
  unknown_acp_agent: "/metadata/acp_agent",
  acp_agent_required: "/metadata/acp_agent",
  cwd_outside_workspace: "/metadata/cwd",
  cwd_not_directory: "/metadata/cwd",
  cwd_in_projects: "/metadata/cwd",
  cwd_outside_project: "/metadata/cwd",
  workspace_busy: "/metadata/cwd",
  isolation_unavailable: "/metadata/isolation",
  limit_exceeded: "/metadata/timeout_secs",
  project_dir_invalid: "/metadata/project_id",
};

/** A labelled field with the API's problem beside it (`aria-describedby`). */
function Field({ id, label, problem, hint, children }: { id: string; label: string; problem: FieldProblem | undefined; hint?: string; children: (describedBy: string | undefined) => ReactNode }) {
  const ids = [hint ? `${id}-hint` : undefined, problem ? `${id}-error` : undefined].filter(Boolean).join(" ") || undefined;
  return (
    <div className={`field${problem ? " invalid" : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children(ids)}
      {hint ? (
        <small id={`${id}-hint`} className="muted">
          {hint}
        </small>
      ) : null}
      {problem ? (
        <small id={`${id}-error`} className="error field-error" role="alert" data-code={problem.code} data-path={problem.path}>
          <code>{problem.code}</code> <code>{problem.path || "/"}</code> {problem.message}
        </small>
      ) : null}
    </div>
  );
}

export function NewRunPage() {
  const { client } = useSession();
  const [agents, setAgents] = useState<AgentHealthView[]>();
  const [agentsError, setAgentsError] = useState<string>();
  const [form, setForm] = useState({ agent: "", prompt: "", cwd: "", project: "", isolation: "", model: "", timeout: "", policy: "" });
  const [problems, setProblems] = useState<Map<string, FieldProblem>>(new Map());
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const ac = new AbortController();
    client.agentsHealth({ signal: ac.signal }).then(
      (list) => {
        const usable = list.filter((a) => a.available && a.agent !== "acp");
        setAgents(usable);
        setForm((f) => (f.agent ? f : { ...f, agent: usable[0]?.agent ?? "" }));
      },
      (err) => !ac.signal.aborted && setAgentsError(describeError(err)),
    );
    return () => ac.abort();
  }, [client]);

  const set = (key: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [key]: e.target.value }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setProblems(new Map());
    const [agentType, acpAgent] = form.agent.startsWith("acp:") ? ["acp", form.agent.slice(4)] : [form.agent, undefined];
    const metadata: CreateRunBody["metadata"] = { agent_type: agentType ?? "" };
    if (acpAgent) metadata.acp_agent = acpAgent;
    if (form.cwd.trim()) metadata.cwd = form.cwd.trim();
    if (form.project.trim()) metadata.project_id = form.project.trim();
    if (form.isolation === "none" || form.isolation === "docker") metadata.isolation = form.isolation;
    if (form.model.trim()) metadata.model = form.model.trim();
    // Sent as typed (a number when it reads as one), so the API, not the page, judges it.
    if (form.timeout.trim()) metadata.timeout_secs = (Number.isFinite(Number(form.timeout)) ? Number(form.timeout) : form.timeout) as number;
    if (form.policy === "allow" || form.policy === "deny" || form.policy === "ask") metadata.permission_policy = form.policy;
    try {
      const { run_id } = await client.createRun({ input: { text: form.prompt }, metadata });
      navigate(`/runs/${encodeURIComponent(run_id)}`);
    } catch (err) {
      const p = fieldProblems(err, CODE_FIELDS);
      setProblems(p);
      const placed = [...p.keys()].some((k) => FIELD_PATHS.includes(k));
      if (!placed) setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const problem = (path: string) => problems.get(path) ?? (path === "/metadata/agent_type" ? problems.get("/metadata/acp_agent") : undefined);

  return (
    <section aria-labelledby="new-title">
      <h1 id="new-title">New run</h1>
      <form className="new-run" onSubmit={submit} noValidate>
        <Field id="agent" label="Agent" problem={problem("/metadata/agent_type")}>
          {(d) => (
            <select id="agent" name="agent" value={form.agent} onChange={set("agent")} aria-describedby={d} aria-invalid={!!problem("/metadata/agent_type")}>
              {!agents ? <option value="">loading…</option> : agents.length === 0 ? <option value="">no agent is available</option> : null}
              {agents?.map((a) => (
                <option key={a.agent} value={a.agent}>
                  {a.agent}
                  {a.version ? ` ${a.version}` : ""}
                  {a.tested === false ? " (untested version)" : ""}
                </option>
              ))}
            </select>
          )}
        </Field>
        {agentsError ? <p className="error">Could not list the agents: {agentsError}</p> : null}
        <Field id="prompt" label="Prompt" problem={problems.get("/input/text") ?? problems.get("/input")}>
          {(d) => <textarea id="prompt" name="prompt" rows={6} value={form.prompt} onChange={set("prompt")} aria-describedby={d} aria-invalid={problems.has("/input/text")} />}
        </Field>
        <div className="grid">
          <Field id="cwd" label="Working directory" hint="inside your workspace; empty: a new folder" problem={problem("/metadata/cwd")}>
            {(d) => <input id="cwd" name="cwd" value={form.cwd} onChange={set("cwd")} aria-describedby={d} aria-invalid={problems.has("/metadata/cwd")} />}
          </Field>
          <Field id="project" label="Project" hint="a long-lived project container (docker)" problem={problem("/metadata/project_id")}>
            {(d) => <input id="project" name="project" value={form.project} onChange={set("project")} aria-describedby={d} aria-invalid={problems.has("/metadata/project_id")} />}
          </Field>
          <Field id="isolation" label="Isolation" problem={problem("/metadata/isolation")}>
            {(d) => (
              <select id="isolation" name="isolation" value={form.isolation} onChange={set("isolation")} aria-describedby={d}>
                <option value="">server default</option>
                <option value="none">none (host)</option>
                <option value="docker">docker</option>
              </select>
            )}
          </Field>
          <Field id="model" label="Model" problem={problem("/metadata/model")}>
            {(d) => <input id="model" name="model" value={form.model} onChange={set("model")} aria-describedby={d} aria-invalid={problems.has("/metadata/model")} />}
          </Field>
          <Field id="timeout" label="Timeout (seconds)" problem={problem("/metadata/timeout_secs")}>
            {(d) => <input id="timeout" name="timeout" inputMode="numeric" value={form.timeout} onChange={set("timeout")} aria-describedby={d} aria-invalid={problems.has("/metadata/timeout_secs")} />}
          </Field>
          <Field id="policy" label="Permission policy" problem={problem("/metadata/permission_policy")}>
            {(d) => (
              <select id="policy" name="policy" value={form.policy} onChange={set("policy")} aria-describedby={d}>
                <option value="">server default</option>
                <option value="ask">ask me</option>
                <option value="allow">allow</option>
                <option value="deny">deny</option>
              </select>
            )}
          </Field>
        </div>
        {error ? (
          <p role="alert" className="error form-error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy || !form.agent}>
          {busy ? "Starting…" : "Start run"}
        </button>
      </form>
    </section>
  );
}

/** The pointers the form shows beside a field; a problem elsewhere is shown above the button. */
const FIELD_PATHS = ["/metadata/agent_type", "/metadata/acp_agent", "/input/text", "/input", "/metadata/cwd", "/metadata/project_id", "/metadata/isolation", "/metadata/model", "/metadata/timeout_secs", "/metadata/permission_policy"];
