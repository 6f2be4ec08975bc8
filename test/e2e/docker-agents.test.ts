/**
 * A real agent CLI inside a container: Claude Code (copied into the offline
 * agent image from `.agents/bin`) runs `isolation: "docker"` runs of the real
 * server against the scripted model server, reached through the `bridge`
 * network (`docker.network`) at the address configured as
 * `agents.claude_code.container_base_url`.
 *
 * The scripted model server listens on loopback; a small TCP relay on the
 * bridge's gateway address (found from inside a probe container) forwards to
 * it, so nothing listens on the machine's other interfaces.
 *
 * codex, opencode and Gemini CLI run from an image built with all four CLIs
 * (`agents: ["claude", "codex", "opencode", "gemini"]`: codex and gemini as
 * npm packages run by the image's node, opencode as its single binary), set
 * as `agents.<name>.image`. Their adapters write the CLI's config into the
 * run's home on the host; the home is bind-mounted as HOME in per-run and
 * pooled containers and copied into project containers, so the CLI finds its
 * config, key and base URL, and (mounted) its sessions stay on the host for
 * a resumed run.
 *
 * Covers: the Write tool's file lands in the host workspace, owned by the
 * container user (uid 1000); the model server was reached through the
 * bridge; the events have the same shape as the same scenario run on the
 * host (container.* and log aside); the per-run container is removed;
 * cancel mid-stream ends the run cancelled with no container left; codex,
 * opencode and gemini each complete a file-writing run in a per-run container
 * (event order asserted), codex resumes its session in a second per-run
 * container, codex runs (and resumes) in a project container that stays,
 * and opencode runs in a warm-pool container.
 *
 * With no engine reachable these tests FAIL (start one with
 * scripts/ci-docker.sh); OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { bridgeGateway, connectDocker, inProbe, startRelay } from "../helpers/docker.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { describeEvents, runToEnd, type Ev } from "../helpers/events.ts";
import { readSse } from "../helpers/sse.ts";


const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
/** The offline image with every CLI (codex, opencode, gemini are not in the default image), for `agents.<name>.image`. */
const ALL_IMAGE = "openrunner-agent:test-all-agents";
const ALL_AGENTS = ["claude", "codex", "opencode", "gemini"];
type CliAgent = "codex" | "opencode" | "gemini";
/** Model and base URL path per agent, as in agents.test.ts. */
const SETUP: Record<CliAgent, { model: string; urlSuffix: string; max_retries?: number }> = {
  codex: { model: "gpt-5.5", urlSuffix: "/v1", max_retries: 0 },
  opencode: { model: "fake-model", urlSuffix: "/v1" },
  gemini: { model: "gemini-2.5-flash", urlSuffix: "", max_retries: 0 },
};
const NETWORK = "bridge";
const PROBE_INSTANCE = "test-docker-agents-probe";
const PROBE = { image: IMAGE, network: NETWORK, instance: PROBE_INSTANCE };
const probe = (client: ContainerClient, argv: string[], image = IMAGE) => inProbe(client, argv, { ...PROBE, image });
const T = { timeout: 240_000 };
if (SKIP) console.warn("# docker agent e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");




/** The `agents:` config of the CLIs run from {@link ALL_IMAGE}. */
function cliAgentsConfig(modelUrl: string, relayUrl: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [a, c] of Object.entries(SETUP)) {
    out[a] = {
      base_url: modelUrl + c.urlSuffix,
      container_base_url: relayUrl + c.urlSuffix,
      api_key: "sk-test",
      model: c.model,
      image: ALL_IMAGE,
      ...(c.max_retries === undefined ? {} : { max_retries: c.max_retries }),
    };
  }
  return out;
}

/** Every file below `dir` (relative paths). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)));
}

/** Asserts the run completed with the contract's order of events, in a container; returns run.started. */
function assertContainerSuccess(events: Ev[], finalText: string): Ev {
  const dumped = dump(events);
  const types = events.map((e) => e.type);
  assert.equal(types.at(-1), "run.completed", dumped);
  assert.equal(events.at(-1)!.data.exit_code, 0, dumped);
  const at = (pred: (e: Ev) => boolean, what: string) => {
    const i = events.findIndex(pred);
    assert.ok(i >= 0, `no ${what}\n${dumped}`);
    return i;
  };
  const created = at((e) => e.type === "container.created", "container.created");
  const started = at((e) => e.type === "run.started", "run.started");
  const call = at((e) => e.type === "tool.call", "tool.call");
  const result = at((e) => e.type === "tool.result", "tool.result");
  const message = at((e) => e.type === "message" && String(e.data.text).includes(finalText), `message with ${finalText}`);
  assert.ok(created < started && started < call && call < result && result < message, `order: created ${created}, started ${started}, call ${call}, result ${result}, message ${message}\n${dumped}`);
  const ev = events[started]!;
  assert.ok(ev.data.container_id, "run.started names the container");
  assert.equal(ev.data.container_id, events[created]!.data.container_id, "the run ran in the container created for it");
  const res = events[result]!;
  assert.equal(res.data.call_id, events[call]!.data.call_id, "the result answers the call");
  assert.equal(res.data.is_error, false, dumped);
  return ev;
}

/** Creates the run and reads all its events. */
const runAgent = async (s: TestServer, token: string, agent: string, text: string, metadata: Record<string, unknown>) => (await runToEnd(s, token, text, { agent_type: agent, ...metadata }, 200_000)).evs;
const runClaude = (s: TestServer, token: string, text: string, metadata: Record<string, unknown>) => runAgent(s, token, "claude_code", text, metadata);

const dump = (events: Ev[]) => describeEvents(events);
/** Event types without the container lifecycle, consecutive duplicates (streamed deltas, logs) collapsed. */
const shape = (events: Ev[]) => events.map((e) => e.type).filter((t, i, all) => !t.startsWith("container.") && t !== "log" && t !== all[i - 1]);

describe("agent CLIs inside containers", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let model: ModelServer;
  let relay: { url: string; close(): Promise<void> };

  let s: TestServer;
  let token: string;
  let instance: string;
  let confDir: string;

  before(async () => {
    client = await connectDocker();
    // The image must carry the CLI (an image built before the CLIs were added is rebuilt).
    const hasClaude = (await client.imageInfo(IMAGE)) && (await probe(client, ["claude", "--version"]).catch(() => ({ exitCode: 1, stdout: "" }))).exitCode === 0;
    if (!hasClaude) await buildAgentImage({ client, offline: true, tag: IMAGE });
    const probeAll = ["sh", "-c", "codex --version && opencode --version && gemini --version"];
    const hasAll = (await client.imageInfo(ALL_IMAGE)) && (await probe(client, probeAll, ALL_IMAGE).catch(() => ({ exitCode: 1, stdout: "" }))).exitCode === 0;
    if (!hasAll) await buildAgentImage({ client, offline: true, tag: ALL_IMAGE, agents: ALL_AGENTS });
    const gateway = await bridgeGateway(client, PROBE);
    model = await startModelServer();
    relay = await startRelay(gateway, Number(new URL(model.url).port));

    confDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-docker-agents-"));
    const conf = path.join(confDir, "openrunner.yaml");
    const config = {
      docker: { image: IMAGE, network: NETWORK },
      agents: {
        claude_code: { base_url: model.url, container_base_url: relay.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 },
        ...cliAgentsConfig(model.url, relay.url),
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
    if (client) for (const id of [instance, PROBE_INSTANCE].filter(Boolean)) for (const c of await client.list({ [LABEL.instance]: id }).catch(() => [])) await client.get(c.id).remove();
  });

  test("claude_code in a container: its Write tool creates the file in the host workspace; same event shape as on the host", T, async () => {
    const content = "written inside the container\n";
    // In the container the workspace is /workspace.
    model.setScenario({ turns: [{ text: "Writing note.txt.", tool: { write: { path: "/workspace/note.txt", content } } }, { text: "DOCKER-DONE: wrote note.txt." }] });
    const since = model.requests.length;
    const events = await runClaude(s, token, "Create note.txt with the given content.", { isolation: "docker", timeout_secs: 180 });
    const types = events.map((e) => e.type);
    assert.equal(types.at(-1), "run.completed", dump(events));
    for (const t of ["container.created", "container.started", "run.started", "agent.session", "tool.call", "tool.result", "message", "usage", "container.stopped", "container.removed"])
      assert.ok(types.includes(t), `no ${t}\n${dump(events)}`);
    const started = events.find((e) => e.type === "run.started")!;
    assert.ok(started.data.container_id, "run.started names the container");
    const run = (await (await s.api(`/api/runs/${started.run_id}`, { token })).json()) as Record<string, any>;
    assert.equal(run.metadata.isolation, "docker");
    const file = path.join(run.cwd, "note.txt");
    assert.equal(readFileSync(file, "utf8"), content, "the file written in /workspace is in the host workspace");
    assert.equal(statSync(file).uid, 1000, "written by the container user");
    assert.ok(model.requests.length > since, "the CLI reached the model server through the bridge");
    assert.deepEqual(await client.list({ [LABEL.runId]: run.id }), [], "the per-run container is removed");

    // The same scenario on the host: the same event shape (container.* aside).
    model.setScenario({ turns: [{ text: "Writing note.txt.", tool: { write: { path: path.join(path.dirname(run.cwd), "host-run", "note.txt"), content } } }, { text: "HOST-DONE: wrote note.txt." }] });
    const host = await runClaude(s, token, "Create note.txt with the given content.", { isolation: "none", cwd: "host-run", timeout_secs: 180 });
    assert.equal(host.at(-1)!.type, "run.completed", dump(host));
    assert.deepEqual(shape(events), shape(host), `docker:\n${dump(events)}\nhost:\n${dump(host)}`);
  });

  test("cancel mid-stream ends a containerized claude_code run cancelled; its container is gone", T, async () => {
    model.setScenario({ turns: [{ slow: { text: Array.from({ length: 200 }, (_, i) => `word${i}`).join(" "), chunk_ms: 200 } }] });
    const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "Say many words." }, metadata: { agent_type: "claude_code", isolation: "docker", timeout_secs: 180 } } });
    assert.equal(res.status, 201, await res.clone().text());
    const runId = ((await res.json()) as { run_id: string }).run_id;
    // Wait for streamed text, then cancel.
    await readSse(`${s.url}/api/runs/${runId}/events`, { token, timeoutMs: 120_000, stopAfter: (m) => (JSON.parse(m.data) as Ev).type === "message.delta" });
    assert.equal((await s.api(`/api/runs/${runId}/cancel`, { method: "POST", token })).status, 202);
    const out = await readSse(`${s.url}/api/runs/${runId}/events`, { token, timeoutMs: 60_000 });
    const events = out.messages.map((m) => JSON.parse(m.data) as Ev);
    const types = events.map((e) => e.type);
    assert.equal(types.at(-1), "run.cancelled", dump(events));
    assert.ok(types.includes("container.removed"), dump(events));
    assert.deepEqual(await client.list({ [LABEL.runId]: runId }), [], "no container left");
  });

  test("npm-package CLIs (codex, Gemini CLI) and a single-binary one (opencode) run in the offline image as the non-root user", T, async () => {
    const script = 'set -e; id -u; for c in codex opencode gemini; do printf "%s: " "$c"; "$c" --version 2>&1; done';
    const r = await probe(client, ["sh", "-c", script], ALL_IMAGE);
    assert.equal(r.exitCode, 0, r.stdout);
    assert.match(r.stdout, /^1000\n/, r.stdout);
    for (const c of ["codex", "opencode", "gemini"]) assert.match(r.stdout, new RegExp(`^${c}: .*\\d+\\.\\d+\\.\\d+`, "m"), r.stdout);
  });

  for (const agent of Object.keys(SETUP) as CliAgent[]) {
    test(`${agent} in a per-run container: reads its config from the mounted home, writes the file into the host workspace`, T, async () => {
      const file = `note-${agent}.txt`;
      const content = `written by ${agent} inside the container\n`;
      const finalText = `DOCKER-DONE ${agent}`;
      model.setScenario({ turns: [{ text: `Writing ${file}.`, tool: { write: { path: `/workspace/${file}`, content } } }, { text: `${finalText}: wrote ${file}.` }] });
      const since = model.requests.length;
      const events = await runAgent(s, token, agent, `Create ${file} with the given content.`, { isolation: "docker", timeout_secs: 180 });
      const started = assertContainerSuccess(events, finalText);
      const run = (await (await s.api(`/api/runs/${started.run_id}`, { token })).json()) as Record<string, any>;
      const written = path.join(run.cwd, file);
      assert.equal(readFileSync(written, "utf8"), content, "the file written in /workspace is in the host workspace");
      assert.equal(statSync(written).uid, 1000, "written by the container user");
      assert.ok(model.requests.slice(since).some((r) => r.kind === "main"), "the CLI reached the model server at container_base_url");
      // What the CLI wrote into HOME (beyond the adapter's config) is on the host: the home was mounted.
      const home = path.join(s.dataDir, "homes", run.id);
      const files = filesUnder(home);
      const adapterWrote = new Set([".codex/config.toml", ".config/opencode/opencode.json", ".gemini/settings.json", `prompt-${run.id}.txt`]);
      assert.ok(files.some((f) => !adapterWrote.has(f)), `the CLI wrote state into the mounted home: ${files.join(", ")}`);
      assert.deepEqual(await client.list({ [LABEL.runId]: run.id }), [], "the per-run container is removed");
    });
  }

  test("codex resumes its session in a new per-run container (the session lives in the mounted home)", T, async () => {
    model.setScenario({ turns: [{ text: "FIRST-DOCKER-TURN codex." }] });
    const first = await runAgent(s, token, "codex", "Say the first thing.", { isolation: "docker", timeout_secs: 180 });
    assert.equal(first.at(-1)!.type, "run.completed", dump(first));
    const firstId = first[0]!.run_id;
    model.setScenario({ turns: [{ text: "SECOND-DOCKER-TURN codex." }] });
    const since = model.requests.length;
    const second = await runAgent(s, token, "codex", "What did you say before?", { isolation: "docker", resume: firstId, timeout_secs: 180 });
    assert.equal(second.at(-1)!.type, "run.completed", dump(second));
    const a = (await (await s.api(`/api/runs/${firstId}`, { token })).json()) as Record<string, any>;
    const b = (await (await s.api(`/api/runs/${second[0]!.run_id}`, { token })).json()) as Record<string, any>;
    assert.ok(a.session_id, "the first run reported its session");
    assert.equal(b.session_id, a.session_id, "same codex session");
    const main = model.requests.slice(since).find((r) => r.kind === "main");
    assert.ok(main && JSON.stringify(main.body).includes("FIRST-DOCKER-TURN"), "the resumed request carries the first turn");
  });

  test("codex in a project container: its home is copied in, the container stays, a resumed run finds the session", T, async () => {
    const project = `agents-${Date.now().toString(36)}`;
    const file = "project-note.txt";
    const content = "written by codex in the project container\n";
    model.setScenario({ turns: [{ text: `Writing ${file}.`, tool: { write: { path: `/workspace/${file}`, content } } }, { text: "PROJECT-DONE codex." }] });
    const events = await runAgent(s, token, "codex", `Create ${file}.`, { project_id: project, timeout_secs: 180 });
    const started = assertContainerSuccess(events, "PROJECT-DONE");
    const created = events.find((e) => e.type === "container.created")!;
    assert.equal(created.data.project_id, project);
    assert.ok(!events.some((e) => e.type === "container.removed"), "the project container is not removed");
    const run = (await (await s.api(`/api/runs/${started.run_id}`, { token })).json()) as Record<string, any>;
    assert.equal(readFileSync(path.join(run.cwd, file), "utf8"), content, "the file is in the host project directory");
    const containers = await client.list({ [LABEL.projectId]: project });
    assert.equal(containers.length, 1);
    assert.equal(containers[0]!.state, "running", "the project container stays");
    const cid = containers[0]!.id;
    assert.equal(cid, started.data.container_id);
    const inside = await client.get(cid).execCollect({ argv: ["sh", "-c", `cat runs/${run.id}/.codex/config.toml; ls runs/${run.id}/.codex`], cwd: "/home/agent" });
    assert.equal(inside.exitCode, 0, inside.stderr);
    assert.match(inside.stdout, /model_provider = "openrunner"/, "the adapter's config was copied into the run's HOME in the container");
    assert.match(inside.stdout, /sessions/, "codex kept its session there");

    model.setScenario({ turns: [{ text: "PROJECT-RESUMED codex." }] });
    const since = model.requests.length;
    const again = await runAgent(s, token, "codex", "What did you write?", { project_id: project, resume: run.id, timeout_secs: 180 });
    assert.equal(again.at(-1)!.type, "run.completed", dump(again));
    assert.equal(again.find((e) => e.type === "run.started")!.data.container_id, cid, "the same project container");
    const main = model.requests.slice(since).find((r) => r.kind === "main");
    assert.ok(main && JSON.stringify(main.body).includes("PROJECT-DONE"), "the resumed run carries the earlier turn");
  });

  test("opencode in a warm-pool container: the pooled home is renamed onto the run's home", T, async () => {
    const conf = path.join(confDir, "pool.yaml");
    writeFileSync(conf, JSON.stringify({ docker: { image: ALL_IMAGE, network: NETWORK, warm_pool: 1 }, agents: cliAgentsConfig(model.url, relay.url) }));
    const p = await spawnServer({ env: { OPENRUNNER_CONFIG: conf, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    const pInstance = readFileSync(path.join(p.dataDir, "instance-id"), "utf8").trim();
    try {
      const pToken = await p.login();
      // Wait for the warm container.
      const deadline = Date.now() + 60_000;
      while ((await client.list({ [LABEL.instance]: pInstance, [LABEL.kind]: "pool" })).filter((c) => c.state === "running").length < 1) {
        assert.ok(Date.now() < deadline, "no warm container within 60 s");
        await new Promise((r) => setTimeout(r, 250));
      }
      const file = "pool-note.txt";
      model.setScenario({ turns: [{ text: `Writing ${file}.`, tool: { write: { path: `/workspace/${file}`, content: "pooled\n" } } }, { text: "POOL-DONE opencode." }] });
      const events = await runAgent(p, pToken, "opencode", `Create ${file}.`, { isolation: "docker", timeout_secs: 180 });
      assertContainerSuccess(events, "POOL-DONE");
      assert.equal(events.find((e) => e.type === "container.created")!.data.pool, true, dump(events));
      const run = (await (await p.api(`/api/runs/${events[0]!.run_id}`, { token: pToken })).json()) as Record<string, any>;
      assert.equal(readFileSync(path.join(run.cwd, file), "utf8"), "pooled\n");
      const home = path.join(p.dataDir, "homes", run.id);
      assert.ok(filesUnder(home).some((f) => f.startsWith(".local/share/opencode/")), `opencode's data is in the run's home: ${filesUnder(home).join(", ")}`);
    } finally {
      await p.stop();
      p.cleanup();
      for (const c of await client.list({ [LABEL.instance]: pInstance }).catch(() => [])) await client.get(c.id).remove();
    }
  });
});
