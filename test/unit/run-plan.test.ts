/**
 * The plan of a new run (`src/run/plan.ts`): the decisions and every refusal of
 * `planRun`, `planAgent` and `planContainer`, pure functions of the request,
 * the caller, the configuration and a snapshot of the manager's state (no I/O:
 * the workspaces root does not exist; no mutation: the inputs are frozen).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/load.ts";
import { AppError, ConflictError, ForbiddenError, NotFoundError, ShuttingDownError, TooManyRequestsError, UnauthorizedError, ValidationError } from "../../src/errors.ts";
import type { CreateRunBody } from "../../src/protocol/requests.ts";
import { planAgent, planContainer, planRun, type Caller, type PlanConfig, type PlanSnapshot } from "../../src/run/plan.ts";
import type { RunRow } from "../../src/store/types.ts";

const ROOT = "/nonexistent/workspaces";
const base = loadConfig({ env: {}, flags: {}, configPath: "/dev/null" });
const config: PlanConfig = { ...base, docker: { ...base.docker, task_images: ["batch:1"] }, agents: { codex: { image: "codex-img:1", container_command: "codex" } } };
const user: Caller = { id: "u1", username: "ann", role: "user" };
const admin: Caller = { id: "a1", username: "root", role: "admin" };

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

function body(metadata: Partial<CreateRunBody["metadata"]> = {}, input: CreateRunBody["input"] = { text: "hi" }): CreateRunBody {
  return deepFreeze({ input, metadata: { agent_type: "claude-code", ...metadata } as CreateRunBody["metadata"] });
}

function snap(over: Partial<PlanSnapshot> = {}): PlanSnapshot {
  return deepFreeze({ caller: user, runId: "run_NEW", config, workspacesRoot: ROOT, engine: { projects: true }, admitting: true, blocked: false, queued: 0, resumed: undefined, ...over });
}

function earlier(over: Partial<RunRow> = {}): RunRow {
  return {
    id: "run_OLD",
    user_id: "u1",
    agent: "claude-code",
    status: "completed",
    input: { text: "before" },
    metadata: { agent_type: "claude-code", isolation: "docker", home_of: "run_FIRST" },
    cwd: `${ROOT}/u1/run_OLD`,
    created_at: "2026-01-01T00:00:00.000Z",
    started_at: null,
    ended_at: null,
    result: null,
    error: null,
    exit_code: null,
    usage: null,
    session_id: "sess-1",
    last_event_id: 3,
    ...over,
  };
}

/** Asserts that `fn` throws an AppError of class `cls` with `code` (and `message` when given). */
function refuses(fn: () => unknown, cls: abstract new (...a: never[]) => AppError, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal((err as AppError).code, code);
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

test("a plain host run: defaults for timeout, workspace, home, permissions; nothing for containers", () => {
  const plan = planRun(body(), snap());
  assert.equal(plan.runId, "run_NEW");
  assert.equal(plan.userId, "u1");
  assert.equal(plan.agentType, "claude-code");
  assert.equal(plan.timeoutSecs, config.default_timeout_secs);
  assert.equal(plan.limits, null);
  assert.equal(plan.projectId, undefined);
  assert.equal(plan.resumed, undefined);
  assert.equal(plan.homeKey, "run_NEW");
  assert.deepEqual(plan.workspace, { kind: "user", root: `${ROOT}/u1` });
  assert.equal(plan.guardProjectsFolder, false);
  assert.deepEqual(plan.permissions, { policy: config.permissions!.default_policy, timeoutMs: config.permissions!.timeout_secs * 1000, timeoutDecision: config.permissions!.timeout_decision });
  assert.deepEqual(plan.rowMetadata, { agent_type: "claude-code", timeout_secs: config.default_timeout_secs, home_of: "run_NEW", isolation: "none" });
  assert.equal(planContainer(plan, {}, "claude-code", undefined, config), null);
});

test("the request's cwd, timeout and permission settings are taken; a named cwd is guarded against projects/", () => {
  const plan = planRun(body({ cwd: "repo", timeout_secs: 60, permission_policy: "allow", permission_timeout_secs: 9 }), snap());
  assert.deepEqual(plan.workspace, { kind: "user", root: `${ROOT}/u1`, cwd: "repo" });
  assert.equal(plan.guardProjectsFolder, true);
  assert.equal(plan.timeoutSecs, 60);
  assert.deepEqual(plan.permissions, { policy: "allow", timeoutMs: 9000, timeoutDecision: config.permissions!.timeout_decision });
  assert.equal(plan.rowMetadata.timeout_secs, 60);
});

test("docker isolation: default limits from the settings; the image is the agent's, else docker.image; the command from agents.<name>", () => {
  const plan = planRun(body({ agent_type: "codex", isolation: "docker" }), snap());
  const d = config.docker!;
  assert.deepEqual(plan.limits, { memoryBytes: d.memory_mb * 1024 * 1024, nanoCpus: Math.round(d.cpus * 1e9), pidsLimit: d.pids_limit });
  assert.equal(plan.rowMetadata.isolation, "docker");
  assert.deepEqual(planContainer(plan, {}, "codex", undefined, config), { image: "codex-img:1", command: "codex", limits: plan.limits });
  assert.equal(planContainer(plan, {}, "codex", "acp-img:2", config)!.image, "acp-img:2", "an ACP agent's image comes before agents.<name>.image");
  assert.equal(planContainer(plan, {}, "other", undefined, config)!.image, d.image);
});

test("docker.default_isolation docker makes a run without isolation a docker run", () => {
  const plan = planRun(body(), snap({ config: { ...config, docker: { ...config.docker!, default_isolation: "docker" } } }));
  assert.notEqual(plan.limits, null);
});

test("a project run implies docker, works in the project folder and asks for the project's container", () => {
  const plan = planRun(body({ project_id: "site", cwd: "web" }), snap());
  assert.equal(plan.projectId, "site");
  assert.notEqual(plan.limits, null);
  assert.deepEqual(plan.workspace, { kind: "project", projectId: "site", cwd: "web" });
  assert.equal(plan.guardProjectsFolder, false);
  assert.deepEqual(planContainer(plan, {}, "claude-code", undefined, config)!.project, { projectId: "site", limitsAsked: false });
  const asked = planRun(body({ project_id: "site", memory_mb: 512 }), snap());
  assert.deepEqual(planContainer(asked, {}, "claude-code", undefined, config)!.project, { projectId: "site", limitsAsked: true });
});

test("a resumed run keeps the earlier run's cwd, home, isolation and session", () => {
  const old = earlier({ metadata: { agent_type: "claude-code", isolation: "docker", project_id: "site", home_of: "run_FIRST" } });
  const plan = planRun(body({ resume: "run_OLD" }), snap({ resumed: old }));
  assert.equal(plan.resumed, old);
  assert.equal(plan.homeKey, "run_FIRST");
  assert.deepEqual(plan.workspace, { kind: "resumed", cwd: old.cwd });
  assert.equal(plan.metadata.isolation, "docker");
  assert.equal(plan.projectId, "site");
  assert.notEqual(plan.limits, null);
  assert.equal(planRun(body({ resume: "run_OLD" }), snap({ resumed: earlier({ metadata: {} }) })).homeKey, "run_OLD", "no home_of: the earlier run's id");
  assert.equal(planRun(body({ resume: "run_OLD", isolation: "none" }), snap({ resumed: earlier() })).limits, null, "the request's isolation wins");
});

test("admission refusals: shutting down, a user being deleted, the queue cap (in that order)", () => {
  refuses(() => planRun(body(), snap({ admitting: false, blocked: true })), ShuttingDownError, "shutting_down");
  refuses(() => planRun(body(), snap({ blocked: true, queued: 1e6 })), UnauthorizedError, "unauthorized");
  assert.throws(
    () => planRun(body(), snap({ queued: config.max_queued_runs_per_user })),
    (e: unknown) => e instanceof TooManyRequestsError && e.retryAfterS === 5,
  );
  planRun(body(), snap({ queued: config.max_queued_runs_per_user - 1 }));
});

test("resume refusals: unknown or foreign run (404), not ended (409 run_active), another agent, no session", () => {
  refuses(() => planRun(body({ resume: "run_X" }), snap({ resumed: null })), NotFoundError, "not_found");
  refuses(() => planRun(body({ resume: "run_OLD" }), snap({ resumed: earlier({ status: "running" }) })), ConflictError, "run_active", /run run_OLD is still running; resume it once it has ended/);
  refuses(() => planRun(body({ resume: "run_OLD", agent_type: "codex" }), snap({ resumed: earlier() })), ValidationError, "resume_agent_mismatch", /used agent claude-code, not codex/);
  refuses(() => planRun(body({ resume: "run_OLD" }), snap({ resumed: earlier({ session_id: null }) })), ValidationError, "resume_no_session");
});

test("extra_args are for admins only", () => {
  refuses(() => planRun(body({ extra_args: ["--x"] }), snap()), ForbiddenError, "forbidden", /admins only/);
  assert.deepEqual(planRun(body({ extra_args: ["--x"] }), snap({ caller: admin })).metadata.extra_args, ["--x"]);
});

test("a timeout over max_timeout_secs is refused", () => {
  refuses(() => planRun(body({ timeout_secs: config.max_timeout_secs + 1 }), snap()), ValidationError, "validation_failed", new RegExp(`at most ${config.max_timeout_secs}`));
  refuses(() => planRun(body(), snap({ config: { ...config, default_timeout_secs: config.max_timeout_secs + 1 } })), ValidationError, "validation_failed");
});

test("container limit refusals: over a maximum, docker not set up, limits on a host run", () => {
  refuses(() => planRun(body({ isolation: "docker", memory_mb: config.docker!.max_memory_mb + 1 }), snap()), ValidationError, "limit_exceeded");
  refuses(() => planRun(body({ isolation: "docker" }), snap({ engine: undefined })), ValidationError, "isolation_unavailable");
  refuses(() => planRun(body({ cpus: 1 }), snap()), ValidationError, "validation_failed", /metadata.cpus needs metadata.isolation "docker"/);
});

test("a project run needs docker isolation and project containers", () => {
  refuses(() => planRun(body({ project_id: "site", isolation: "none" }), snap()), ValidationError, "validation_failed", /project_id needs docker isolation/);
  refuses(() => planRun(body({ project_id: "site" }), snap({ engine: { projects: false } })), ValidationError, "validation_failed", /project_id needs docker isolation/);
  refuses(() => planRun(body({ project_id: "site" }), snap({ engine: undefined })), ValidationError, "isolation_unavailable");
});

test("planAgent: a host shell run is for admins, or users when allow_shell_for_users; docker shell runs for anyone", () => {
  const host = planRun(body({ agent_type: "shell" }), snap());
  refuses(() => planAgent(host, body({ agent_type: "shell" }), "shell", user, config), ForbiddenError, "forbidden", /host shell runs are for admins only/);
  assert.deepEqual(planAgent(host, body({ agent_type: "shell" }), "shell", admin, config), {});
  assert.deepEqual(planAgent(host, body({ agent_type: "shell" }), "shell", user, { ...config, allow_shell_for_users: true }), {});
  const docker = planRun(body({ agent_type: "shell", isolation: "docker" }), snap());
  assert.deepEqual(planAgent(docker, body({ agent_type: "shell", isolation: "docker" }), "shell", user, config), {});
});

test("planAgent: task runs need docker and an allowed image; task-only fields are refused on other runs; the task image is the container's", () => {
  const t = body({ agent_type: "task", isolation: "docker", image: "batch:1" });
  const plan = planRun(t, snap());
  const agent = planAgent(plan, t, "task", user, config);
  assert.equal(agent.task?.image, "batch:1");
  assert.equal(planContainer(plan, agent, "task", undefined, config)!.image, "batch:1");
  const onHost = body({ agent_type: "task", image: "batch:1" });
  refuses(() => planAgent(planRun(onHost, snap()), onHost, "task", user, config), ValidationError, "task_needs_docker");
  const other = body({ agent_type: "task", isolation: "docker", image: "evil:1" });
  refuses(() => planAgent(planRun(other, snap()), other, "task", user, config), ValidationError, "image_not_allowed");
  const notTask = body({ image: "batch:1" });
  refuses(() => planAgent(planRun(notTask, snap()), notTask, "claude-code", user, config), ValidationError, "validation_failed", /metadata.image is for task runs only/);
});
