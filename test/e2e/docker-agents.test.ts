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
 * Also: Gemini CLI (an npm package, copied whole) works in an image built
 * with `agents: ["claude", "gemini"]` (runs of it in containers are not
 * covered: they need the run's home mounted as HOME, see the test).
 *
 * Covers: the Write tool's file lands in the host workspace, owned by the
 * container user (uid 1000); the model server was reached through the
 * bridge; the events have the same shape as the same scenario run on the
 * host (container.* and log aside); the per-run container is removed;
 * cancel mid-stream ends the run cancelled with no container left.
 *
 * With no engine reachable these tests FAIL (start one with
 * scripts/ci-docker.sh); OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createDockerClient } from "../../src/container/client.ts";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { startModelServer, type ModelServer } from "../fixtures/model-server/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { readSse } from "../helpers/sse.ts";

type Ev = { id: number; run_id: string; type: string; ts: string; data: Record<string, any> };

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
/** The offline image with Gemini CLI too (an npm package copied whole; not in the default image), for `agents.gemini.image`. */
const GEMINI_IMAGE = "openrunner-agent:test-gemini";
const NETWORK = "bridge";
const PROBE_INSTANCE = "test-docker-agents-probe";
const T = { timeout: 240_000 };
if (SKIP) console.warn("# docker agent e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

/** Runs `argv` in a throw-away container of `image` on NETWORK; returns its stdout and exit code. */
async function inProbe(client: ContainerClient, argv: string[], image = IMAGE): Promise<{ exitCode: number | null; stdout: string }> {
  const ws = mkdtempSync(path.join(os.tmpdir(), "openrunner-probe-"));
  try {
    await using c = await client.create({
      image,
      labels: { [LABEL.instance]: PROBE_INSTANCE },
      workspace: ws,
      user: "1000:1000",
      limits: { memoryBytes: 256 * 1024 * 1024, nanoCpus: 1_000_000_000, pidsLimit: 64 },
      network: NETWORK,
    });
    await c.start();
    return await c.execCollect({ argv });
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

/** The default gateway seen from a container on NETWORK (the host's address on the bridge), from /proc/net/route. */
async function bridgeGateway(client: ContainerClient): Promise<string> {
  const { stdout } = await inProbe(client, ["cat", "/proc/net/route"]);
  const row = stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f[1] === "00000000");
  assert.ok(row?.[2], `no default route in a ${NETWORK} container:\n${stdout}`);
  const hex = row[2]!;
  // Little-endian hex: "010011AC" is 172.17.0.1.
  return [0, 1, 2, 3].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).reverse().join(".");
}

/** A TCP relay listening on `host` (port 0) to 127.0.0.1:`port`. */
async function startRelay(host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(port, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        down.destroy();
        up.destroy();
      });
    }
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port: relayPort } = server.address() as net.AddressInfo;
  return {
    url: `http://${host}:${relayPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function runClaude(s: TestServer, token: string, text: string, metadata: Record<string, unknown>): Promise<Ev[]> {
  const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text }, metadata: { agent_type: "claude_code", ...metadata } } });
  assert.equal(res.status, 201, await res.clone().text());
  const runId = ((await res.json()) as { run_id: string }).run_id;
  const out = await readSse(`${s.url}/api/runs/${runId}/events`, { token, timeoutMs: 200_000 });
  assert.ok(out.ended, "stream should end after the terminal event");
  return out.messages.map((m) => JSON.parse(m.data) as Ev);
}

const dump = (events: Ev[]) => events.map((e) => `${e.id} ${e.type} ${JSON.stringify(e.data).slice(0, 300)}`).join("\n");
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
    client = createDockerClient({ dockerHost: process.env.DOCKER_HOST });
    try {
      await client.ping({ timeoutMs: 5000 });
    } catch (err) {
      throw new Error(`Docker engine not reachable (${client.engine}): ${(err as Error).message}. Start one with scripts/ci-docker.sh, or set OPENRUNNER_SKIP_DOCKER=1.`);
    }
    // The image must carry the CLI (an image built before the CLIs were added is rebuilt).
    const hasClaude = (await client.imageInfo(IMAGE)) && (await inProbe(client, ["claude", "--version"]).catch(() => ({ exitCode: 1, stdout: "" }))).exitCode === 0;
    if (!hasClaude) await buildAgentImage({ client, offline: true, tag: IMAGE, agents: ["claude"] });
    const hasGemini = (await client.imageInfo(GEMINI_IMAGE)) && (await inProbe(client, ["gemini", "--version"], GEMINI_IMAGE).catch(() => ({ exitCode: 1, stdout: "" }))).exitCode === 0;
    if (!hasGemini) await buildAgentImage({ client, offline: true, tag: GEMINI_IMAGE, agents: ["claude", "gemini"] });
    const gateway = await bridgeGateway(client);
    model = await startModelServer();
    relay = await startRelay(gateway, Number(new URL(model.url).port));

    confDir = mkdtempSync(path.join(os.tmpdir(), "openrunner-docker-agents-"));
    const conf = path.join(confDir, "openrunner.yaml");
    const config = {
      docker: { image: IMAGE, network: NETWORK },
      agents: {
        claude_code: { base_url: model.url, container_base_url: relay.url, api_key: "sk-test", model: "claude-sonnet-4-5", max_retries: 0 },
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

  test("an npm-package CLI (Gemini CLI) copied whole into the offline image runs there as the non-root user", T, async () => {
    // Runs of gemini in a container still need the run's home (settings.json) mounted as HOME, which
    // per-run containers do not do yet (their HOME is a tmpfs); this checks the image half.
    const r = await inProbe(client, ["sh", "-c", "id -u; gemini --version"], GEMINI_IMAGE);
    assert.equal(r.exitCode, 0, r.stdout);
    const [uid, version] = r.stdout.trim().split("\n");
    assert.equal(uid, "1000");
    assert.match(version ?? "", /^\d+\.\d+\.\d+/);
  });
});
