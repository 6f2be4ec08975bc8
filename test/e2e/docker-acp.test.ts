/**
 * End to end: `agent_type: "acp"` runs with `isolation: "docker"` on the real engine. The ACP
 * agent is exec'd inside the run's per-run container with stdin attached; the server speaks
 * ACP over that exec's stdin/stdout, answers fs/* on the host workspace (the agent's
 * `/workspace/…` paths mapped, with the same confinement) and runs terminal/* commands inside
 * the container.
 *
 * Agents:
 * - the scripted fixture agent (`test/fixtures/acp-agent`), bundled with esbuild into one ES
 *   module and put into an image FROM the agent image (`fixture-docker`, `bundle.ts`): the
 *   image has node but not tsx or this checkout's node_modules;
 * - the real `claude-code-acp` from the offline agent image (an npm package copied from
 *   `.agents`), against the scripted model server, reached from the bridge network through a
 *   TCP relay on the bridge's gateway (`acp_agents.claude-code-acp.container_base_url`), as in
 *   docker-agents.test.ts.
 *
 * With no engine reachable these tests FAIL (start one with scripts/ci-docker.sh);
 * OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { buildFixtureAgentImage, dockerFixtureAcpAgents } from "../fixtures/acp-agent/bundle.ts";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { bridgeGateway, connectDocker, inProbe, startRelay } from "../helpers/docker.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, createRun, describeEvents, type Ev } from "../helpers/events.ts";
import { runProcesses, waitFor } from "../helpers/processes.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
const FIXTURE_IMAGE = "openrunner-agent:test-acp-fixture";
const NETWORK = "bridge";
const PROBE_INSTANCE = "test-docker-acp-probe";
const PROBE = { image: IMAGE, network: NETWORK, instance: PROBE_INSTANCE };
const probe = (client: ContainerClient, argv: string[], image = IMAGE) => inProbe(client, argv, { ...PROBE, image });
const T = { timeout: 240_000 };
if (SKIP) console.warn("# docker ACP e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

const dump = (evs: Ev[]) => describeEvents(evs);
/** Event types without `log`, consecutive duplicates (streamed deltas) collapsed. */
const shape = (evs: Ev[]) => evs.map((e) => e.type).filter((t) => t !== "log").filter((t, i, all) => t !== all[i - 1]);

describe("ACP agents inside containers", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let model: ModelServer;
  let relay: { url: string; close(): Promise<void> };
  let s: TestServer;
  let token: string;
  let instance: string;
  let confDir: string;
  const outside = mkdtempSync(path.join(os.tmpdir(), "docker-acp-outside-"));

  before(async () => {
    client = await connectDocker();
    // The image must carry claude-code-acp (an image built before it was added is rebuilt).
    const hasAcp = (await client.imageInfo(IMAGE)) && (await probe(client, ["sh", "-c", "command -v claude-code-acp"]).catch(() => ({ exitCode: 1, stdout: "" }))).exitCode === 0;
    if (!hasAcp) await buildAgentImage({ client, offline: true, tag: IMAGE });
    await buildFixtureAgentImage(client, IMAGE, FIXTURE_IMAGE);
    const gateway = await bridgeGateway(client, PROBE);
    model = await startModelServer();
    relay = await startRelay(gateway, Number(new URL(model.url).port));

    confDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-docker-acp-"));
    const conf = path.join(confDir, "openrunner.yaml");
    const config = {
      docker: { image: IMAGE, network: NETWORK },
      acp_agents: {
        ...dockerFixtureAcpAgents(FIXTURE_IMAGE),
        "missing-in-image": { command: "no-such-acp-agent", vendor: "none" },
        "claude-code-acp": { base_url: model.url, container_base_url: relay.url, api_key: "sk-test", model: "claude-sonnet-4-5" },
      },
    };
    writeFileSync(conf, JSON.stringify(config));
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: conf, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    token = await s.login();
    instance = readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();
  });

  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
    await relay?.close();
    await model?.close();
    if (confDir) rmSync(confDir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
    if (client) for (const id of [instance, PROBE_INSTANCE].filter(Boolean)) for (const c of await client.list({ [LABEL.instance]: id }).catch(() => [])) await client.get(c.id).remove();
  });

  const start = (acpAgent: string, text: string, metadata: Record<string, unknown> = {}) =>
    createRun(s, token, text, { agent_type: "acp", acp_agent: acpAgent, isolation: "docker", timeout_secs: 180, ...metadata });
  const events = (runId: string) => allEvents(s, token, runId, 200_000);
  const fixture = (steps: unknown[]) => JSON.stringify({ steps });
  const said = (evs: Ev[]) => evs.filter((e) => e.type === "message").map((e) => e.data.text).join("");
  const runRow = async (id: string) => (await (await s.api(`/api/runs/${id}`, { token })).json()) as Record<string, any>;

  test("the fixture agent in a per-run container: fs/write lands in the host workspace, terminal/* runs in the container", T, async () => {
    const content = "written through fs/write_text_file\n";
    const id = await start(
      "fixture-docker",
      fixture([
        { session: true },
        { write: { path: "/workspace/sub/note.txt", content } },
        { read: { path: "/workspace/sub/note.txt" } },
        { terminal: { command: "sh", args: ["-c", "id -u; hostname; pwd; cat sub/note.txt; echo $OPENRUNNER_RUN_ID"] } },
        { terminal: { command: "pwd", cwd: "/workspace/sub" } },
        { chunks: ["all ", "done"] },
      ]),
      { cwd: "acp-in-docker" },
    );
    const evs = await events(id);
    const d = dump(evs);
    assert.deepEqual(evs.map((e) => e.id), evs.map((_, i) => i + 1));
    assert.deepEqual(shape(evs), ["run.queued", "container.created", "container.started", "run.started", "agent.session", "message.delta", "message", "container.stopped", "container.removed", "run.completed"], d);
    const started = evs.find((e) => e.type === "run.started")!;
    const containerId = started.data.container_id as string;
    assert.match(containerId, /^[0-9a-f]{64}$/, d);
    assert.equal(started.data.pid, undefined, "no host pid for a containerized agent");
    assert.equal(started.data.raw.image, FIXTURE_IMAGE);
    for (const t of ["container.created", "container.started", "container.stopped", "container.removed"]) assert.equal(evs.find((e) => e.type === t)!.data.container_id, containerId, t);
    const text = said(evs);
    assert.ok(text.startsWith("session cwd=/workspace mcp=demo-mcp"), `session/new got the container's workspace\n${text}`);
    assert.ok(text.includes("write ok /workspace/sub/note.txt\n"), text);
    assert.ok(text.includes(`read /workspace/sub/note.txt: ${content}`), text);
    const term = /terminal exit=0 signal=null truncated=false output=("(?:[^"\\]|\\.)*")/.exec(text);
    assert.ok(term, `the terminal ran\n${text}`);
    const [uid, hostname, pwd, note, marker] = (JSON.parse(term[1]!) as string).split("\n");
    assert.equal(uid, "1000", "the command ran as the container user, not on the host");
    assert.equal(hostname, containerId.slice(0, 12), "the command ran in the run's container");
    assert.equal(pwd, "/workspace");
    assert.equal(`${note}\n`, content, "the host write is visible in the container");
    assert.equal(marker, id, "terminals carry the run's OPENRUNNER_RUN_ID");
    assert.ok(text.includes('terminal exit=0 signal=null truncated=false output="/workspace/sub\\n"'), `terminal cwd is a container path\n${text}`);
    assert.equal(evs.at(-1)!.data.result, text, "the result is the turn's message");
    assert.ok(text.endsWith("all done"), text);

    const run = await runRow(id);
    assert.equal(run.metadata.isolation, "docker");
    const file = path.join(run.cwd, "sub", "note.txt");
    assert.equal(readFileSync(file, "utf8"), content, "the file written at /workspace/sub/note.txt is in the host workspace");
    if (process.getuid?.() === 0) assert.equal(statSync(file).uid, 1000, "handed to the container user");
    const write = evs.find((e) => e.type === "log" && e.data.raw?.method === "fs/write_text_file");
    assert.deepEqual([write?.data.raw.path, write?.data.raw.requested], [file, "/workspace/sub/note.txt"], d);
    assert.deepEqual(await client.list({ [LABEL.runId]: id }), [], "the per-run container is removed");
    assert.deepEqual(runProcesses(id), [], "no process of the run is left");
  });

  test("fs requests for paths outside /workspace are refused (also through a symlink made in the container)", T, async () => {
    writeFileSync(path.join(outside, "secret.txt"), "host secret\n");
    const id = await start(
      "fixture-docker",
      fixture([
        { write: { path: "/etc/evil.txt", content: "x" } },
        { write: { path: "/workspace/../tmp/evil.txt", content: "x" } },
        { read: { path: "/home/agent/.profile" } },
        { read: { path: path.join(outside, "secret.txt") } },
        // A link made in the container: absolute targets mean the container's file system there, the host's here.
        { terminal: { command: "sh", args: ["-c", `ln -s / /workspace/root-link && ln -s ${outside} /workspace/out-link && echo linked`] } },
        { read: { path: "/workspace/root-link/etc/hostname" } },
        { read: { path: "/workspace/out-link/secret.txt" } },
        { write: { path: "/workspace/out-link/planted.txt", content: "x" } },
        { terminal: { command: "pwd", cwd: "/" } },
        { say: "end" },
      ]),
      { cwd: "acp-refused" },
    );
    const evs = await events(id);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.completed", d);
    const lines = said(evs).split("\n");
    const errors = lines.filter((l) => /^(write|read|terminal) error/.test(l));
    assert.equal(errors.length, 8, `every outside request is refused\n${lines.join("\n")}`);
    for (const e of errors) assert.match(e, /-32602: .*(outside the run's workspace|symlink)/, e);
    assert.ok(lines.some((l) => l.includes('output="linked\\n"')), lines.join("\n"));
    const run = await runRow(id);
    assert.ok(!lines.some((l) => l.includes(run.cwd)), `the agent is not told where the workspace is on the host\n${lines.join("\n")}`);
    const refusals = evs.filter((e) => e.type === "log" && /^acp: (fs\/\w+|terminal\/create) refused/.test(e.data.text));
    assert.equal(refusals.length, 8, d);
    assert.equal(existsSync(path.join(outside, "planted.txt")), false, "nothing was written outside through the link");
    assert.equal(existsSync("/etc/evil.txt"), false);
    assert.deepEqual(await client.list({ [LABEL.runId]: id }), []);
  });

  test("metadata.resume of a containerized run (isolation not repeated): session/load in a new container finds the session in the run's home", T, async () => {
    const first = await start("fixture-docker", fixture([{ say: "FIRST-TURN" }]), { cwd: "acp-resume" });
    assert.equal((await events(first)).at(-1)!.type, "run.completed");
    // The follow-up does not repeat `isolation`: it inherits docker from the earlier run instead of running on the host.
    const second = await start("fixture-docker", fixture([{ history: true }]), { resume: first, isolation: undefined });
    const evs = await events(second);
    assert.equal(evs.at(-1)!.type, "run.completed", dump(evs));
    assert.match(evs.at(-1)!.data.result, /agent=FIRST-TURN/, "the earlier turn was loaded");
    assert.equal(evs.filter((e) => e.type === "message").length, 1, "the replayed history is not re-emitted");
    const [a, b] = await Promise.all([first, second].map(runRow));
    assert.equal(b!.session_id, a!.session_id);
    assert.notEqual(evs.find((e) => e.type === "run.started")!.data.container_id, undefined);
    assert.equal(b!.metadata.isolation, "docker");
  });

  test("an ACP agent missing from the image fails the run with exec_failed; the container is removed before the terminal event", T, async () => {
    const id = await start("missing-in-image", "hello");
    const evs = await events(id);
    const d = dump(evs);
    const last = evs.at(-1)!;
    assert.equal(last.type, "run.failed", d);
    assert.equal(last.data.error.code, "exec_failed", d);
    assert.match(last.data.error.message, /no-such-acp-agent/, d);
    assert.deepEqual(shape(evs).slice(-3), ["container.stopped", "container.removed", "run.failed"], d);
    assert.deepEqual(await client.list({ [LABEL.runId]: id }), []);
  });

  test("cancel mid-turn: session/cancel, then the exec'd agent and its terminals are killed; no container, no process left", T, async () => {
    // The agent ignores the cancel, so the grace period runs out and the process tree in the container is killed.
    const id = await start("fixture-docker", fixture([{ spawn: { command: "sleep", args: ["300"] } }, { say: "waiting" }, { ignore_cancel_ms: 120_000 }]));
    let containerId = "";
    await waitFor(async () => {
      const r = await s.api(`/api/runs/${id}/events`, { token, headers: { Accept: "application/json" } });
      const evs = ((await r.json()) as { events: Ev[] }).events;
      containerId = evs.find((e) => e.type === "run.started")?.data.container_id ?? "";
      return evs.some((e) => e.type === "message.delta" && /waiting/.test(e.data.text));
    }, 60_000, "the agent is mid-turn", 200);
    assert.ok(containerId);
    assert.equal((await client.list({ [LABEL.runId]: id })).length, 1, "the run's container runs");
    await waitFor(() => runProcesses(id).length >= 2, 10_000, "the agent and its terminal run (in the container, seen from the host)", 200);
    const t0 = Date.now();
    assert.equal((await s.api(`/api/runs/${id}/cancel`, { method: "POST", token })).status, 202);
    const evs = await events(id);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.cancelled", d);
    const types = evs.map((e) => e.type);
    assert.ok(types.indexOf("container.removed") > types.indexOf("run.started") && types.indexOf("container.removed") < types.length - 1, d);
    assert.ok(evs.some((e) => e.type === "log" && /session\/cancel received/.test(e.data.text)), `the agent got session/cancel\n${d}`);
    assert.ok(Date.now() - t0 < 30_000, "ended within the grace period plus teardown");
    assert.deepEqual(await client.list({ [LABEL.runId]: id }), [], "no container left");
    await waitFor(() => runProcesses(id).length === 0, 10_000, "no process of the run left", 200);
  });

  test("the real claude-code-acp in a container writes through fs/write_text_file and runs its Bash through terminal/* there", T, async () => {
    model.setScenario({
      turns: [
        { text: "Writing the note.", tool: { name: "mcp__acp__Write", input: { file_path: "/workspace/note.txt", content: "hello from claude-code-acp in docker\n" } } },
        { tool: { name: "mcp__acp__Bash", input: { command: "id -u; hostname; echo ran-$((6*7)) > ran.txt; cat ran.txt", description: "Show who and where", timeout: 60_000 } } },
        { text: "ACP-DOCKER-DONE" },
      ],
    });
    const since = model.requests.length;
    const id = await start("claude-code-acp", "Write note.txt, then run the command.", { permission_policy: "allow", cwd: "cc-docker" });
    const evs = await events(id);
    const d = dump(evs);
    assert.equal(evs.at(-1)!.type, "run.completed", d);
    assert.equal(evs.at(-1)!.data.result, "ACP-DOCKER-DONE");
    const containerId = evs.find((e) => e.type === "run.started")!.data.container_id as string;
    assert.ok(containerId, d);
    assert.ok(model.requests.length > since, "the agent reached the model server through the bridge");
    const run = await runRow(id);
    assert.equal(readFileSync(path.join(run.cwd, "note.txt"), "utf8"), "hello from claude-code-acp in docker\n");
    assert.equal(readFileSync(path.join(run.cwd, "ran.txt"), "utf8"), "ran-42\n");
    const calls = evs.filter((e) => e.type === "tool.call");
    assert.deepEqual(calls.map((c) => c.data.raw?._meta?.claudeCode?.toolName), ["mcp__acp__Write", "mcp__acp__Bash"], d);
    assert.ok(evs.some((e) => e.type === "log" && e.data.raw?.method === "fs/write_text_file" && e.data.raw.requested === "/workspace/note.txt"), `the write went through the client\n${d}`);
    assert.ok(evs.some((e) => e.type === "log" && /^acp: terminal term_.*in the container/.test(e.data.text)), `the command went through terminal/create\n${d}`);
    const bash = evs.find((e) => e.type === "tool.result" && e.data.call_id === calls[1]!.data.call_id)!;
    const out = String(bash.data.output);
    assert.match(out, /(^|\n)1000\n/, `the command ran as the container user\n${out}`);
    assert.ok(out.includes(containerId.slice(0, 12)), `the command ran in the run's container\n${out}`);
    assert.match(out, /ran-42/);
    assert.deepEqual(await client.list({ [LABEL.runId]: id }), [], "the per-run container is removed");
  });
});
