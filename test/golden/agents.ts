/**
 * The agents that have golden transcripts, and how the recorder (`scripts/record-golden.ts`) and
 * the replay test (`test/unit/parse-golden.test.ts`) build their adapters and parsers.
 */
import type { AgentAdapter, LineParser } from "../../src/agent/types.ts";
import { createClaudeCodeAdapter } from "../../src/agent/claude-code/adapter.ts";
import { createClaudeCodeParser } from "../../src/agent/claude-code/parse.ts";
import { createCodexAdapter } from "../../src/agent/codex/adapter.ts";
import { createCodexParser } from "../../src/agent/codex/parse.ts";
import { createOpencodeAdapter } from "../../src/agent/opencode/adapter.ts";
import { createOpencodeParser } from "../../src/agent/opencode/parse.ts";
import { createGeminiAdapter } from "../../src/agent/gemini/adapter.ts";
import { createGeminiParser } from "../../src/agent/gemini/parse.ts";

/** Golden folder names under `test/golden/`. */
export const GOLDEN_AGENTS = ["claude-code", "codex", "opencode", "gemini"] as const;
/** One golden folder name. */
export type GoldenAgent = (typeof GOLDEN_AGENTS)[number];

/** A fresh parser for replaying one golden transcript. */
export function createGoldenParser(agent: GoldenAgent): LineParser {
  switch (agent) {
    case "claude-code":
      return createClaudeCodeParser();
    case "codex":
      return createCodexParser();
    case "opencode":
      return createOpencodeParser();
    case "gemini":
      return createGeminiParser();
  }
}

/**
 * An adapter pointed at the scripted model server at `url` with the fake key `sk-test`.
 * @param maxRetries caps the CLI's retries where it has a knob (error cases).
 */
export function createGoldenAdapter(agent: GoldenAgent, url: string, maxRetries?: number): AgentAdapter {
  const common = { api_key: "sk-test", ...(maxRetries === undefined ? {} : { max_retries: maxRetries }) };
  switch (agent) {
    case "claude-code":
      return createClaudeCodeAdapter({ ...common, base_url: url }, process.env);
    case "codex":
      return createCodexAdapter({ ...common, base_url: `${url}/v1`, model: "gpt-5.5" }, process.env);
    case "opencode":
      return createOpencodeAdapter({ ...common, base_url: `${url}/v1`, model: "fake-model" }, process.env);
    case "gemini":
      return createGeminiAdapter({ ...common, base_url: url, model: "gemini-2.5-flash" }, process.env);
  }
}
