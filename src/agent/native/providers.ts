/**
 * The model providers of the `openrunner` agent (`providers.<name>` in the configuration): a
 * run's `metadata.model` (else `native.model`) is `<provider>/<model>`, the model name being
 * everything after the first `/` (`openai/gpt-5.5`, `local/qwen/qwen3-coder`). Each provider
 * names its wire API (`responses`, `chat`, `anthropic`), base URL, key (`api_key`, else the
 * server environment's `api_key_env`), SDK retries (`max_retries`, default 2) and prices.
 * The SDK clients are made once per provider and never read the environment themselves; keys
 * never reach a log line or an event.
 */
import { ValidationError } from "../../errors.ts";
import { RunFailure } from "../../protocol/errors.ts";
import type { ModelPrice } from "./pricing.ts";
import { createAnthropicWire } from "./wire/anthropic.ts";
import { createChatWire } from "./wire/chat.ts";
import { createResponsesWire } from "./wire/responses.ts";
import type { WireClient } from "./wire/types.ts";

/** `providers.<name>` from the configuration. */
export interface ProviderConfig {
  api: "responses" | "chat" | "anthropic";
  base_url?: string;
  api_key?: string;
  api_key_env?: string;
  max_retries?: number;
  timeout_ms?: number;
  prices?: Record<string, ModelPrice>;
}

/** A run's model, resolved. */
export interface ResolvedModel {
  /** `<provider>/<model>` as the run named it. */
  ref: string;
  provider: string;
  /** The model name at the provider. */
  model: string;
  api: ProviderConfig["api"];
  wire: WireClient;
  price?: ModelPrice;
}

/** Default SDK retries when a provider sets none (the SDKs' own default). */
export const DEFAULT_MAX_RETRIES = 2;
/** Default timeout of one model request, ms. */
export const DEFAULT_MODEL_TIMEOUT_MS = 600_000;

/**
 * Splits `<provider>/<model>`.
 * @throws RunFailure `model_error` for a reference without both parts
 * @example parseModelRef("local/qwen/qwen3") // { provider: "local", model: "qwen/qwen3" }
 */
export function parseModelRef(ref: string): { provider: string; model: string } {
  const i = ref.indexOf("/");
  if (i <= 0 || i === ref.length - 1) throw new RunFailure("model_error", `model ${JSON.stringify(ref)} is not <provider>/<model>`);
  return { provider: ref.slice(0, i), model: ref.slice(i + 1) };
}

/** The configured providers; see the module comment. */
export interface ProviderSet {
  /** Provider names, in configuration order. */
  names(): string[];
  /**
   * Resolves a model reference (undefined: the default model).
   * @throws RunFailure `model_error` (no model, unknown provider), `auth_failed` (no key where one is needed)
   */
  resolve(ref: string | undefined): ResolvedModel;
  /**
   * Checks a run's model reference at creation (undefined: the default model), without making a client.
   * @throws ValidationError 400 `invalid_model` (no model, not `<provider>/<model>`), `unknown_provider`
   */
  check(ref: string | undefined): void;
}

/**
 * Creates the provider set.
 * @param env the server's environment (for `api_key_env`)
 */
export function createProviderSet(providers: Record<string, ProviderConfig>, env: Readonly<Record<string, string | undefined>>, defaultModel?: string): ProviderSet {
  const clients = new Map<string, WireClient>();
  const wireOf = (name: string, p: ProviderConfig): WireClient => {
    const hit = clients.get(name);
    if (hit) return hit;
    const key = p.api_key ?? (p.api_key_env ? env[p.api_key_env] : undefined);
    if (!key && p.api !== "chat")
      throw new RunFailure("auth_failed", `provider ${name} has no API key: set providers.${name}.api_key, or api_key_env${p.api_key_env ? ` (${p.api_key_env} is not set in the server's environment)` : ""}`);
    const o = { apiKey: key ?? "not-set", maxRetries: p.max_retries ?? DEFAULT_MAX_RETRIES, timeoutMs: p.timeout_ms ?? DEFAULT_MODEL_TIMEOUT_MS, ...(p.base_url ? { baseURL: p.base_url } : {}) };
    const wire = p.api === "anthropic" ? createAnthropicWire(o) : p.api === "responses" ? createResponsesWire(o) : createChatWire(o);
    clients.set(name, wire);
    return wire;
  };
  const configured = () => Object.keys(providers).join(", ") || "none";
  return {
    names: () => Object.keys(providers),
    check(ref) {
      const r = ref ?? defaultModel;
      const field = ref === undefined ? "native.model" : "metadata.model";
      if (!r) throw new ValidationError("no model: set metadata.model to <provider>/<model>, or native.model in the configuration", { field: "metadata.model" }, "invalid_model");
      const i = r.indexOf("/");
      if (i <= 0 || i === r.length - 1) throw new ValidationError(`model ${JSON.stringify(r)} is not <provider>/<model>`, { field }, "invalid_model");
      const provider = r.slice(0, i);
      if (!Object.hasOwn(providers, provider)) throw new ValidationError(`unknown provider ${JSON.stringify(provider)} in model ${JSON.stringify(r)}; configured: ${configured()}`, { field, provider }, "unknown_provider");
    },
    resolve(ref) {
      const r = ref ?? defaultModel;
      if (!r) throw new RunFailure("model_error", "no model: set metadata.model to <provider>/<model>, or native.model in the configuration");
      const { provider, model } = parseModelRef(r);
      const p = Object.hasOwn(providers, provider) ? providers[provider] : undefined;
      if (!p) throw new RunFailure("model_error", `unknown provider ${JSON.stringify(provider)} in model ${JSON.stringify(r)}; configured: ${Object.keys(providers).join(", ") || "none"}`);
      const price = p.prices && Object.hasOwn(p.prices, model) ? p.prices[model] : undefined;
      return { ref: r, provider, model, api: p.api, wire: wireOf(provider, p), ...(price ? { price } : {}) };
    },
  };
}
