/**
 * The agents that have golden transcripts, and how the recorder (`scripts/record-golden.ts`) and
 * the replay test (`test/unit/parse-golden.test.ts`) build their adapters and parsers.
 */
import { readdirSync } from "node:fs";
import type { AgentAdapter, LineParser } from "../../src/agent/types.ts";
import { createClaudeCodeAdapter } from "../../src/agent/claude-code/adapter.ts";
import { createClaudeCodeParser } from "../../src/agent/claude-code/parse.ts";
import { createCodexAdapter } from "../../src/agent/codex/adapter.ts";
import { createCodexParser } from "../../src/agent/codex/parse.ts";
import { createOpencodeAdapter } from "../../src/agent/opencode/adapter.ts";
import { createOpencodeParser } from "../../src/agent/opencode/parse.ts";
import { createGeminiAdapter } from "../../src/agent/gemini/adapter.ts";
import { createGeminiParser } from "../../src/agent/gemini/parse.ts";

/**
 * Golden agents. Each has `test/golden/<agent>/` recorded from the pinned version
 * (`scripts/agents.lock.json`) and may have `test/golden/<agent>@<version>/` folders recorded
 * from other versions (for example the registry's latest when it changed the output format).
 */
export const GOLDEN_AGENTS = ["claude-code", "codex", "opencode", "gemini"] as const;
/** One golden agent. */
export type GoldenAgent = (typeof GOLDEN_AGENTS)[number];

/**
 * The golden folders under `test/golden/`: `<agent>` and `<agent>@<version>`, with their agent.
 * @param goldenDir absolute path of `test/golden/`.
 */
export function listGoldenFolders(goldenDir: string): Array<{ agent: GoldenAgent; folder: string }> {
  const out: Array<{ agent: GoldenAgent; folder: string }> = [];
  for (const entry of readdirSync(goldenDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const agent = entry.name.split("@")[0] as GoldenAgent;
    if (GOLDEN_AGENTS.includes(agent)) out.push({ agent, folder: entry.name });
  }
  return out.sort((a, b) => a.folder.localeCompare(b.folder));
}

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
 * @param command the CLI's path (default: PATH, then `.agents/bin`), e.g. another version's install.
 * @param model the model to configure instead of the agent's golden default (`gpt-5.5` for codex …);
 *   `null` configures none, so the CLI uses its own default (codex >= 0.169: a code-mode model).
 */
export function createGoldenAdapter(agent: GoldenAgent, url: string, maxRetries?: number, command?: string, model?: string | null): AgentAdapter {
  const pick = (fallback: string) => (model === null ? {} : { model: model ?? fallback });
  const common = { api_key: "sk-test", ...(maxRetries === undefined ? {} : { max_retries: maxRetries }), ...(command ? { command } : {}) };
  switch (agent) {
    case "claude-code":
      return createClaudeCodeAdapter({ ...common, base_url: url, ...(typeof model === "string" ? { model } : {}) }, process.env);
    case "codex":
      return createCodexAdapter({ ...common, base_url: `${url}/v1`, ...pick("gpt-5.5") }, process.env);
    case "opencode":
      return createOpencodeAdapter({ ...common, base_url: `${url}/v1`, ...pick("fake-model") }, process.env);
    case "gemini":
      return createGeminiAdapter({ ...common, base_url: url, ...pick("gemini-2.5-flash") }, process.env);
  }
}
