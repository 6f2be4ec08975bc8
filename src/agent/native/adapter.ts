/**
 * The `openrunner` adapter (`metadata.agent_type: "openrunner"`): OpenRunner's own agent, a model
 * loop on the vendors' SDKs with its own tools (`src/agent/native/`), for a user who has an API
 * key (OpenAI, Anthropic, or any OpenAI-compatible server) and no agent CLI. It has no command
 * and no parser: its runs are executed by {@link nativeActor} (`actor.ts`), which the run
 * manager takes from the adapter's `actor`.
 *
 * Available when at least one provider is configured (`providers.<name>`); the model of a run is
 * `metadata.model` (`<provider>/<model>`), else `native.model`.
 */
import { RunFailure } from "../../protocol/errors.ts";
import type { NativeSessionRepo } from "../../store/types.ts";
import type { AgentAdapter, AgentHealth, LineParser } from "../types.ts";
import { nativeActor } from "./actor.ts";
import type { LoopLimits } from "./loop.ts";
import { createProviderSet, DEFAULT_MAX_RETRIES, type ProviderConfig, type ProviderSet } from "./providers.ts";
import { createNativeTools, type NativeTool } from "./tools/index.ts";

/** `native` from the configuration. */
export interface NativeConfig {
  model?: string;
  max_turns: number;
  max_tokens?: number;
  max_cost_usd?: number;
  max_output_tokens: number;
  bash_timeout_ms: number;
  bash_max_timeout_ms: number;
  bash_output_bytes: number;
  system_prompt?: string;
}

/** What the native actor reads from its adapter. */
export interface NativeRuntime {
  providers: ProviderSet;
  sessions: NativeSessionRepo;
  tools: readonly NativeTool[];
  limits: LoopLimits;
  systemPrompt?: string;
  /** The SDK retries of a provider. */
  maxRetries(provider: string): number;
}

/** The adapter; see the module comment. */
export interface NativeAdapter extends AgentAdapter {
  readonly kind: "native";
  readonly native: NativeRuntime;
}

/** True for the `openrunner` adapter. */
export function isNativeAdapter(a: AgentAdapter): a is NativeAdapter {
  return (a as Partial<NativeAdapter>).kind === "native";
}

/** The `native` settings' defaults (the schema's). */
export const NATIVE_DEFAULTS: NativeConfig = { max_turns: 50, max_output_tokens: 8192, bash_timeout_ms: 120_000, bash_max_timeout_ms: 600_000, bash_output_bytes: 64 * 1024 };

/** Options of {@link createNativeAdapter}. */
export interface NativeAdapterOptions {
  providers: Record<string, ProviderConfig>;
  native?: Partial<NativeConfig>;
  /** Where conversations are kept (`store.nativeSessions`). */
  sessions: NativeSessionRepo;
  /** The server's environment (for `providers.<p>.api_key_env`). */
  serverEnv: Readonly<Record<string, string | undefined>>;
}

/** Never used (the native actor runs these runs); fails a run started in the wrong actor. */
function wrongActorParser(): LineParser {
  return {
    parseLine: () => [],
    parseStderr: () => [],
    end: () => [],
    outcome: () => ({ kind: "failed", code: "internal", message: "an openrunner run was started outside the native actor" }),
  };
}

/**
 * Creates the adapter.
 * @example
 * const native = createNativeAdapter({ providers: { openai: { api: "responses", api_key_env: "OPENAI_API_KEY" } }, sessions: store.nativeSessions, serverEnv: process.env });
 */
export function createNativeAdapter(o: NativeAdapterOptions): NativeAdapter {
  const cfg: NativeConfig = { ...NATIVE_DEFAULTS, ...o.native };
  const providers = createProviderSet(o.providers, o.serverEnv, cfg.model);
  const tools = createNativeTools({ timeoutMs: cfg.bash_timeout_ms, maxTimeoutMs: cfg.bash_max_timeout_ms, maxOutputBytes: cfg.bash_output_bytes });
  return {
    name: "openrunner",
    kind: "native",
    native: {
      providers,
      sessions: o.sessions,
      tools,
      limits: { maxTurns: cfg.max_turns, maxOutputTokens: cfg.max_output_tokens, ...(cfg.max_tokens !== undefined ? { maxTokens: cfg.max_tokens } : {}), ...(cfg.max_cost_usd !== undefined ? { maxCostUsd: cfg.max_cost_usd } : {}) },
      ...(cfg.system_prompt ? { systemPrompt: cfg.system_prompt } : {}),
      maxRetries: (p) => o.providers[p]?.max_retries ?? DEFAULT_MAX_RETRIES,
    },
    async detect(): Promise<AgentHealth> {
      const names = providers.names();
      return names.length > 0 ? { agent: "openrunner", available: true } : { agent: "openrunner", available: false, reason: "no model provider configured (providers.<name> in the configuration file)" };
    },
    command() {
      throw new RunFailure("internal", "the openrunner agent has no command; its runs are executed by the native actor");
    },
    checkRun: (metadata) => providers.check(metadata.model),
    createParser: wrongActorParser,
    actor: nativeActor,
  };
}
