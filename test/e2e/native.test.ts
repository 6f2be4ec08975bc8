/**
 * The `openrunner` native agent end to end: the real server (child process, port 0) runs its model
 * loop against the scripted model server (`test/fixtures/model-server/`) over each wire API the
 * SDKs speak: OpenAI Responses (`oai/…`), Chat Completions (`chat/…`) and Anthropic Messages
 * (`claude/…`). Covers creating and editing a file (with the diff), a failing command reported
 * back and recovered from, a plan emitted and completed, permission `deny` and `ask`, cancel
 * mid-stream and mid-tool (the command's process group is gone), timeout, `max_turns`,
 * `max_cost`, resume from the stored conversation, HTTP 429 and 500 with the SDK's retries set
 * to the configured value, and one run inside a docker container (skipped only when no engine
 * answers).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { startModelServer, type ModelServer, type RecordedRequest } from "../fixtures/model-server/index.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";
import { allEvents, createRun, describeEvents, eventsUntil, runToEnd, writeConfig, type Ev } from "../helpers/events.ts";
import { groupAlive, until } from "../helpers/processes.ts";
import { createDockerClient } from "../../src/container/client.ts";

const T = { timeout: 90_000 };
const WIRES = ["oai", "chat", "claude"] as const;

const ofType = (evs: Ev[], type: string) => evs.filter((e) => e.type === type);
const last = (evs: Ev[]) => evs.at(-1)!;

describe("the openrunner agent end to end", () => {
  let model: ModelServer;
  let s: TestServer;
  let token: string;
  let configFile: string;

  before(async () => {
    model = await startModelServer();
    const v1 = `${model.url}/v1`;
    configFile = writeConfig({
      providers: {
        oai: { api: "responses", base_url: v1, api_key_env: "TEST_MODEL_KEY", max_retries: 1 },
        chat: { api: "chat", base_url: v1, api_key_env: "TEST_MODEL_KEY", max_retries: 1 },
        claude: { api: "anthropic", base_url: model.url, api_key: "sk-test-config", max_retries: 1, prices: { m1: { input_per_mtok: 3, output_per_mtok: 15 } } },
        pricey: { api: "anthropic", base_url: model.url, api_key: "sk-test-config", max_retries: 0, prices: { m1: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
      },
      native: { max_turns: 5, max_cost_usd: 1 },
      permissions: { default_policy: "allow" },
    });
    s = await spawnServer({ timeoutMs: 60_000, env: { OPENRUNNER_CONFIG: configFile, TEST_MODEL_KEY: "sk-test-env" } });
    token = await s.login();
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await model?.close();
    rmSync(path.dirname(configFile), { recursive: true, force: true });
  });

  /** Main requests recorded after `from` (an index into `model.requests`). */
  const mainSince = (from: number): RecordedRequest[] => model.requests.slice(from).filter((r) => r.kind === "main");

  const run = (text: string, metadata: Record<string, unknown>) => runToEnd(s, token, text, { agent_type: "openrunner", ...metadata }, 60_000);

  for (const wire of WIRES) {
    test(`${wire}: creates and edits a file; the edit's result carries a diff; usage per turn`, T, async () => {
      model.setScenario({
        turns: [
          { text: "Writing it.", tool: { name: "write_file", input: { path: "notes/hello.txt", content: "hello\nworld\n" } } },
          { tool: { name: "edit_file", input: { path: "notes/hello.txt", old_string: "world", new_string: "there" } } },
          { tool: { name: "read_file", input: { path: "notes/hello.txt" } } },
          { text: "Created and edited notes/hello.txt." },
        ],
      });
      const { evs } = await run("create and edit a file", { model: `${wire}/m1` });
      const types = evs.map((e) => e.type);
      assert.equal(last(evs).type, "run.completed", describeEvents(evs));
      assert.equal(last(evs).data.result, "Created and edited notes/hello.txt.");
      const cwd = ofType(evs, "run.started")[0]!.data.cwd as string;
      assert.equal(readFileSync(path.join(cwd, "notes/hello.txt"), "utf8"), "hello\nthere\n");
      assert.deepEqual(ofType(evs, "tool.call").map((e) => e.data.name), ["write_file", "edit_file", "read_file"]);
      const results = ofType(evs, "tool.result");
      assert.deepEqual(results.map((e) => e.data.is_error), [false, false, false], describeEvents(results));
      assert.match(results[1]!.data.raw.diff as string, /^--- a\/notes\/hello.txt\n\+\+\+ b\/notes\/hello.txt\n@@ -1,2 \+1,2 @@\n hello\n-world\n\+there\n$/);
      assert.equal(results[2]!.data.output, "hello\nthere\n");
      // streamed text, then the whole message; one usage event per model request
      assert.ok(types.indexOf("message.delta") < types.indexOf("message"), types.join(" "));
      assert.equal(ofType(evs, "message")[0]!.data.text, "Writing it.");
      const usage = ofType(evs, "usage");
      assert.equal(usage.length, 4);
      assert.ok(usage.every((u) => u.data.input_tokens > 0 && u.data.output_tokens > 0));
      assert.deepEqual(usage.map((u) => u.data.raw.turn), [1, 2, 3, 4]);
      if (wire === "claude") {
        assert.ok(usage.every((u) => u.data.cost_usd > 0), "a model with a price has a cost");
        const sum = usage.reduce((a, u) => a + (u.data.cost_usd as number), 0);
        assert.ok(Math.abs(last(evs).data.usage.cost_usd - sum) < 1e-9);
      } else assert.ok(usage.every((u) => u.data.cost_usd === undefined), "no price, no cost");
      assert.ok(ofType(evs, "agent.session")[0]!.data.session_id.startsWith("ns_"));
    });
  }

  test("the key comes from api_key or from the api_key_env variable and never reaches an event", T, async () => {
    const from = model.requests.length;
    model.setScenario({ turns: [{ text: "hi" }] });
    const { evs } = await run("hi", { model: "oai/m1" });
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    assert.equal(mainSince(from)[0]!.path, "/v1/responses");
    assert.ok(!JSON.stringify(evs).includes("sk-test"), "no key in any event");
    assert.ok(!s.output().includes("sk-test"), "no key in the log");
  });

  test("a failing command goes back to the model, which recovers", T, async () => {
    model.setScenario({ turns: [{ tool: { shell: "echo broken >&2; exit 3" } }, { tool: { shell: "echo fixed" } }, { text: "Recovered." }] });
    const from = model.requests.length;
    const { evs } = await run("run it", { model: "chat/m1" });
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    const results = ofType(evs, "tool.result");
    assert.equal(results[0]!.data.is_error, true);
    assert.match(results[0]!.data.output as string, /^exit code 3\nbroken/);
    assert.equal(results[0]!.data.raw.exit_code, 3);
    assert.equal(results[1]!.data.is_error, false);
    assert.equal(results[1]!.data.output, "exit code 0\nfixed");
    // the model saw the failure in its next request
    const second = mainSince(from)[1]!.body as { messages: Array<{ role: string; content: string }> };
    assert.ok(second.messages.some((m) => m.role === "tool" && m.content.includes("exit code 3")), JSON.stringify(second.messages));
  });

  test("a tool error (path outside the workspace, bad input, unknown tool) is a result, never a failed run", T, async () => {
    model.setScenario({
      turns: [
        { tool: { name: "read_file", input: { path: "../../../../etc/passwd" } } },
        { tool: { name: "write_file", input: { path: "x.txt" } } },
        { tool: { name: "edit_file", input: { path: "missing.txt", old_string: "a", new_string: "b" } } },
        { text: "Gave up nicely." },
      ],
    });
    const { evs } = await run("try", { model: "claude/m1" });
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    const results = ofType(evs, "tool.result");
    assert.deepEqual(results.map((r) => r.data.is_error), [true, true, true]);
    assert.match(results[0]!.data.output as string, /outside the run's workspace/);
    assert.match(results[1]!.data.output as string, /invalid input for write_file/);
    assert.match(results[2]!.data.output as string, /no such file/);
  });

  test("metadata.plan: the first request asks for the plan, the plan is emitted, updated and emitted final", T, async () => {
    const steps = (a: string, b: string) => ({ entries: [{ content: "Write the file", status: a }, { content: "Check it", status: b }] });
    model.setScenario({
      turns: [
        { tool: { name: "plan", input: steps("pending", "pending") } },
        { tool: { name: "write_file", input: { path: "p.txt", content: "planned\n" } } },
        { tool: { name: "plan", input: steps("completed", "in_progress") } },
        { tool: { name: "plan", input: steps("completed", "completed") } },
        { text: "All steps done." },
      ],
    });
    const from = model.requests.length;
    const { evs } = await run("do it with a plan", { model: "oai/m1", plan: true });
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    const reqs = mainSince(from);
    assert.deepEqual(reqs[0]!.tools, ["plan"], "the planning request offers only the plan tool");
    assert.deepEqual((reqs[0]!.body as { tool_choice: unknown }).tool_choice, { type: "function", name: "plan" });
    assert.ok(reqs[1]!.tools!.includes("write_file"), "then every tool");
    const plans = ofType(evs, "plan");
    assert.deepEqual(plans.map((p) => p.data.entries.map((e: { status: string }) => e.status).join(",")), ["pending,pending", "completed,in_progress", "completed,completed", "completed,completed"]);
    assert.equal(plans.at(-1)!.data.raw.final, true);
    assert.ok(plans.at(-1)!.id < last(evs).id);
  });

  test("permission deny: a mutating tool is not run and the model is told", T, async () => {
    model.setScenario({ turns: [{ tool: { name: "write_file", input: { path: "denied.txt", content: "x" } } }, { tool: { name: "list_dir", input: {} } }, { text: "Could not write." }] });
    const { evs } = await run("write", { model: "claude/m1", permission_policy: "deny" });
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    const decision = ofType(evs, "permission.decision")[0]!;
    assert.equal(decision.data.decision, "reject");
    assert.equal(decision.data.by, "policy");
    const results = ofType(evs, "tool.result");
    assert.equal(results[0]!.data.is_error, true);
    assert.match(results[0]!.data.output as string, /permission denied/);
    assert.equal(results[1]!.data.is_error, false, "a tool that changes nothing needs no permission");
    assert.equal(ofType(evs, "permission.request").length, 1);
    assert.ok(!existsSync(path.join(ofType(evs, "run.started")[0]!.data.cwd as string, "denied.txt")));
  });

  test("permission ask: the run waits for the owner, whose allow runs the tool", T, async () => {
    model.setScenario({ turns: [{ tool: { shell: "echo asked > asked.txt" } }, { text: "Wrote after asking." }] });
    const id = await createRun(s, token, "ask first", { agent_type: "openrunner", model: "chat/m1", permission_policy: "ask" });
    const seen = await eventsUntil(s, token, id, (e) => e.type === "permission.request");
    const req = ofType(seen, "permission.request")[0]!;
    assert.equal(req.data.name, "bash");
    assert.deepEqual(req.data.input, { command: "echo asked > asked.txt" });
    assert.equal(((await (await s.api(`/api/runs/${id}`, { token })).json()) as { status: string }).status, "waiting");
    const answer = await s.api(`/api/runs/${id}/permissions/${req.data.request_id}`, { method: "POST", token, json: { option_id: "allow" } });
    assert.equal(answer.status, 200, await answer.clone().text());
    const evs = await allEvents(s, token, id, 60_000);
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    assert.equal(ofType(evs, "permission.decision")[0]!.data.by, "user:admin");
    assert.equal(readFileSync(path.join(ofType(evs, "run.started")[0]!.data.cwd as string, "asked.txt"), "utf8"), "asked\n");
  });

  test("cancel mid-stream: the model stream is aborted and the run ends cancelled at once", T, async () => {
    model.setScenario({ turns: [{ slow: { text: "one two three four five six seven eight nine ten eleven twelve", chunk_ms: 400 } }] });
    const id = await createRun(s, token, "talk slowly", { agent_type: "openrunner", model: "claude/m1" });
    await eventsUntil(s, token, id, (e) => e.type === "message.delta");
    assert.equal((await s.api(`/api/runs/${id}/cancel`, { method: "POST", token })).status, 202);
    const evs = await allEvents(s, token, id, 30_000);
    assert.equal(last(evs).type, "run.cancelled", describeEvents(evs));
    assert.ok(ofType(evs, "message.delta").length < 12, "the stream did not run to its end");
  });

  test("cancel mid-tool: the command's process group is killed at once", T, async () => {
    model.setScenario({ turns: [{ tool: { shell: "echo $$ > pid.txt; sleep 60" } }, { text: "never" }] });
    const id = await createRun(s, token, "sleep", { agent_type: "openrunner", model: "oai/m1" });
    const seen = await eventsUntil(s, token, id, (e) => e.type === "tool.call");
    const cwd = ofType(seen, "run.started")[0]!.data.cwd as string;
    const pid = await until(() => (existsSync(path.join(cwd, "pid.txt")) ? Number(readFileSync(path.join(cwd, "pid.txt"), "utf8")) || undefined : undefined), 10_000, "pid.txt");
    assert.ok(groupAlive(pid));
    await s.api(`/api/runs/${id}/cancel`, { method: "POST", token });
    const evs = await allEvents(s, token, id, 30_000);
    assert.equal(last(evs).type, "run.cancelled", describeEvents(evs));
    assert.equal(ofType(evs, "message").length, 0, "the loop did not go on to the model's next turn");
    await until(() => (groupAlive(pid) ? undefined : true), 3000, "the command's group gone");
  });

  test("timeout: the model stream is aborted and the run ends timed_out", T, async () => {
    model.setScenario({ turns: [{ slow: { text: "a b c d e f g h i j k l m n o p", chunk_ms: 500 } }] });
    const { evs } = await run("slow", { model: "chat/m1", timeout_secs: 1 });
    assert.equal(last(evs).type, "run.timed_out", describeEvents(evs));
    assert.ok(ofType(evs, "message.delta").length < 16, "the stream was cut, not run to its end");
  });

  test("max_turns: a model that never stops fails the run with max_turns after native.max_turns requests", T, async () => {
    const from = model.requests.length;
    model.setScenario({ turns: Array.from({ length: 8 }, () => ({ tool: { name: "list_dir", input: {} } })) });
    const { evs } = await run("loop", { model: "claude/m1" });
    assert.equal(last(evs).type, "run.failed", describeEvents(evs));
    assert.equal(last(evs).data.error.code, "max_turns");
    assert.equal(mainSince(from).length, 5);
  });

  test("max_cost: a run past native.max_cost_usd fails with max_cost", T, async () => {
    model.setScenario({ turns: [{ tool: { name: "list_dir", input: {} } }, { text: "never" }] });
    const { evs } = await run("expensive", { model: "pricey/m1" });
    assert.equal(last(evs).type, "run.failed", describeEvents(evs));
    assert.equal(last(evs).data.error.code, "max_cost");
    assert.equal(ofType(evs, "tool.call").length, 0, "stopped before running the tools of the expensive turn");
  });

  for (const wire of ["claude", "oai"] as const) {
    test(`${wire}: resume continues the stored conversation`, T, async () => {
      model.setScenario({ turns: [{ tool: { name: "write_file", input: { path: "n.txt", content: "42\n" } } }, { text: "I wrote the number 42." }] });
      const first = await run("remember the number 42", { model: `${wire}/m1` });
      assert.equal(last(first.evs).type, "run.completed", describeEvents(first.evs));
      const from = model.requests.length;
      model.setScenario({ turns: [{ text: "The number was 42." }] });
      const second = await run("which number?", { model: `${wire}/m1`, resume: first.id });
      assert.equal(last(second.evs).type, "run.completed", describeEvents(second.evs));
      assert.equal(ofType(second.evs, "run.started")[0]!.data.cwd, ofType(first.evs, "run.started")[0]!.data.cwd, "same workspace");
      assert.notEqual(ofType(second.evs, "agent.session")[0]!.data.session_id, ofType(first.evs, "agent.session")[0]!.data.session_id);
      const body = JSON.stringify(mainSince(from)[0]!.body);
      for (const piece of ["remember the number 42", "I wrote the number 42.", "write_file", "which number?"]) assert.ok(body.includes(piece), `${piece} in ${body.slice(0, 2000)}`);
    });
  }

  test("a resume on another wire continues the same conversation", T, async () => {
    model.setScenario({ turns: [{ text: "Noted: blue." }] });
    const first = await run("my colour is blue", { model: "claude/m1" });
    const from = model.requests.length;
    model.setScenario({ turns: [{ text: "Blue." }] });
    const second = await run("which colour?", { model: "chat/m1", resume: first.id });
    assert.equal(last(second.evs).type, "run.completed", describeEvents(second.evs));
    const msgs = (mainSince(from)[0]!.body as { messages: Array<{ role: string; content: unknown }> }).messages;
    assert.deepEqual(msgs.slice(1).map((m) => [m.role, m.content]), [["user", "my colour is blue"], ["assistant", "Noted: blue."], ["user", "which colour?"]]);
  });

  test("HTTP 429 is retried by the SDK (max_retries 1) and the run completes", T, async () => {
    const from = model.requests.length;
    model.setScenario({ turns: [{ error: { status: 429, headers: { "retry-after-ms": "10" } }, times: 1 }, { text: "after the retry" }] });
    const { evs } = await run("retry", { model: "oai/m1" });
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    assert.equal(mainSince(from).length, 2);
  });

  for (const wire of ["chat", "claude"] as const) {
    test(`${wire}: HTTP 500 past max_retries fails the run with model_error after 1 + 1 requests`, T, async () => {
      const from = model.requests.length;
      model.setScenario({ turns: [{ error: { status: 500, headers: { "retry-after-ms": "10" } }, times: Infinity }] });
      const { evs } = await run("fail", { model: `${wire}/m1` });
      assert.equal(last(evs).type, "run.failed", describeEvents(evs));
      assert.equal(last(evs).data.error.code, "model_error");
      assert.match(last(evs).data.error.message as string, /HTTP 500 after 1 retry/);
      assert.equal(mainSince(from).length, 2);
    });
  }

  test("401 fails auth_failed", T, async () => {
    model.setScenario({ turns: [{ error: { status: 401 }, times: 1 }] });
    const a = await run("x", { model: "claude/m1" });
    assert.equal(last(a.evs).data.error.code, "auth_failed", describeEvents(a.evs));
  });

  test("an unknown provider, or a model without one, answers 400 at creation", T, async () => {
    const create = (ref: string) => s.api("/api/runs", { method: "POST", token, json: { input: { text: "x" }, metadata: { agent_type: "openrunner", model: ref } } });
    const before = model.requests.length;
    const unknown = await create("nope/m1");
    assert.equal(unknown.status, 400);
    const ue = ((await unknown.json()) as { error: { code: string; message: string; details: { field: string } } }).error;
    assert.equal(ue.code, "unknown_provider");
    assert.match(ue.message, /unknown provider "nope".*configured: oai, chat, claude, pricey/);
    assert.equal(ue.details.field, "metadata.model");
    for (const bad of ["m1", "oai/", "/m1"]) {
      const res = await create(bad);
      assert.equal(res.status, 400, bad);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "invalid_model", bad);
    }
    assert.equal(model.requests.length, before, "no model request was made");
  });
});

/** True when the engine answers (the container test is skipped otherwise). */
async function engineReachable(): Promise<boolean> {
  try {
    await createDockerClient({ dockerHost: process.env.DOCKER_HOST }).ping({ timeoutMs: 3000 });
    return true;
  } catch {
    return false;
  }
}

const IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
const ENGINE = await engineReachable();
if (!ENGINE) console.warn("# native docker e2e test SKIPPED: no Docker engine reachable (start one with scripts/ci-docker.sh)");

describe("the openrunner agent in a container", { skip: ENGINE ? false : "no Docker engine reachable" }, () => {
  let model: ModelServer;
  let s: TestServer;
  let configFile: string;

  before(async () => {
    model = await startModelServer();
    configFile = writeConfig({ providers: { claude: { api: "anthropic", base_url: model.url, api_key: "sk-test", max_retries: 0 } }, permissions: { default_policy: "allow" }, docker: { image: IMAGE } });
    s = await spawnServer({ timeoutMs: 60_000, env: { OPENRUNNER_CONFIG: configFile, ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
  });

  after(async () => {
    await s?.stop();
    s?.cleanup();
    await model?.close();
    rmSync(path.dirname(configFile), { recursive: true, force: true });
  });

  test("file tools work on the mounted workspace as /workspace; bash runs in the container", { timeout: 120_000 }, async () => {
    const token = await s.login();
    model.setScenario({
      turns: [
        { tool: { name: "write_file", input: { path: "/workspace/in.txt", content: "inside\n" } } },
        { tool: { shell: "cat in.txt; pwd; id -u; test -f /.dockerenv && echo in-docker; echo made > out.txt" } },
        { tool: { name: "glob", input: { pattern: "*.txt" } } },
        { text: "Done in the container." },
      ],
    });
    const { evs } = await runToEnd(s, token, "work in the container", { agent_type: "openrunner", model: "claude/m1", isolation: "docker" }, 90_000);
    assert.equal(last(evs).type, "run.completed", describeEvents(evs));
    const types = evs.map((e) => e.type);
    for (const t of ["container.created", "container.started", "run.started", "container.stopped", "container.removed"]) assert.ok(types.includes(t), `${t}: ${types.join(" ")}`);
    assert.ok(types.indexOf("container.removed") < types.length - 1, "the container is gone before the terminal event");
    const results = ofType(evs, "tool.result");
    assert.match(results[0]!.data.output as string, /^Created \/workspace\/in.txt/);
    assert.match(results[1]!.data.output as string, /^exit code 0\ninside\n\/workspace\n1000\nin-docker$/);
    assert.equal(results[2]!.data.output, "in.txt\nout.txt");
    const cwd = ofType(evs, "run.started")[0]!.data.cwd as string;
    assert.equal(readFileSync(path.join(cwd, "out.txt"), "utf8"), "made\n");
    assert.ok(!JSON.stringify(results.map((r) => r.data.output)).includes(cwd), "the model is not told the host path");
  });
});
