/**
 * `openrunner mcp`: OpenRunner as an MCP server over stdio (newline-delimited
 * JSON-RPC on stdin/stdout, MCP specification "Transports"), for an assistant
 * that starts it as a child process. Every tool is a request of the typed
 * client with the CLI's server and token (`--server`, `OPENRUNNER_URL`,
 * `OPENRUNNER_TOKEN` or the stored login; see `./client.ts`). stdout carries
 * only MCP messages; nothing else is printed there. Ends (exit 0) when stdin
 * closes.
 */
import type { Readable, Writable } from "node:stream";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { createClientBackend } from "../mcp/client-backend.ts";
import { createMcpServer } from "../mcp/server.ts";
import { createApiClient } from "./client.ts";
import type { CliContext } from "./context.ts";

/**
 * Runs `mcp` until the client closes stdin; returns the exit code.
 * @example claude mcp add openrunner -- openrunner mcp --server http://127.0.0.1:3000
 */
export async function runMcp(ctx: CliContext, opts: { server?: string; version: string }): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const server = createMcpServer(createClientBackend(client.api), {
    version: opts.version,
    log: { warn: (msg: string, fields?: Record<string, unknown>) => void ctx.stderr.write(`openrunner mcp: ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}\n`) },
  });
  const closed = new Promise<void>((resolve) => (server.onclose = resolve));
  const stdin = ctx.stdin as unknown as Readable;
  stdin.once("end", () => void server.close());
  await server.connect(new StdioServerTransport(stdin, ctx.stdout as unknown as Writable));
  await closed;
  return 0;
}
