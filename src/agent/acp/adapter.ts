/**
 * The `acp` adapter (`metadata.agent_type: "acp"`, `metadata.acp_agent: "<name>"`): any Agent
 * Client Protocol agent over stdio, OpenRunner being the client. The agents are the
 * configured `acp_agents` merged over the built-ins (`agents.ts`); each is probed with
 * `initialize` for /health/agents (`probe.ts`, cached: a success for the adapter's life, a
 * failure for `failureTtlMs`). A run is bound to one agent by {@link AcpAdapter.forRun} and
 * runs in the ACP actor (`actor.ts`), not the line-parsing process actor.
 *
 * Docker runs (`isolation: "docker"`) start the agent inside the run's container from its
 * image (`acp_agents.<name>.image`, default `docker.image`): the host probe is then only
 * advisory (version, `loadSession`), and a binary missing from the image fails the run with
 * `exec_failed`.
 */
import { AgentUnavailableError, ConfigError, ValidationError } from "../../errors.ts";
import type { ServerEnv } from "../cli-support.ts";
import type { AgentAdapter, AgentHealth, AgentRunContext, LineParser } from "../types.ts";
import { BUILTIN_ACP_AGENTS, buildAcpCommand, findAcpBinary, resolveAcpAgents, type AcpAgentConfig, type AcpAgentSpec, type AcpMcpServer } from "./agents.ts";
import { probeAcpAgent, type AcpAgentHealth } from "./probe.ts";

/** The adapter bound to one ACP agent for one run. */
export interface AcpRunAdapter extends AgentAdapter {
  /** The bound agent: its name, MCP servers for `session/new`, host health, and the image of its docker runs (when configured). */
  readonly acp: { agent: string; mcpServers: AcpMcpServer[]; health: AcpAgentHealth; image?: string };
}

/** The `acp` adapter; see the module comment. */
export interface AcpAdapter extends AgentAdapter {
  readonly kind: "acp";
  /** Configured agent names (built-ins first). */
  agentNames(): string[];
  /** Health of one ACP agent (cached). */
  detectAgent(name: string): Promise<AcpAgentHealth>;
  /** Health of every ACP agent, for /health/agents. */
  subHealth(): Promise<AcpAgentHealth[]>;
  /**
   * Checks a run's `acp_agent` and binds the adapter to it.
   * With `docker` the agent runs in the run's container: the host probe does not decide availability.
   * @throws ValidationError 400 `acp_agent_required`, `unknown_acp_agent`, `resume_unsupported` (the agent does not advertise `loadSession`), `resume_agent_mismatch`
   * @throws AgentUnavailableError 503 when the agent cannot run on the host (host runs only)
   */
  forRun(name: string | undefined, opts?: { resume?: boolean; resumedAgent?: unknown; docker?: boolean }): Promise<AcpRunAdapter>;
}

/** True for the `acp` adapter. */
export function isAcpAdapter(a: AgentAdapter): a is AcpAdapter {
  return (a as Partial<AcpAdapter>).kind === "acp";
}

/** True for an adapter bound by {@link AcpAdapter.forRun}. */
export function isAcpRunAdapter(a: AgentAdapter): a is AcpRunAdapter {
  return typeof (a as Partial<AcpRunAdapter>).acp === "object";
}

/** Never used by ACP runs (they have no output lines); fails a run started in the wrong actor. */
function wrongActorParser(): LineParser {
  return {
    parseLine: (line) => [{ type: "log", data: { stream: "stdout", text: line } }],
    parseStderr: (line) => [{ type: "log", data: { stream: "stderr", text: line } }],
    end: () => [],
    outcome: () => ({ kind: "failed", code: "internal", message: "an acp run was started outside the ACP actor" }),
  };
}

/**
 * Creates the adapter.
 * @param config `acp_agents` from the configuration
 * @throws ConfigError when an entry that is not a built-in has no `command`
 * @param serverEnv the server's environment (PATH, LANG, vendor defaults such as ANTHROPIC_API_KEY)
 * @example
 * const acp = createAcpAdapter({ fixture: { command: "node", args: ["agent.js"] } }, process.env);
 * const bound = await acp.forRun("fixture"); // then run it with acpActor
 */
export function createAcpAdapter(config: Record<string, AcpAgentConfig> = {}, serverEnv: ServerEnv = {}, failureTtlMs = 60_000): AcpAdapter {
  const { agents, invalid } = resolveAcpAgents(config);
  if (invalid.length > 0) throw new ConfigError(`acp_agents.${invalid[0]}.command`, `a command (${invalid[0]} is not a built-in ACP agent: ${Object.keys(BUILTIN_ACP_AGENTS).join(", ")})`, undefined);
  const specs = new Map<string, AcpAgentSpec>(agents.map((a) => [a.name, a]));
  const cache = new Map<string, { at: number; health: Promise<AcpAgentHealth> }>();

  const detectAgent = (name: string): Promise<AcpAgentHealth> => {
    const spec = specs.get(name);
    if (!spec) return Promise.resolve({ agent: `acp:${name}`, acp_agent: name, available: false, reason: "unknown ACP agent" });
    const hit = cache.get(name);
    if (hit && (Date.now() - hit.at < failureTtlMs || hit.at === Infinity)) return hit.health;
    const health = probeAcpAgent(spec, serverEnv);
    cache.set(name, { at: Date.now(), health });
    void health.then((h) => {
      if (h.available && cache.get(name)?.health === health) cache.set(name, { at: Infinity, health });
    });
    return health;
  };

  const adapter: AcpAdapter = {
    name: "acp",
    kind: "acp",
    agentNames: () => [...specs.keys()],
    detectAgent,
    subHealth: () => Promise.all([...specs.keys()].map(detectAgent)),
    async detect(): Promise<AgentHealth> {
      // Cheap: the adapter is available when some configured agent's binary exists (each one's own entry says which).
      const found = await Promise.all(agents.map(async (a) => ((await findAcpBinary(a, serverEnv)) ? a.name : undefined)));
      const names = found.filter((n): n is string => n !== undefined);
      return names.length > 0
        ? { agent: "acp", available: true }
        : { agent: "acp", available: false, reason: `no ACP agent installed (configured: ${[...specs.keys()].join(", ")}; run scripts/install-agents.sh --acp)` };
    },
    command() {
      throw new ValidationError("metadata.acp_agent is required for agent_type acp", { field: "metadata.acp_agent" }, "acp_agent_required");
    },
    createParser: wrongActorParser,
    async forRun(name, opts = {}) {
      const known = [...specs.keys()].join(", ");
      if (!name) throw new ValidationError(`metadata.acp_agent is required for agent_type acp; configured: ${known}`, { field: "metadata.acp_agent" }, "acp_agent_required");
      const spec = specs.get(name);
      if (!spec) throw new ValidationError(`unknown acp_agent ${JSON.stringify(name)}; configured: ${known}`, { field: "metadata.acp_agent" }, "unknown_acp_agent");
      if (opts.resume && opts.resumedAgent !== undefined && opts.resumedAgent !== name)
        throw new ValidationError(`the resumed run used acp_agent ${String(opts.resumedAgent)}, not ${name}`, { field: "metadata.resume" }, "resume_agent_mismatch");
      const health = await detectAgent(name);
      // In a container the image decides; the host probe only tells what it knows (the actor checks loadSession again at initialize).
      if (!health.available && !opts.docker) throw new AgentUnavailableError(`acp:${name}`, health.reason ?? "not available");
      if (opts.resume && health.available && health.capabilities?.loadSession !== true)
        throw new ValidationError(`ACP agent ${name} does not support resuming a session (no loadSession capability)`, { field: "metadata.resume" }, "resume_unsupported");
      return {
        name: "acp",
        acp: { agent: name, mcpServers: spec.options.mcp_servers ?? [], health, ...(spec.options.image ? { image: spec.options.image } : {}) },
        detect: async () => ({ agent: "acp", available: health.available, ...(health.version ? { version: health.version } : {}), ...(health.path ? { path: health.path } : {}) }),
        async command(ctx: AgentRunContext) {
          if (ctx.in_container) return buildAcpCommand(spec, spec.command, ctx, serverEnv);
          const bin = await findAcpBinary(spec, serverEnv);
          if (!bin) throw new AgentUnavailableError(`acp:${name}`, `${spec.command} not found`);
          return buildAcpCommand(spec, bin, ctx, serverEnv);
        },
        createParser: wrongActorParser,
      };
    },
  };
  return adapter;
}
