/**
 * The admin's rules for per-run MCP servers (`metadata.mcp_servers`,
 * docs/architecture.md#per-run-mcp-servers), checked when a run is planned: a
 * stdio server's `command` must be one of `mcp.allowed_commands`, exactly as
 * listed, and its `env` may name only variables of `mcp.allowed_env`, never one
 * that changes how a program is loaded or started (`LD_*`, `DYLD_*`,
 * `BASH_FUNC_*`, `NODE_OPTIONS`, …) even if listed: either would turn an
 * allowed command into another one; an HTTP server's URL must name a host of
 * `mcp.allowed_hosts` (exact names or IP literals, `*.example.com` for any
 * subdomain). Both lists are empty by default: no per-run MCP servers.
 */
import type { Config } from "../config/schema.ts";
import { ValidationError } from "../errors.ts";
import type { McpServers } from "../protocol/requests.ts";

/** Environment variables a stdio MCP server of a run may never set, whatever `mcp.allowed_env` says. */
const REFUSED_ENV = /^(LD_|DYLD_|BASH_FUNC_|GIT_CONFIG|GCONV_)|^(GIT_SSH_COMMAND|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|NODE_OPTIONS|NODE_PATH|PYTHONPATH|PYTHONSTARTUP|PYTHONHOME|PERL5OPT|PERL5LIB|RUBYOPT|RUBYLIB|BASH_ENV|ENV|PATH|HOME|SHELLOPTS|PS4|IFS)$/;

/**
 * Checks a run's MCP servers against the admin's lists; pure.
 * @throws ValidationError (400) `mcp_command_not_allowed` for a command not in `mcp.allowed_commands` or a refused
 *   `env` name (not in `mcp.allowed_env`, or a loader variable), `mcp_url_not_allowed` for a URL whose host is not in `mcp.allowed_hosts` (or a URL with credentials)
 * @example checkMcpServers({ files: { command: "mcp-files", args: ["--root", "."] } }, { allowed_commands: ["mcp-files"], allowed_hosts: [] });
 */
export function checkMcpServers(servers: McpServers, config: Config["mcp"] | undefined): void {
  const commands = new Set(config?.allowed_commands ?? []);
  const hosts = config?.allowed_hosts ?? [];
  for (const [name, spec] of Object.entries(servers)) {
    const field = `metadata.mcp_servers.${name}`;
    if ("command" in spec) {
      if (!commands.has(spec.command)) throw new ValidationError(`MCP server ${name}: command ${JSON.stringify(spec.command)} is not in mcp.allowed_commands`, { field: `${field}.command` }, "mcp_command_not_allowed");
      const allowedEnv = new Set(config?.allowed_env ?? []);
      const refused = Object.keys(spec.env ?? {}).find((k) => REFUSED_ENV.test(k) || !allowedEnv.has(k));
      if (refused !== undefined) throw new ValidationError(`MCP server ${name}: env ${refused} may not be set (not in mcp.allowed_env, or a loader variable)`, { field: `${field}.env.${refused}` }, "mcp_command_not_allowed");
    } else {
      let url: URL;
      try {
        url = new URL(spec.url);
      } catch {
        throw new ValidationError(`MCP server ${name}: url is not a URL`, { field: `${field}.url` });
      }
      if (url.username !== "" || url.password !== "") throw new ValidationError(`MCP server ${name}: credentials go in headers, not in the URL`, { field: `${field}.url` }, "mcp_url_not_allowed");
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
      if (!hosts.some((h) => hostMatches(host, h))) throw new ValidationError(`MCP server ${name}: host ${host} is not in mcp.allowed_hosts`, { field: `${field}.url` }, "mcp_url_not_allowed");
    }
  }
}

/** `host` against one allow-list entry: an exact name or IP literal, or `*.suffix` for any subdomain of it. */
function hostMatches(host: string, entry: string): boolean {
  const e = entry.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return e.startsWith("*.") ? host.endsWith(e.slice(1)) && host.length > e.length - 1 : host === e;
}
