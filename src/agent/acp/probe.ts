/**
 * Health detection of one ACP agent: starts it in a throw-away home and working folder,
 * sends `initialize` (20 s limit), reads the version (`agentInfo.version`) and the
 * capabilities it reports, then ends its process group and removes the folder.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { PROTOCOL_VERSION } from "@agentclientprotocol/sdk";
import type { ServerEnv } from "../cli-support.ts";
import { killProcessGroup } from "../process-actor.ts";
import { buildAcpCommand, findAcpBinary, type AcpAgentSpec } from "./agents.ts";
import { CLIENT_CAPABILITIES, createAcpClient, createStdioStream } from "./connection.ts";
import { createRunHandlers } from "./handlers.ts";
import { TerminalSet } from "./terminal.ts";

/** Health of one ACP agent for /health/agents: `agent` is `acp:<name>`. */
export interface AcpAgentHealth {
  agent: string;
  acp_agent: string;
  available: boolean;
  path?: string;
  version?: string;
  reason?: string;
  /** `agentCapabilities` from `initialize` (e.g. `{loadSession: true, promptCapabilities: {…}}`). */
  capabilities?: Record<string, unknown>;
  protocol_version?: number;
}

const PROBE_TIMEOUT_MS = 20_000;

/** Probes `spec`; never throws (a failure is `available: false` with the reason). */
export async function probeAcpAgent(spec: AcpAgentSpec, serverEnv: ServerEnv): Promise<AcpAgentHealth> {
  const base = { agent: `acp:${spec.name}`, acp_agent: spec.name };
  const bin = await findAcpBinary(spec, serverEnv);
  if (!bin) return { ...base, available: false, reason: `${spec.command} not found on PATH or in .agents/bin (run scripts/install-agents.sh --acp)` };
  const dir = await mkdtemp(join(tmpdir(), "openrunner-acp-detect-"));
  let pid: number | undefined;
  let stderr = "";
  try {
    const ctx = { run_id: "detect", text: "", cwd: dir, home: dir, server_env: serverEnv };
    const cmd = await buildAcpCommand(spec, bin, ctx, serverEnv);
    const child = execa(cmd.argv[0]!, cmd.argv.slice(1), { cwd: dir, env: cmd.env, extendEnv: false, detached: true, stdin: "pipe", buffer: false, reject: false, cleanup: true });
    pid = child.pid;
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-600)));
    const exited = child.then((r) => `exited with ${r.exitCode ?? r.signal ?? "?"}`);
    let malformed: string | undefined;
    const stream = createStdioStream(child.stdin!, child.stdout!, { onMalformed: (line, why) => (malformed ??= `${why}: ${line.slice(0, 200)}`) });
    const terminals = new TerminalSet({ root: dir, env: cmd.env });
    const handlers = createRunHandlers({ root: dir, emit: () => {}, terminals, runSignal: new AbortController().signal });
    const conn = createAcpClient(handlers).connect(stream);
    void conn.closed.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`no initialize answer within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS)));
    const init = conn.agent.request("initialize", { protocolVersion: PROTOCOL_VERSION, clientCapabilities: CLIENT_CAPABILITIES, clientInfo: { name: "openrunner", version: "detect" } });
    const r = await Promise.race([init, exited, timeout]).catch((err: unknown) => `initialize failed: ${err instanceof Error ? err.message : String(err)}`);
    clearTimeout(timer);
    conn.close();
    terminals.disposeAll();
    if (typeof r === "string") return { ...base, available: false, path: bin, reason: `${r}${malformed ? `; malformed output (${malformed})` : ""}${stderr.trim() ? `; stderr: ${stderr.trim()}` : ""}` };
    const version = r.agentInfo?.version ?? undefined;
    return {
      ...base,
      available: true,
      path: bin,
      ...(version ? { version } : {}),
      capabilities: (r.agentCapabilities ?? {}) as Record<string, unknown>,
      protocol_version: r.protocolVersion,
    };
  } catch (err) {
    return { ...base, available: false, path: bin, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    if (pid !== undefined) killProcessGroup(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}
