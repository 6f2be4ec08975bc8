/**
 * The agent registry: adapters by name, with cached health detection for
 * /health/agents and admission checks for POST /api/runs.
 */
import { AgentUnavailableError, ValidationError } from "../errors.ts";
import type { AgentAdapter, AgentHealth } from "./types.ts";
import { withTestedVersion } from "./tested-versions.ts";

/** Options of an {@link AgentRegistry}. */
export interface AgentRegistryOptions {
  /** How long a detection result is reused, in ms (default 60 000). */
  healthTtlMs?: number;
  /**
   * Tested version per health entry name (`testedVersionsOf(readAgentsLock())`): entries with a pin
   * get `tested_version` and `tested` in {@link AgentRegistry.health}. Default: none.
   */
  tested?: ReadonlyMap<string, string>;
}

/** See the module comment. */
export class AgentRegistry {
  readonly #adapters = new Map<string, AgentAdapter>();
  readonly #cache = new Map<string, { at: number; health: Promise<AgentHealth> }>();
  readonly #healthTtlMs: number;
  readonly #tested: ReadonlyMap<string, string>;

  constructor(adapters: AgentAdapter[], options: AgentRegistryOptions = {}) {
    for (const a of adapters) this.#adapters.set(a.name, a);
    this.#healthTtlMs = options.healthTtlMs ?? 60_000;
    this.#tested = options.tested ?? new Map();
  }

  /** Registered agent names. */
  names(): string[] {
    return [...this.#adapters.keys()];
  }

  /** The adapter, or undefined. */
  get(name: string): AgentAdapter | undefined {
    return this.#adapters.get(name);
  }

  /** Health of one agent (cached); a throwing detect() reports unavailable with its message. */
  detect(name: string): Promise<AgentHealth> {
    const adapter = this.#adapters.get(name);
    if (!adapter) return Promise.resolve({ agent: name, available: false, reason: "unknown agent" });
    const hit = this.#cache.get(name);
    if (hit && Date.now() - hit.at < this.#healthTtlMs) return hit.health;
    const health = adapter.detect().catch((err: unknown) => ({
      agent: name,
      available: false,
      reason: err instanceof Error ? err.message : String(err),
    }));
    this.#cache.set(name, { at: Date.now(), health });
    return health;
  }

  /**
   * Health of every agent, in registration order; an adapter with `subHealth()` (the `acp`
   * adapter: one entry per configured ACP agent, `acp:<name>`) adds its entries after its own.
   * Entries with a tested version carry `tested_version` and `tested`.
   */
  async health(): Promise<AgentHealth[]> {
    const all = await Promise.all(
      this.names().map(async (n) => {
        const sub = (this.#adapters.get(n) as { subHealth?: () => Promise<AgentHealth[]> } | undefined)?.subHealth;
        return [await this.detect(n), ...(sub ? await sub.call(this.#adapters.get(n)) : [])];
      }),
    );
    return all.flat().map((h) => withTestedVersion(h, this.#tested));
  }

  /**
   * The adapter for a run.
   * @throws ValidationError `unknown_agent` (400) for an unregistered name
   * @throws AgentUnavailableError (503) when detection says it cannot run here
   */
  async require(name: string): Promise<AgentAdapter> {
    const adapter = this.#adapters.get(name);
    if (!adapter) throw new ValidationError(`unknown agent_type ${JSON.stringify(name)}; known: ${this.names().join(", ")}`, { field: "metadata.agent_type" }, "unknown_agent");
    const health = await this.detect(name);
    if (!health.available) throw new AgentUnavailableError(name, health.reason ?? "not available");
    return adapter;
  }
}
