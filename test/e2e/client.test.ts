/**
 * End to end: the typed client (`src/client/`, `openrunner/client`) against the
 * real server (test/helpers/spawn-server.ts) with `shell` runs: every method
 * once, the server's errors as OpenRunnerError, AbortSignal, and `events()`
 * (ids 1..n, no gap, no duplicate) across a connection dropped mid-stream and
 * a `stream.lagged` notice, both injected through a custom `fetch`, and across
 * the server killed and started again on the same address.
 */
import assert from "node:assert/strict";
import net, { type AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { OpenRunnerClient, OpenRunnerError, OpenRunnerNetworkError, type FetchLike, type RunEvent } from "../../src/client/index.ts";
import { formatLaggedFrame } from "../../src/protocol/sse.ts";
import { readFileSync } from "node:fs";
import { ADMIN_PASSWORD, spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { writeConfig } from "../helpers/events.ts";

const shell = (text: string) => ({ input: { text }, metadata: { agent_type: "shell" } });

/** Collects a run's events through `events()`. */
async function collect(iter: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for await (const ev of iter) out.push(ev);
  return out;
}

/** Asserts ids 1..n in order, the last one terminal. */
function assertComplete(evs: RunEvent[], terminal = "run.completed"): void {
  assert.deepEqual(evs.map((e) => e.id), evs.map((_, i) => i + 1), evs.map((e) => `${e.id} ${e.type}`).join("\n"));
  assert.equal(evs[0]?.type, "run.queued");
  assert.equal(evs.at(-1)?.type, terminal);
}

/**
 * A fetch whose first SSE response is cut after `bytes` bytes: at a frame
 * boundary followed by `tail` when given (e.g. a lagged frame, then the end),
 * else mid-stream with an error (a dropped connection). Records each SSE
 * request's Last-Event-ID.
 */
function cuttingFetch(bytes: number, tail?: string): { fetch: FetchLike; lastEventIds: (string | null)[] } {
  const lastEventIds: (string | null)[] = [];
  const fetchImpl: FetchLike = async (input, init) => {
    const res = await fetch(input, init);
    const headers = new Headers(init.headers);
    if (headers.get("accept") !== "text/event-stream") return res;
    lastEventIds.push(headers.get("last-event-id"));
    if (lastEventIds.length > 1 || !res.body) return res;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let text = "";
    let sent = 0;
    const send = (ctrl: ReadableStreamDefaultController<Uint8Array>, upTo: number) => {
      ctrl.enqueue(encoder.encode(text.slice(sent, upTo)));
      sent = upTo;
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        const { done, value } = await reader.read();
        if (done) return ctrl.close();
        text += decoder.decode(value, { stream: true });
        if (text.length < bytes) return send(ctrl, text.length);
        if (tail === undefined) {
          send(ctrl, bytes); // most likely mid-frame
          await reader.cancel();
          return ctrl.error(new TypeError("terminated"));
        }
        const end = text.indexOf("\n\n", bytes);
        if (end < 0) return send(ctrl, text.length);
        send(ctrl, end + 2);
        ctrl.enqueue(encoder.encode(tail));
        await reader.cancel();
        ctrl.close();
      },
      cancel: () => reader.cancel(),
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return { fetch: fetchImpl, lastEventIds };
}

/** The Docker engine and `openrunner-agent:latest` come from `.ci/run` (`scripts/ci-docker.sh`), as for the docker suites. */
const SKIP_DOCKER = process.env.OPENRUNNER_SKIP_DOCKER === "1";

/** The one port the test server's proxy allows (nothing listens there: a preview link does not connect). */
const PREVIEW_PORT = 5999;

describe("the typed client against the real server", () => {
  let s: TestServer;
  let client: OpenRunnerClient;
  before(async () => {
    const config = writeConfig({ webhooks: { allowed_hosts: ["127.0.0.1"], allow_private: true } });
    s = await spawnServer({ env: { OPENRUNNER_PROXY_ALLOWED_PORTS: String(PREVIEW_PORT), OPENRUNNER_CONFIG: config } });
    client = new OpenRunnerClient({ baseUrl: `${s.url}/` });
    const login = await client.login({ username: "admin", password: ADMIN_PASSWORD });
    assert.equal(login.token_type, "Bearer");
    assert.equal(client.token, login.token);
  });
  after(async () => {
    await s.stop();
    s.cleanup();
  });

  test("me, health, agentsHealth", async () => {
    const me = await client.me();
    assert.equal(me.username, "admin");
    assert.equal(me.role, "admin");
    assert.equal((await client.health()).status, "ok");
    const agents = await client.agentsHealth();
    assert.ok(agents.some((a) => a.agent === "shell" && a.available));
  });

  test("API keys: create, use, list, delete", async () => {
    const key = await client.createApiKey({ name: "ci" });
    assert.match(key.key, /^or_/);
    const byKey = new OpenRunnerClient({ baseUrl: s.url, token: key.key });
    assert.equal((await byKey.me()).username, "admin");
    assert.ok((await client.listApiKeys()).some((k) => k.id === key.id && k.revoked_at === null));
    await client.deleteApiKey(key.id);
    await assert.rejects(byKey.me(), (e: unknown) => e instanceof OpenRunnerError && e.status === 401 && e.code === "unauthorized");
    await assert.rejects(client.deleteApiKey(key.id), (e: unknown) => e instanceof OpenRunnerError && e.status === 404 && e.code === "not_found");
  });

  test("users (admin): create, list, delete; 409 username_taken; 403 for a user", async () => {
    const name = `c${Date.now().toString(36)}`;
    const user = await client.createUser({ username: name, password: "a-long-password", role: "user" });
    assert.equal(user.username, name);
    await assert.rejects(client.createUser({ username: name, password: "a-long-password" }), (e: unknown) => e instanceof OpenRunnerError && e.status === 409 && e.code === "username_taken");
    assert.ok((await client.listUsers()).some((u) => u.id === user.id));
    const asUser = new OpenRunnerClient({ baseUrl: s.url });
    await asUser.login({ username: name, password: "a-long-password" });
    await assert.rejects(asUser.listUsers(), (e: unknown) => e instanceof OpenRunnerError && e.status === 403 && e.code === "forbidden");
    // One process on SQLite: no workers (the distributed mode's are in test/e2e/distributed.test.ts).
    assert.deepEqual(await client.listWorkers(), { mode: "single", workers: [] });
    await assert.rejects(asUser.listWorkers(), (e: unknown) => e instanceof OpenRunnerError && e.status === 403 && e.code === "forbidden");
    await client.deleteUser(user.id);
    assert.ok(!(await client.listUsers()).some((u) => u.id === user.id));
  });

  test("runs: create, events 1..n, eventsPage, get, list with filters and cursor, artifacts, permissions, delete", async () => {
    const created = await client.createRun(shell("for i in 1 2 3 4 5; do echo line $i; done"));
    assert.equal(created.status, "queued");
    const evs = await collect(client.events(created.run_id));
    assertComplete(evs);
    assert.deepEqual(evs.filter((e) => e.type === "log").map((e) => (e.data as { text: string }).text), ["line 1", "line 2", "line 3", "line 4", "line 5"]);

    const page = await client.eventsPage(created.run_id);
    assert.deepEqual(page.events, evs);
    assert.equal(page.done, true);
    assert.equal(page.next_after, evs.length);
    const part = await client.eventsPage(created.run_id, { after: 2, limit: 2 });
    assert.deepEqual(part.events.map((e) => e.id), [3, 4]);
    assert.deepEqual(await collect(client.events(created.run_id, { after: evs.length - 2 })), evs.slice(-2));

    const run = await client.getRun(created.run_id);
    assert.equal(run.status, "completed");
    assert.equal(run.last_event_id, evs.length);

    const second = await client.createRun(shell("echo two"));
    await collect(client.events(second.run_id));
    const first = await client.listRuns({ status: "completed", agent_type: "shell", limit: 1 });
    assert.equal(first.runs.length, 1);
    assert.equal(first.runs[0]!.id, second.run_id, "newest first");
    assert.ok(first.next_cursor);
    const next = await client.listRuns({ status: "completed", limit: 1, cursor: first.next_cursor!, mine: true });
    assert.equal(next.runs[0]!.id, created.run_id);
    assert.equal((await client.listRuns({ status: "failed" })).runs.length, 0);

    const artifacts = await client.listArtifacts(created.run_id);
    assert.deepEqual(artifacts.artifacts, []);
    await assert.rejects(client.downloadArtifact(created.run_id, "out/x.txt"), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
    assert.deepEqual(await client.listPermissions(created.run_id), []);
    await assert.rejects(client.answerPermission(created.run_id, "perm_none", "allow"), (e: unknown) => e instanceof OpenRunnerError && e.status === 404 && e.code === "not_found");

    await client.deleteRun(second.run_id);
    await assert.rejects(client.getRun(second.run_id), (e: unknown) => e instanceof OpenRunnerError && e.code === "not_found");
  });

  test("cancel ends a live run with run.cancelled; resume of a shell run is the server's 400", async () => {
    const { run_id } = await client.createRun(shell("for i in $(seq 1 100); do echo tick $i; sleep 0.2; done"));
    const evs: RunEvent[] = [];
    for await (const ev of client.events(run_id)) {
      evs.push(ev);
      if (ev.type === "log") assert.equal((await client.cancelRun(run_id)).run_id, run_id);
    }
    assertComplete(evs, "run.cancelled");
    await assert.rejects(client.resumeRun(run_id, shell("again")), (e: unknown) => e instanceof OpenRunnerError && e.status === 400 && /^resume_/.test(e.code));
  });

  test("createPreviewLink: a link for an allowed port; 403 port_not_allowed, 400, 404", async () => {
    const { run_id } = await client.createRun(shell("echo preview"));
    const link = await client.createPreviewLink(run_id, { port: PREVIEW_PORT, ttl_secs: 60 });
    assert.match(link.path, new RegExp(`^/api/runs/${run_id}/proxy/${PREVIEW_PORT}/\\?openrunner_preview=`));
    assert.equal(link.url, `${s.url}${link.path}`);
    const ttl = Date.parse(link.expires_at) - Date.now();
    assert.ok(ttl > 0 && ttl <= 60_000, link.expires_at);
    await assert.rejects(client.createPreviewLink(run_id, { port: PREVIEW_PORT + 1 }), (e: unknown) => e instanceof OpenRunnerError && e.status === 403 && e.code === "port_not_allowed");
    await assert.rejects(client.createPreviewLink(run_id, { port: 0 }), (e: unknown) => e instanceof OpenRunnerError && e.status === 400 && e.code === "validation_failed");
    await assert.rejects(client.createPreviewLink("run_doesnotexist", { port: PREVIEW_PORT }), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
  });

  test("chat waits for the run and answers its result", async () => {
    const res = await client.chat(shell("echo chatted"));
    assert.equal(res.status, "completed");
  });

  test("containers and projects: a project container's whole life through the real engine", { skip: SKIP_DOCKER ? "OPENRUNNER_SKIP_DOCKER=1" : false, timeout: 120_000 }, async () => {
    const id = `client-${Date.now().toString(36)}`;
    await assert.rejects(client.getProjectContainer(id), (e: unknown) => e instanceof OpenRunnerError && e.status === 404 && e.code === "not_found");
    for (const call of [client.keepaliveProjectContainer(id), client.restartProjectContainer(id), client.deleteProjectContainer(id)]) {
      await assert.rejects(call, (e: unknown) => e instanceof OpenRunnerError && e.status === 404 && e.code === "not_found");
    }
    await assert.rejects(client.getProjectContainer("-bad id-"), (e: unknown) => e instanceof OpenRunnerError && e.status === 400 && e.code === "validation_failed");
    const before = await client.containerCounts();
    try {
      const created = await client.ensureProjectContainer(id, {});
      assert.equal(created.project_id, id);
      assert.equal((await client.ensureProjectContainer(id, {})).container_id, created.container_id, "a second ensure keeps the container");
      assert.equal((await client.getProjectContainer(id)).container_id, created.container_id);
      assert.equal((await client.keepaliveProjectContainer(id)).container_id, created.container_id);
      const page = await client.listContainers({ kind: "project", limit: 200 });
      assert.ok(page.containers.some((c) => c.id === created.container_id), "the list has it");
      assert.equal((await client.containerCounts()).counts.project, before.counts.project + 1);
      await client.restartProjectContainer(id);
    } finally {
      await client.deleteProjectContainer(id).catch(() => undefined);
    }
    await assert.rejects(client.getProjectContainer(id), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
    assert.equal((await client.containerCounts()).counts.project, before.counts.project);
  });

  test("batches: create, get, runs by batch_id, the batch stream to batch.done, cancel; all or none", async () => {
    const batch = await client.createBatch({ runs: [shell("echo one"), shell("echo two")] });
    assert.equal(batch.runs.length, 2);
    const events = [];
    for await (const ev of client.batchEvents(batch.batch_id)) events.push(ev);
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1));
    const done = events.at(-1)!;
    assert.equal(done.type, "batch.done");
    assert.equal(done.type === "batch.done" && done.data.counts.completed, 2);
    const view = await client.getBatch(batch.batch_id);
    assert.deepEqual(view.run_ids, batch.runs.map((r) => r.run_id));
    const listed = await client.listRuns({ batch_id: batch.batch_id });
    assert.deepEqual(listed.runs.map((r) => r.id).sort(), batch.runs.map((r) => r.run_id).sort());
    const live = await client.createBatch({ runs: [shell("sleep 30")] });
    const cancelled = await client.cancelBatch(live.batch_id);
    assert.equal(cancelled.batch_id, live.batch_id);
    assert.equal((await client.getRun(live.runs[0]!.run_id).then((r) => client.events(r.id)).then(collect)).at(-1)?.type, "run.cancelled");
    await assert.rejects(client.createBatch({ runs: [shell("echo ok"), { input: { text: "x" }, metadata: { agent_type: "no-such-agent" } }] }), (e: unknown) => {
      assert.ok(e instanceof OpenRunnerError, String(e));
      assert.equal((e.details as { index?: number } | undefined)?.index, 1);
      return true;
    });
    await assert.rejects(client.getBatch("batch_nope"), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
  });

  test("webhooks: create (secret once), list, get, deliveries, delete", async () => {
    const hook = await client.createWebhook({ url: "http://127.0.0.1:9/hook", events: ["run.completed"] });
    assert.match(hook.secret, /^whsec_/);
    assert.ok((await client.listWebhooks()).some((h) => h.id === hook.id && !("secret" in h)));
    assert.equal((await client.getWebhook(hook.id)).url, "http://127.0.0.1:9/hook");
    assert.ok(Array.isArray(await client.listWebhookDeliveries(hook.id, { limit: 5 })));
    await client.deleteWebhook(hook.id);
    await assert.rejects(client.getWebhook(hook.id), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
  });

  test("configuration (admin), tools and stored sessions", async () => {
    const config = await client.getConfig();
    assert.ok(config.live.length > 0, JSON.stringify(config).slice(0, 300));
    const patched = await client.patchConfig({ max_queued_runs_per_user: 77 });
    assert.ok(patched.changed.some((c) => c.key === "max_queued_runs_per_user"));
    await assert.rejects(client.patchConfig({ addr: "127.0.0.1:1" }), (e: unknown) => e instanceof OpenRunnerError && e.status === 400 && e.code === "config_not_live");
    const tools = await client.listTools();
    assert.ok(tools.some((t) => t.name === "read_file"));
    assert.deepEqual(await client.listSessions("claude_code"), []);
    await assert.rejects(client.getSession("claude_code", "nope"), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
  });

  test("desktop: a run without one answers 409 desktop_unavailable on both methods (the desktop itself: test/e2e/docker-desktop.test.ts)", async () => {
    const { run_id } = await client.createRun(shell("echo no desktop"));
    await collect(client.events(run_id));
    for (const call of [client.getDesktop(run_id), client.desktopScreenshot(run_id)]) {
      await assert.rejects(call, (e: unknown) => e instanceof OpenRunnerError && e.status === 409 && e.code === "desktop_unavailable");
    }
    await assert.rejects(client.getDesktop("run_nope"), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
  });

  test("every operation of the server's OpenAPI document has a client method, or a stated reason it has none", async () => {
    const doc = (await (await fetch(`${s.url}/api/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    /** Operations a program does not call through this client, and why. */
    const NOT_IN_CLIENT: Record<string, string> = {
      "GET /api/openapi.json": "the document itself",
      "GET /api/docs": "Swagger UI, for people",
      "GET /metrics": "Prometheus scrapes it",
      "POST /mcp": "MCP clients speak to it (the SDK's transport)",
      "GET /mcp": "MCP clients speak to it (the SDK's transport)",
      "DELETE /mcp": "MCP clients speak to it (the SDK's transport)",
      "GET /api/runs/{id}/agui": "AG-UI clients consume it (@ag-ui/client)",
      "POST /api/runs/{id}/agui": "AG-UI clients consume it (@ag-ui/client)",
    };
    const source = ["client.ts", "transport.ts"].map((f) => readFileSync(new URL(`../../src/client/${f}`, import.meta.url), "utf8")).join("\n");
    const missing: string[] = [];
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        const key = `${method.toUpperCase()} ${p}`;
        if (NOT_IN_CLIENT[key] || p.startsWith("/proxy/") || p.includes("/proxy/")) continue;
        // `/api/runs/{id}/cancel` is written `/api/runs/${enc(runId)}/cancel` in the client.
        const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        const pattern = p.split(/\{[^}]+\}/).map(esc).join("\\$\\{[^}]+\\}");
        const re = new RegExp(`method: "${method.toUpperCase()}", path: [\`"]${pattern}[\`"]`);
        const viaHelper = method === "get" && new RegExp(`const path = \`${pattern}\``).test(source);
        if (!re.test(source) && !viaHelper) missing.push(key);
      }
    }
    assert.deepEqual(missing, [], `operations without a client method:\n${missing.join("\n")}`);
  });

  test("errors: 404 not_found, 400 validation_failed with details, 401, network failure", async () => {
    await assert.rejects(client.getRun("run_doesnotexist"), (e: unknown) => e instanceof OpenRunnerError && e.status === 404 && e.code === "not_found" && e.message === "run not found");
    await assert.rejects(
      client.createRun({ input: { text: "" }, metadata: { agent_type: "shell" } }),
      (e: unknown) => e instanceof OpenRunnerError && e.status === 400 && e.code === "validation_failed" && Array.isArray(e.details) && e.details.length > 0,
    );
    await assert.rejects(collect(client.events("run_doesnotexist")), (e: unknown) => e instanceof OpenRunnerError && e.status === 404);
    const anon = new OpenRunnerClient({ baseUrl: s.url });
    await assert.rejects(anon.listRuns(), (e: unknown) => e instanceof OpenRunnerError && e.status === 401 && e.code === "unauthorized");
    await assert.rejects(anon.login({ username: "admin", password: "wrong" }), (e: unknown) => e instanceof OpenRunnerError && e.status === 401);
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const nowhere = new OpenRunnerClient({ baseUrl: `http://127.0.0.1:${port}`, token: "t" });
    await assert.rejects(nowhere.me(), (e: unknown) => e instanceof OpenRunnerNetworkError && e.code === "network_error" && e.status === 0 && e.reason === "connection refused");
  });

  test("AbortSignal: an aborted call rejects with the signal's reason; so does an event stream", async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(client.me({ signal: ac.signal }), (e: unknown) => (e as Error).name === "AbortError" && !(e instanceof OpenRunnerError));

    const { run_id } = await client.createRun(shell("for i in $(seq 1 100); do echo tick $i; sleep 0.2; done"));
    const live = new AbortController();
    const got: number[] = [];
    let abortedAt: number | undefined;
    await assert.rejects(
      (async () => {
        for await (const ev of client.events(run_id, { signal: live.signal })) {
          got.push(ev.id);
          if (ev.type === "log" && abortedAt === undefined) {
            abortedAt = ev.id;
            live.abort();
          }
        }
      })(),
      (e: unknown) => (e as Error).name === "AbortError",
    );
    assert.deepEqual(got, got.map((_, i) => i + 1));
    assert.equal(got.at(-1), abortedAt, "no event is delivered after the abort");
    await client.cancelRun(run_id);
  });

  test("events() resumes with Last-Event-ID after a dropped connection: ids 1..n, no duplicate", async () => {
    const { run_id } = await client.createRun(shell("for i in $(seq 1 8); do echo line $i; sleep 0.1; done"));
    const cut = cuttingFetch(700);
    const c = new OpenRunnerClient({ baseUrl: s.url, token: client.token!, fetch: cut.fetch });
    const reconnects: string[] = [];
    const evs = await collect(c.events(run_id, { retryDelayMs: () => 20, onReconnect: (n, why) => reconnects.push(`${why}@${n}`) }));
    assertComplete(evs);
    assert.equal(evs.filter((e) => e.type === "log").length, 8);
    assert.equal(cut.lastEventIds.length, 2, `one reconnect: ${reconnects.join(", ")}`);
    assert.equal(cut.lastEventIds[0], null);
    const resumedAfter = Number(cut.lastEventIds[1]);
    assert.ok(resumedAfter >= 1 && resumedAfter < evs.length, String(resumedAfter));
    assert.deepEqual(reconnects, [`disconnected@${resumedAfter}`]);
  });

  test("events() reconnects after stream.lagged and loses nothing", async () => {
    const { run_id } = await client.createRun(shell("for i in $(seq 1 6); do echo line $i; sleep 0.1; done"));
    const cut = cuttingFetch(300, formatLaggedFrame(0));
    const c = new OpenRunnerClient({ baseUrl: s.url, token: client.token!, fetch: cut.fetch });
    const reconnects: string[] = [];
    const evs = await collect(c.events(run_id, { onReconnect: (n, why) => reconnects.push(`${why}@${n}`) }));
    assertComplete(evs);
    assert.equal(cut.lastEventIds.length, 2);
    assert.deepEqual(reconnects, [`lagged@${cut.lastEventIds[1]}`]);
  });
});

describe("the typed client across a server restart", () => {
  test("events() reconnects with Last-Event-ID after the server is killed and started again on the same address: ids 1..n, none twice", { timeout: 120_000 }, async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const env = { OPENRUNNER_ADDR: `127.0.0.1:${port}` };
    let s = await spawnServer({ env });
    try {
      const client = new OpenRunnerClient({ baseUrl: s.url });
      await client.login({ username: "admin", password: ADMIN_PASSWORD });
      const { run_id } = await client.createRun(shell("echo before; sleep 5; echo after"));
      const reconnects: Array<{ after: number; reason: string }> = [];
      const seen: RunEvent[] = [];
      let gotFirstLine!: () => void;
      const firstLine = new Promise<void>((r) => (gotFirstLine = r));
      const reading = (async () => {
        for await (const ev of client.events(run_id, { retryDelayMs: () => 200, maxRetries: 100, onReconnect: (after, reason) => reconnects.push({ after, reason }) })) {
          seen.push(ev);
          if (ev.type === "log") gotFirstLine();
        }
      })();
      await firstLine;
      await s.kill9();
      s = await spawnServer({ env, dataDir: s.dataDir });
      await reading;
      assert.ok(reconnects.length >= 1 && reconnects.every((r) => r.reason === "disconnected"), JSON.stringify(reconnects));
      assert.ok(reconnects[0]!.after >= 3, "the reconnect resumed after the events already delivered");
      assert.deepEqual(seen.map((e) => e.id), seen.map((_, i) => i + 1), seen.map((e) => `${e.id} ${e.type}`).join("\n"));
      const stored = (await client.eventsPage(run_id, { limit: 1000 })).events;
      assert.deepEqual(seen, stored, "the consumer saw exactly the stored events");
      assert.equal(seen.at(-1)?.type, "run.failed", "the restarted server ended the interrupted run");
    } finally {
      await s.stop();
      s.cleanup();
    }
  });
});
