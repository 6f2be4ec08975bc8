/**
 * What OpenRunner answers to an ACP agent's requests during one run: permissions through the
 * run's {@link PermissionGate} (A2's `src/run/permissions.ts`), the file system confined to
 * the workspace (`fs.ts`), and terminals (`terminal.ts`, or `terminal-container.ts` for a run in
 * a container). A refused path becomes a JSON-RPC error for the agent and a `log` event for
 * the run. For a run in a container, `containerPaths` maps the agent's paths (`/workspace/…`)
 * onto the host workspace before the same checks.
 */
import { RequestError } from "@agentclientprotocol/sdk";
import type * as acp from "@agentclientprotocol/sdk";
import type { RunEventInput } from "../../protocol/events.ts";
import type { PermissionAnswer, PermissionGate, PermissionOption } from "../permissions.ts";
import type { AcpClientHandlers } from "./connection.ts";
import { containerPathToHost, readWorkspaceFile, WorkspacePathError, writeWorkspaceFile, type ContainerPathMap } from "./fs.ts";
import { TerminalError, type AcpTerminals } from "./terminal-core.ts";
import type { RunAs } from "../run-as.ts";

/** What the handlers need from the run. */
export interface RunHandlerOptions {
  /** The run's workspace: the root of every fs path and terminal cwd. */
  root: string;
  emit: (e: RunEventInput) => void;
  terminals: AcpTerminals;
  /** The agent runs in a container: its fs paths are container paths, mapped with this onto `root` (which must be `hostRoot`). */
  containerPaths?: ContainerPathMap;
  permissions?: PermissionGate;
  /** Aborted when the run is being stopped or has ended (pending permission asks resolve `cancelled`). */
  runSignal: AbortSignal;
  runAs?: RunAs;
  /** Called before a permission request is handed to the gate (the mapper announces held tool calls first). */
  beforePermission?: (toolCall: acp.ToolCallUpdate) => void;
}

/** `signal` that aborts when either input aborts. */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const c = new AbortController();
  const abort = () => c.abort();
  if (a.aborted || b.aborted) c.abort();
  a.addEventListener("abort", abort, { once: true });
  b.addEventListener("abort", abort, { once: true });
  return c.signal;
}

/** ACP permission options in the gate's shape. */
export function toGateOptions(options: acp.PermissionOption[]): PermissionOption[] {
  return options.map((o) => ({ option_id: o.optionId, name: o.name, kind: o.kind }));
}

/** The ACP response for a gate's answer. */
export function toAcpOutcome(answer: PermissionAnswer): acp.RequestPermissionResponse {
  return answer.outcome === "selected" ? { outcome: { outcome: "selected", optionId: answer.option_id } } : { outcome: { outcome: "cancelled" } };
}

/** Creates the request handlers for one run; see the module comment. */
export function createRunHandlers(o: RunHandlerOptions): AcpClientHandlers {
  const onHost = (p: string) => (o.containerPaths ? containerPathToHost(p, o.containerPaths) : p);
  /** The message as the agent sees paths (a containerized agent is not told the host workspace's location). */
  const inAgentTerms = (message: string) => (o.containerPaths ? message.split(o.containerPaths.hostRoot).join(o.containerPaths.containerRoot) : message);
  const refuse = (method: string, path: string, err: unknown): never => {
    if (err instanceof WorkspacePathError) {
      const message = inAgentTerms(err.message);
      if (err.reason === "outside_workspace") {
        o.emit({ type: "log", data: { stream: "stderr", text: `acp: ${method} refused: ${message}`, raw: { method, path, reason: err.reason } } });
        throw RequestError.invalidParams({ path, reason: err.reason }, message);
      }
      if (err.reason === "not_found") throw RequestError.resourceNotFound(path);
      throw RequestError.invalidParams({ path, reason: err.reason }, message);
    }
    throw RequestError.internalError(undefined, inAgentTerms(err instanceof Error ? err.message : String(err)));
  };
  const term = async <T>(method: string, f: () => T | Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      if (!(err instanceof TerminalError)) throw RequestError.internalError(undefined, String(err));
      if (err.reason === "not_found") throw RequestError.resourceNotFound(undefined);
      const message = inAgentTerms(err.message);
      if (err.reason === "outside_workspace") o.emit({ type: "log", data: { stream: "stderr", text: `acp: ${method} refused: ${message}`, raw: { method, reason: err.reason } } });
      throw RequestError.invalidParams({ reason: err.reason }, message);
    }
  };
  return {
    async requestPermission(params, signal) {
      o.beforePermission?.(params.toolCall);
      const options = toGateOptions(params.options);
      const tc = params.toolCall;
      const name = tc.title ?? tc.kind ?? "permission";
      if (!o.permissions) {
        const reject = options.find((x) => x.kind.startsWith("reject"));
        o.emit({ type: "log", data: { stream: "stderr", text: `acp: permission asked for ${name}; no permission gate, answered ${reject ? reject.option_id : "cancelled"}`, raw: params } });
        return toAcpOutcome(reject ? { outcome: "selected", option_id: reject.option_id } : { outcome: "cancelled" });
      }
      const answer = await o.permissions.ask({ call_id: tc.toolCallId, name, input: tc.rawInput ?? tc, options }, eitherSignal(o.runSignal, signal));
      return toAcpOutcome(answer);
    },
    async readTextFile(params) {
      try {
        return { content: await readWorkspaceFile(o.root, onHost(params.path), params.line, params.limit) };
      } catch (err) {
        return refuse("fs/read_text_file", params.path, err);
      }
    },
    async writeTextFile(params) {
      try {
        const file = await writeWorkspaceFile(o.root, onHost(params.path), params.content, o.runAs);
        const requested = o.containerPaths ? { requested: params.path } : {};
        o.emit({ type: "log", data: { stream: "stderr", text: `acp: fs/write_text_file ${file} (${Buffer.byteLength(params.content)} bytes)`, raw: { method: "fs/write_text_file", path: file, ...requested } } });
        return {};
      } catch (err) {
        return refuse("fs/write_text_file", params.path, err);
      }
    },
    createTerminal: (params) => term("terminal/create", async () => ({ terminalId: await o.terminals.create(params) })),
    terminalOutput: (params) => term("terminal/output", () => o.terminals.output(params.terminalId)),
    waitForTerminalExit: (params) => term("terminal/wait_for_exit", () => o.terminals.waitForExit(params.terminalId)),
    killTerminal: (params) => term("terminal/kill", () => (o.terminals.kill(params.terminalId), {})),
    releaseTerminal: (params) => term("terminal/release", () => (o.terminals.release(params.terminalId), {})),
  };
}
