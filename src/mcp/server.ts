/**
 * Builds OpenRunner's MCP server (docs/architecture.md#mcp) on the SDK's
 * low-level `Server` (`@modelcontextprotocol/sdk`), because the tools' schemas
 * are the API's TypeBox (JSON Schema) schemas and `McpServer.registerTool`
 * takes zod shapes: `tools/list` answers them as they are, `tools/call`
 * validates with the API's ajv ({@link callTool}). Capabilities: tools and
 * resources (see `./tools.ts`, `./resources.ts`).
 *
 * Errors: a failing tool answers a result with `isError: true` whose text is
 * `<code>: <message>[ <details as JSON>]` and whose `_meta["openrunner/error"]` is the
 * API's `{code, message, details?}` (the same codes as HTTP, `src/protocol/errors.ts`);
 * a failing resource read is a JSON-RPC error (-32002 for not found, -32602 for
 * a bad URI, -32603 otherwise) with that body as `data`.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type CallToolResult,
} from "@modelcontextprotocol/sdk/types.js";
import { OpenRunnerError } from "../client/errors.ts";
import { mapError } from "../errors-http.ts";
import type { Log } from "../log.ts";
import type { McpBackend } from "./backend.ts";
import { listResources, readResource, RESOURCE_TEMPLATES } from "./resources.ts";
import { callTool, TOOLS, type ToolContext } from "./tools.ts";

/** The `_meta` key of a failed tool's result that holds the API's error `{code, message, details?}`. */
export const ERROR_META_KEY = "openrunner/error";

/** JSON-RPC error code of "resource not found" (MCP specification, resources). */
export const RESOURCE_NOT_FOUND = -32002;

/** Options of {@link createMcpServer}. */
export interface McpServerOptions {
  /** The server's version (package.json), reported in `initialize`. */
  version: string;
  /** Where unexpected (500) errors are logged. */
  log?: Pick<Log, "warn">;
}

/** A tool's or resource's error as the API answers it: its HTTP status and `{code, message, details?}`. */
export interface DescribedError {
  status: number;
  error: { code: string; message: string; details?: unknown };
}

/** The API's error body for anything a tool threw (an `AppError` in-process, an `OpenRunnerError` over HTTP). */
export function describeError(err: unknown): DescribedError {
  if (err instanceof OpenRunnerError) {
    return { status: err.status, error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } };
  }
  const mapped = mapError(err);
  return { status: mapped.status, error: mapped.body.error };
}

/** The JSON form of a TypeBox schema (its symbol-keyed markers dropped). */
function jsonSchema(schema: unknown): { type: "object"; [k: string]: unknown } {
  return JSON.parse(JSON.stringify(schema)) as { type: "object" };
}

/**
 * A new MCP server whose tools and resources act through `backend`. Connect it to
 * one transport (`server.connect(transport)`); build one per connection.
 * @example
 * const server = createMcpServer(createClientBackend(api), { version: "0.1.0" });
 * await server.connect(new StdioServerTransport());
 */
export function createMcpServer(backend: McpBackend, opts: McpServerOptions): Server {
  const server = new Server(
    { name: "openrunner", title: "OpenRunner", version: opts.version },
    {
      capabilities: { tools: {}, resources: {} },
      instructions:
        "OpenRunner runs coding agents. start_run starts one (list_agents says which agents work), wait_run waits for its end with progress, get_run and the openrunner://runs/{run_id}/events resource show what it did.",
    },
  );
  const listed = TOOLS.map((t) => ({ name: t.name, title: t.title, description: t.description, inputSchema: jsonSchema(t.input), outputSchema: jsonSchema(t.output) }));
  const byName = new Map(TOOLS.map((t) => [t.name, t]));

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: listed }));

  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    const tool = byName.get(req.params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `unknown tool: ${req.params.name}`);
    const token = req.params._meta?.progressToken;
    const ctx: ToolContext = {
      signal: extra.signal,
      progress: async (progress, message) => {
        if (token !== undefined) await extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress, message } });
      },
    };
    try {
      const result = (await callTool(tool, backend, req.params.arguments, ctx)) as Record<string, unknown>;
      return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
    } catch (err) {
      const d = describeError(err);
      if (d.status >= 500) opts.log?.warn("MCP tool failed", { tool: tool.name, err: err instanceof Error ? err.message : String(err) });
      const details = d.error.details !== undefined ? ` ${JSON.stringify(d.error.details)}` : "";
      // No structuredContent: clients check it against the tool's outputSchema even on errors.
      return { isError: true, content: [{ type: "text", text: `${d.error.code}: ${d.error.message}${details}` }], _meta: { [ERROR_META_KEY]: d.error } };
    }
  });

  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: await listResources(backend) }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({ resourceTemplates: RESOURCE_TEMPLATES.map((t) => ({ ...t })) }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    try {
      return { contents: await readResource(backend, req.params.uri) };
    } catch (err) {
      const d = describeError(err);
      const code = d.status === 404 ? RESOURCE_NOT_FOUND : d.status === 400 ? ErrorCode.InvalidParams : ErrorCode.InternalError;
      throw new McpError(code, `${d.error.code}: ${d.error.message}`, { error: d.error });
    }
  });
  return server;
}
