/**
 * The OpenAPI 3.1 document, derived from the route modules' {@link OperationSpec}s
 * (request bodies are the same TypeBox schemas the handlers validate with) and
 * from the run event table (`buildRunEventJsonSchema()`), so the document
 * cannot drift from what the server accepts and emits.
 */
import { Type, type TObject, type TSchema } from "@sinclair/typebox";
import { API_ERROR_CODE_LIST, type ApiErrorCode } from "../protocol/errors.ts";

/** HTTP methods a route may use. */
export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

/** One documented response. */
export interface ResponseSpec {
  description: string;
  /** JSON body schema (`application/json`); absent for empty responses (204). */
  schema?: TSchema;
}

/** The OpenAPI description of one route, kept next to the route. */
export interface OperationSpec {
  method: HttpMethod;
  /** Koa-style path, e.g. `/api/runs/:id/events`; `:name` becomes `{name}`. */
  path: string;
  /** Defaults to `<method>_<path words>`, e.g. `get_api_runs_id_events`. */
  operationId?: string;
  summary: string;
  description?: string;
  tags: string[];
  /** True when the route requires `Authorization: Bearer` (JWT or API key). */
  auth: boolean;
  /** Query parameters: an object schema of (string) properties. */
  query?: TObject;
  /** Path parameter schemas by name (default `{type: "string"}`); the handler validates with the same object. */
  params?: TObject;
  /** JSON request body schema; the handler validates with the same object. */
  requestBody?: TSchema;
  /** Responses by HTTP status. */
  responses: Record<number, ResponseSpec>;
  /**
   * A Server-Sent Events route: the 200 response also offers
   * `text/event-stream` whose `data:` lines are RunEvents, and `?access_token=` is accepted.
   */
  sse?: true;
  /** The schema of an SSE route's `data:` lines when they are not RunEvents (the batch stream); default the RunEvent component. */
  sseEvent?: { schema: TSchema; name: string };
}

/** Names of the shared schemas in `components.schemas`. */
export type ComponentName = "ErrorResponse" | "RunEvent";

/**
 * A schema that points at a shared component, for use in {@link ResponseSpec.schema}.
 * @example responses: { 200: { description: "events", schema: Type.Array(componentRef("RunEvent")) } }
 */
export function componentRef(name: ComponentName): TSchema {
  return Type.Unsafe({ $ref: `#/components/schemas/${name}` });
}

const STATUS_TEXT: Record<number, string> = {
  400: "Invalid request (code `validation_failed`, `invalid_json`, …)",
  401: "Authentication required (always the same body)",
  403: "Not allowed for this role",
  404: "Not found (or not yours)",
  409: "Conflict with the resource's state",
  413: "Request body too large",
  415: "Request body is not JSON",
  429: "Too many attempts; see Retry-After",
  503: "Unavailable",
};

/**
 * Standard error responses for the given statuses, each `{error: {code, message, details?}}`.
 * @example responses: { 200: {...}, ...errorResponses(400, 401, 404) }
 */
export function errorResponses(...statuses: number[]): Record<number, ResponseSpec> {
  return Object.fromEntries(
    statuses.map((s) => [s, { description: STATUS_TEXT[s] ?? "Error", schema: componentRef("ErrorResponse") }]),
  );
}

/**
 * The JSON schema of every error response body; `error.code` is an enum of the
 * closed table `API_ERROR_CODES` (`src/protocol/errors.ts`).
 */
export const ErrorResponseSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.Unsafe<ApiErrorCode>({
        type: "string",
        enum: [...API_ERROR_CODE_LIST],
        description: "stable machine-readable code, e.g. `validation_failed`; each code always answers the same HTTP status",
      }),
      message: Type.String(),
      details: Type.Optional(Type.Unknown()),
    }),
  },
  { additionalProperties: false },
);

/** Input of {@link buildOpenApiDocument}. */
export interface OpenApiInput {
  version: string;
  operations: readonly OperationSpec[];
  /** The RunEvent JSON schema (`buildRunEventJsonSchema()` from `src/protocol/events.ts`). */
  eventSchema: Record<string, unknown>;
}

/**
 * Builds the OpenAPI 3.1 document (plain JSON, TypeBox symbols stripped).
 * @throws Error when two operations share a method and path (a programming error).
 */
export function buildOpenApiDocument(input: OpenApiInput): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of input.operations) {
    const { path, names } = convertPath(op.path);
    const item = (paths[path] ??= {});
    if (item[op.method]) throw new Error(`duplicate OpenAPI operation ${op.method.toUpperCase()} ${op.path}`);
    item[op.method] = buildOperation(op, names);
  }
  const { $schema: _dialect, ...runEvent } = input.eventSchema;
  return toJson({
    openapi: "3.1.0",
    info: {
      title: "OpenRunner API",
      version: input.version,
      description: "Self-hosted orchestrator for coding-agent runs. Errors are `{error: {code, message, details?}}`.",
    },
    paths,
    components: {
      schemas: { ErrorResponse: ErrorResponseSchema, RunEvent: runEvent },
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", description: "A JWT from POST /api/auth/login, or an API key (`or_…`)." },
        accessToken: { type: "apiKey", in: "query", name: "access_token", description: "The same token as a query parameter, for EventSource." },
      },
    },
  });
}

function buildOperation(op: OperationSpec, pathParams: string[]): Record<string, unknown> {
  const parameters: unknown[] = pathParams.map((name) => ({ name, in: "path", required: true, schema: op.params?.properties[name] ?? { type: "string" } }));
  if (op.query) {
    const required = new Set(op.query.required ?? []);
    for (const [name, schema] of Object.entries(op.query.properties)) {
      parameters.push({ name, in: "query", required: required.has(name), schema });
    }
  }
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(op.responses)) {
    const content: Record<string, unknown> = {};
    if (r.schema) content["application/json"] = { schema: r.schema };
    if (op.sse && status === "200") {
      const name = op.sseEvent?.name ?? "RunEvent";
      content["text/event-stream"] = {
        schema: op.sseEvent?.schema ?? componentRef("RunEvent"),
        description: `Each event: \`id:\` the event id, \`event:\` its type, \`data:\` the whole ${name} as JSON.`,
      };
    }
    responses[status] = Object.keys(content).length ? { description: r.description, content } : { description: r.description };
  }
  return {
    operationId: op.operationId ?? `${op.method}_${op.path.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "")}`,
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    tags: op.tags,
    ...(parameters.length ? { parameters } : {}),
    ...(op.requestBody ? { requestBody: { required: true, content: { "application/json": { schema: op.requestBody } } } } : {}),
    responses,
    security: op.auth ? (op.sse ? [{ bearerAuth: [] }, { accessToken: [] }] : [{ bearerAuth: [] }]) : [],
  };
}

/** `/api/runs/:id` -> `/api/runs/{id}` plus the parameter names. */
function convertPath(koaPath: string): { path: string; names: string[] } {
  const names: string[] = [];
  const path = koaPath.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_m, name: string) => {
    names.push(name);
    return `{${name}}`;
  });
  return { path, names };
}

function toJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
