/**
 * A run's MCP servers (`metadata.mcp_servers`, already checked against the
 * admin's lists by `src/run/mcp-servers.ts`) in each agent's own
 * configuration format, and the server name of an MCP tool call as each agent
 * reports it. Pure functions; the adapters write the files.
 *
 * Formats, from each CLI's documentation:
 * - Claude Code `--mcp-config <file>` (`{"mcpServers": {name: {type: "stdio", command, args, env} | {type: "http", url, headers}}}`,
 *   the `.mcp.json` format; docs.anthropic.com/en/docs/claude-code/mcp); tools are named `mcp__<server>__<tool>`;
 * - Codex `config.toml` `[mcp_servers.<name>]` with `command`, `args`, `[…env]`, or `url` and `http_headers`
 *   (github.com/openai/codex docs/config.md); its `exec --json` reports `mcp_tool_call` items with `server` and `tool`;
 * - OpenCode `opencode.json` `mcp` (`{type: "local", command: [argv], environment}` or `{type: "remote", url, headers}`;
 *   opencode.ai/docs/mcp-servers); tools are named `<server>_<tool>`;
 * - Gemini CLI `settings.json` `mcpServers` (`{command, args, env}` or `{httpUrl, headers}`, `trust`;
 *   github.com/google-gemini/gemini-cli docs/tools/mcp-server.md);
 * - ACP `session/new` `mcpServers` (`{name, command, args, env: [{name, value}]}` or
 *   `{type: "http", name, url, headers: [{name, value}]}`; agentclientprotocol.com/protocol/session-setup).
 */
import type { McpServers, McpStdioServer } from "../protocol/requests.ts";

type Entry = [name: string, spec: McpServers[string]];
const entries = (servers: McpServers): Entry[] => Object.entries(servers);
const isStdio = (s: McpServers[string]): s is McpStdioServer => "command" in s;

/** Claude Code's `--mcp-config` file. */
export function claudeMcpConfig(servers: McpServers): { mcpServers: Record<string, unknown> } {
  return {
    mcpServers: Object.fromEntries(
      entries(servers).map(([name, s]) => [name, isStdio(s) ? { type: "stdio", command: s.command, args: s.args ?? [], env: s.env ?? {} } : { type: "http", url: s.url, headers: s.headers ?? {} }]),
    ),
  };
}

/** TOML basic string (JSON string escapes are valid TOML escapes). */
const tomlStr = (s: string) => JSON.stringify(s);
const tomlTable = (o: Record<string, string>) => `{ ${Object.entries(o).map(([k, v]) => `${tomlStr(k)} = ${tomlStr(v)}`).join(", ")} }`;

/** Codex's `[mcp_servers.<name>]` tables, as `config.toml` lines. */
export function codexMcpToml(servers: McpServers): string[] {
  const lines: string[] = [];
  for (const [name, s] of entries(servers)) {
    lines.push("", `[mcp_servers.${tomlStr(name)}]`);
    if (isStdio(s)) {
      lines.push(`command = ${tomlStr(s.command)}`, `args = [${(s.args ?? []).map(tomlStr).join(", ")}]`);
      if (s.env && Object.keys(s.env).length > 0) lines.push(`env = ${tomlTable(s.env)}`);
    } else {
      lines.push(`url = ${tomlStr(s.url)}`);
      if (s.headers && Object.keys(s.headers).length > 0) lines.push(`http_headers = ${tomlTable(s.headers)}`);
    }
  }
  return lines;
}

/** OpenCode's `mcp` section. */
export function opencodeMcp(servers: McpServers): Record<string, unknown> {
  return Object.fromEntries(
    entries(servers).map(([name, s]) => [
      name,
      isStdio(s)
        ? { type: "local", command: [s.command, ...(s.args ?? [])], ...(s.env ? { environment: s.env } : {}), enabled: true }
        : { type: "remote", url: s.url, ...(s.headers ? { headers: s.headers } : {}), enabled: true },
    ]),
  );
}

/** Gemini CLI's `mcpServers` section (`trust`: no confirmation, as `--yolo` for the built-in tools). */
export function geminiMcpServers(servers: McpServers): Record<string, unknown> {
  return Object.fromEntries(
    entries(servers).map(([name, s]) => [
      name,
      isStdio(s) ? { command: s.command, args: s.args ?? [], env: s.env ?? {}, trust: true } : { httpUrl: s.url, headers: s.headers ?? {}, trust: true },
    ]),
  );
}

/** ACP `session/new` (and `session/load`) `mcpServers` entries. */
export function acpMcpServers(servers: McpServers): Array<{ name: string } & Record<string, unknown>> {
  const pairs = (o: Record<string, string> | undefined) => Object.entries(o ?? {}).map(([k, value]) => ({ name: k, value }));
  return entries(servers).map(([name, s]) =>
    isStdio(s) ? { name, command: s.command, args: s.args ?? [], env: pairs(s.env) } : { type: "http", name, url: s.url, headers: pairs(s.headers) },
  );
}

/**
 * The MCP server of a tool call, from the tool's name: `mcp__<server>__<tool>` (Claude Code, claude-code-acp,
 * and the `mcp_<server>_<tool>` form), or `<server>_<tool>` / `<server>__<tool>` for one of `known` (the run's
 * own servers: OpenCode, Gemini CLI); undefined for any other tool.
 */
export function mcpServerOfTool(name: string, known: readonly string[] = []): string | undefined {
  const claude = /^mcp__(.+?)__.+$/.exec(name);
  if (claude) return claude[1];
  const byPrefix = [...known].sort((a, b) => b.length - a.length).find((k) => name.startsWith(`${k}__`) || name.startsWith(`${k}_`) || name.startsWith(`mcp_${k}_`));
  return byPrefix;
}
