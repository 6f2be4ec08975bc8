/**
 * The in-container launcher end to end (issue 15, `src/container/launcher-handle.ts`): the real
 * server runs `shell` and ACP runs in warm-pool and project containers, whose main process is the
 * launcher, on the real engine. Every check of the docker suite is made once per kind of container
 * (the cases below are one table, run for `pool` and `project`), through the launcher:
 * the run's process is the launcher's child (no engine exec), user, cwd and HOME; cancel leaves no
 * process of the run (also one in its own session), and a pooled container is removed; a process
 * over the memory limit ends `oom_killed` (the launcher survives it in a project container);
 * the PID limit holds; there is no network; an ACP agent speaks over stdin.
 *
 * The server's defaults are small (128 MiB, 64 processes) so the pool's containers have them.
 * With no engine reachable these tests FAIL (start one with scripts/ci-docker.sh);
 * OPENRUNNER_SKIP_DOCKER=1 skips them visibly.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { buildAgentImage } from "../../src/container/image.ts";
import { LABEL } from "../../src/container/labels.ts";
import { launcherRequest } from "../../src/container/launcher-exec.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { buildFixtureAgentImage, dockerFixtureAcpAgents } from "../fixtures/acp-agent/bundle.ts";
import { connectDocker } from "../helpers/docker.ts";
import { allEvents, createRun, describeEvents, eventsUntil, writeConfig, type Ev } from "../helpers/events.ts";
import { until } from "../helpers/processes.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const BASE_IMAGE = process.env.OPENRUNNER_TEST_IMAGE ?? "openrunner-agent:latest";
/** FROM the agent image with the ACP fixture agent: shell and ACP runs share one pooled image. */
const IMAGE = "openrunner-agent:test-launcher";
const T = { timeout: 120_000 };
if (SKIP) console.warn("# docker launcher e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

type Mode = "pool" | "project";
const MODES: Mode[] = ["pool", "project"];
const stdoutOf = (evs: Ev[]) => evs.filter((e) => e.type === "log" && e.data.stream === "stdout").map((e) => e.data.text as string);

/** Processes in the container whose environment has `OPENRUNNER_RUN_ID=<run>`, counted by an engine exec (not the launcher). */
const COUNT = `n=0; for d in /proc/[0-9]*; do [ "\${d#/proc/}" = "$$" ] && continue; tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -qxF "$1" && n=$((n+1)); done; echo $n`;

describe("the launcher in pooled and project containers", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let s: TestServer;
  let token: string;
  let instance: string;
  let confFile: string;

  /**
   * A warm container is ready: its launcher has answered the pool's own ping too (the pool hands it out only after
   * that), seen as more than our one ping served.
   */
  const poolReady = () =>
    until(
      async () => {
        for (const c of await client.list({ [LABEL.instance]: instance, [LABEL.kind]: "pool" })) {
          if (c.state !== "running") continue;
          const r = await launcherRequest(path.join(s.dataDir, "workspaces", ".launch", c.name, "s"), { op: "ping" }, 2000);
          if (r?.ok && Number(r.pings) >= 2) return true;
        }
        return undefined;
      },
      60_000,
      "a warm container",
    );
  // Different project ids per case keep the cases independent; the pool is refilled before each pooled run.
  let seq = 0;
  const metadataFor = (mode: Mode): Record<string, unknown> => (mode === "project" ? { isolation: "docker", project_id: `launch-${++seq}` } : { isolation: "docker" });
  const start = async (mode: Mode, text: string, extra: Record<string, unknown> = {}) => {
    if (mode === "pool") await poolReady();
    return createRun(s, token, text, { agent_type: "shell", ...metadataFor(mode), ...extra });
  };
  const events = (id: string) => allEvents(s, token, id, 90_000);
  const containerOf = (evs: Ev[]) => evs.find((e) => e.type === "run.started")!.data.container_id as string;
  const processesOfRun = async (cid: string, runId: string) => Number((await client.get(cid).execCollect({ argv: ["/bin/sh", "-c", COUNT, "count", `OPENRUNNER_RUN_ID=${runId}`], cwd: "/" })).stdout.trim());
  const checkKind = (evs: Ev[], mode: Mode) => {
    const created = evs.find((e) => e.type === "container.created");
    if (mode === "pool") assert.equal(created?.data.pool, true, `a pooled container\n${describeEvents(evs)}`);
  };

  before(async () => {
    client = await connectDocker();
    if (!(await client.imageInfo(BASE_IMAGE))) await buildAgentImage({ client, offline: true, tag: BASE_IMAGE });
    await buildFixtureAgentImage(client, BASE_IMAGE, IMAGE);
    confFile = writeConfig({ docker: { image: IMAGE, warm_pool: 1, memory_mb: 128, pids_limit: 64 }, acp_agents: dockerFixtureAcpAgents(IMAGE) });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: confFile, OPENRUNNER_MAX_CONCURRENT_RUNS: "4", ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    token = await s.login();
    instance = readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();
  });

  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
    if (client && instance) for (const c of await client.list({ [LABEL.instance]: instance }).catch(() => [])) await client.get(c.id).remove();
  });

  for (const mode of MODES) {
    test(`${mode}: the run's process is the launcher's child (no engine exec), as uid 1000 in /workspace with the run's HOME`, T, async () => {
      const id = await start(mode, `id -u; pwd; echo "$HOME"; tr '\\0' ' ' < /proc/$PPID/cmdline; echo`);
      const evs = await events(id);
      assert.equal(evs.at(-1)!.type, "run.completed", describeEvents(evs));
      checkKind(evs, mode);
      const [uid, pwd, home, parent] = stdoutOf(evs);
      assert.equal(uid, "1000");
      assert.equal(pwd, "/workspace");
      assert.match(home!, mode === "pool" ? /^\/home\/agent$/ : /^\/home\/agent\/runs\/run_/);
      assert.match(parent!, /node .*\/opt\/openrunner\/launcher\.mjs \/run\/openrunner\/s/, "the parent is the launcher (an engine exec's parent is outside the container: PPID 0)");
    });

    test(`${mode}: cancel kills the run's whole tree (also a child in its own session)`, T, async () => {
      const id = await start(mode, "setsid sleep 301 & sleep 300 & echo up; wait");
      const seen = await eventsUntil(s, token, id, (e) => e.type === "log" && e.data.text === "up");
      const cid = containerOf(seen);
      const launchDir = path.join(s.dataDir, "workspaces", ".launch", (await client.get(cid).inspect()).name);
      assert.ok(existsSync(path.join(launchDir, "s")), "the launcher's socket is in the container's directory");
      assert.equal((await s.api(`/api/runs/${id}/cancel`, { method: "POST", token })).status, 202);
      const evs = await events(id);
      assert.equal(evs.at(-1)!.type, "run.cancelled", describeEvents(evs));
      if (mode === "pool") {
        assert.deepEqual(await client.list({ [LABEL.runId]: id }), []);
        await assert.rejects(client.get(cid).inspect(), /not found/, "the pooled container is removed");
        assert.equal(existsSync(launchDir), false, "and its launcher directory");
      } else {
        assert.equal((await client.get(cid).inspect()).running, true, "the project container stays");
        assert.equal(await processesOfRun(cid, id), 0, "no process of the cancelled run is left");
      }
    });

    test(`${mode}: a process over the memory limit ends the run oom_killed`, T, async () => {
      const id = await start(mode, `node -e "const a=[];for(;;)a.push(Buffer.alloc(4e6,1))"`);
      const evs = await events(id);
      checkKind(evs, mode);
      assert.equal(evs.at(-1)!.type, "run.failed", describeEvents(evs));
      assert.equal(evs.at(-1)!.data.error.code, "oom_killed", JSON.stringify(evs.at(-1)));
      assert.match(evs.at(-1)!.data.error.message, /128 MiB/);
      if (mode === "project") {
        // The launcher survived the OOM kill: the project's next run still starts through it.
        const cid = containerOf(evs);
        const again = await createRun(s, token, "tr '\\0' ' ' < /proc/$PPID/cmdline; echo", { agent_type: "shell", isolation: "docker", project_id: `launch-${seq}` });
        const e2 = await events(again);
        assert.equal(containerOf(e2), cid);
        assert.match(stdoutOf(e2)[0] ?? "", /launcher\.mjs/, describeEvents(e2));
      }
    });

    test(`${mode}: the PID limit holds and there is no network`, T, async () => {
      const script = [
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ','; echo",
        // A subshell forks sleeps until the limit stops it; counted and killed with builtins only (no fork is left).
        "( i=0; while [ $i -lt 100 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done ) 2>/dev/null",
        "set -- /proc/[0-9]*; echo running $#",
        'for d in /proc/[0-9]*; do read -r c < "$d/comm" && [ "$c" = sleep ] && kill "${d#/proc/}"; done 2>/dev/null',
      ].join("\n");
      const id = await start(mode, script);
      const evs = await events(id);
      checkKind(evs, mode);
      const [max, nets, running] = stdoutOf(evs);
      assert.equal(max, "64", describeEvents(evs));
      assert.equal(nets, "lo,", "only the loopback interface");
      const n = Number(/^running (\d+)$/.exec(running ?? "")?.[1]);
      assert.ok(n > 32 && n <= 64, `100 sleeps were asked for, at most 64 processes may exist: saw ${running}`);
    });
  }

  for (const mode of MODES) {
    test(`${mode}: an ACP agent speaks over its stdin through the launcher; its terminal runs there too`, T, async () => {
      if (mode === "pool") await poolReady();
      const steps = [{ session: true }, { terminal: { command: "sh", args: ["-c", "tr '\\0' ' ' < /proc/$PPID/cmdline"] } }, { chunks: ["over ", "stdin"] }];
      const id = await createRun(s, token, JSON.stringify({ steps }), { agent_type: "acp", acp_agent: "fixture-docker", ...metadataFor(mode) });
      const evs = await events(id);
      assert.equal(evs.at(-1)!.type, "run.completed", describeEvents(evs));
      checkKind(evs, mode);
      const text = evs.filter((e) => e.type === "message").map((e) => e.data.text).join("");
      assert.ok(text.endsWith("over stdin"), text);
      assert.match(text, /terminal exit=0 [^\n]*launcher\.mjs/, `the terminal's parent is the launcher\n${text}`);
    });
  }
});
