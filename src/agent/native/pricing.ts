/**
 * Cost of a model request from the configured price table (`providers.<p>.prices.<model>`, USD
 * per million tokens). A model without a price costs nothing known: no `cost_usd` at all.
 */
import type { Usage } from "../../protocol/events.ts";
import type { TurnUsage } from "./wire/types.ts";

/** USD per million tokens of one model. Cache prices default to the input price. */
export interface ModelPrice {
  input_per_mtok: number;
  output_per_mtok: number;
  cache_read_per_mtok?: number;
  cache_write_per_mtok?: number;
}

/**
 * The cost of one request, USD; undefined without a price. OpenAI counts cached tokens inside
 * `input_tokens`, Anthropic apart from them (`usage.input_includes_cache`).
 * @example costOf({ input_tokens: 1000, output_tokens: 500, input_includes_cache: false }, { input_per_mtok: 3, output_per_mtok: 15 }) // 0.0105
 */
export function costOf(usage: TurnUsage, price: ModelPrice | undefined): number | undefined {
  if (!price) return undefined;
  const cacheRead = usage.cache_read_tokens ?? 0;
  const cacheWrite = usage.cache_write_tokens ?? 0;
  const plainInput = usage.input_includes_cache ? Math.max(0, usage.input_tokens - cacheRead - cacheWrite) : usage.input_tokens;
  const usd =
    plainInput * price.input_per_mtok +
    cacheRead * (price.cache_read_per_mtok ?? price.input_per_mtok) +
    cacheWrite * (price.cache_write_per_mtok ?? price.input_per_mtok) +
    usage.output_tokens * price.output_per_mtok;
  return usd / 1e6;
}

/** The `usage` event data of one request (tokens as the vendor counts them, cost when known). */
export function usageEventData(usage: TurnUsage, cost: number | undefined): Usage {
  return {
    input_tokens: usage.input_tokens,
    output_tokens: usage.output_tokens,
    ...(usage.cache_read_tokens ? { cache_read_tokens: usage.cache_read_tokens } : {}),
    ...(usage.cache_write_tokens ? { cache_write_tokens: usage.cache_write_tokens } : {}),
    ...(cost !== undefined ? { cost_usd: cost } : {}),
  };
}
