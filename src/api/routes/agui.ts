/**
 * The AG-UI view of a run (docs/architecture.md#ag-ui): `GET /api/runs/:id/agui`
 * streams the run's events mapped onto AG-UI events (`../agui-map.ts`, on
 * `@ag-ui/core` 1.0) over SSE, each frame `data: <AG-UI event as JSON>`, with
 * the same replay rules as `GET /api/runs/:id/events`: `Last-Event-ID` (or
 * `?after=N`) is OpenRunner's event id; the AG-UI events of one RunEvent are
 * written together and the last of them carries `id: N`, so a reconnect never
 * splits them. Replay, live follow, heartbeats and the end after the terminal
 * event are those of `../sse.ts`; a subscriber too slow for its buffer is
 * closed (no `stream.lagged` frame: it is no AG-UI event) and reconnects with
 * `Last-Event-ID`.
 *
 * `POST /api/runs/:id/agui` is the same stream for AG-UI clients, which POST a
 * `RunAgentInput` (`@ag-ui/client`'s `HttpAgent`): the body is checked against
 * the protocol's `RunAgentInputSchema`; only its `threadId` is used (the
 * `threadId` of `RUN_STARTED`/`RUN_FINISHED`, default the run id). It views an
 * existing run, it does not start one (start runs with `POST /api/runs`).
 * Both need the run's owner (or an admin); GET also accepts `?access_token=`.
 */
import { Router } from "@koa/router";
import { RunAgentInputSchema } from "@ag-ui/core/schemas";
import { Type } from "@sinclair/typebox";
import { ValidationError } from "../../errors.ts";
import type { RunManager } from "../../run/manager.ts";
import { createAguiMapper, type AguiEvent } from "../agui-map.ts";
import type { AppContext, AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";
import { streamRunEvents } from "../sse.ts";
import { validateQuery } from "../validate.ts";
import { readLastEventId } from "../last-event-id.ts";

const AguiQuery = Type.Object(
  { after: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })), access_token: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

/** One SSE frame of an AG-UI event; `id` on the last frame of a RunEvent's group. */
function frame(e: AguiEvent, id?: number): string {
  return `${id !== undefined ? `id: ${id}\n` : ""}data: ${JSON.stringify(e)}\n\n`;
}

/** Builds the AG-UI route module. */
export function createAguiRoutes(deps: AppDeps, manager: RunManager): RouteModule {
  const router = new Router<AppState>();

  const stream = async (ctx: AppContext, threadId: string | undefined) => {
    const q = validateQuery(AguiQuery, ctx.query);
    const run = await manager.get(ctx.state.user, ctx.params.id!);
    const channel = await manager.channelFor(run);
    const after = Math.min(readLastEventId(ctx, q.after), channel.lastAppendedId);
    // The mapper sees every event from the first (it tracks open messages); only those after the cursor are written.
    const mapper = createAguiMapper(threadId !== undefined ? { threadId } : {});
    ctx.respond = false;
    await streamRunEvents(ctx.req, ctx.res, channel, 0, {
      heartbeatMs: deps.config.sse_heartbeat_ms,
      render: {
        chunk(chunk) {
          let text = "";
          for (const e of chunk.events) {
            const out = mapper.map(e);
            if (e.id <= after) continue;
            out.forEach((a, i) => (text += frame(a, i === out.length - 1 ? e.id : undefined)));
          }
          return text;
        },
        lagged: () => "",
      },
    });
  };

  router.get("/api/runs/:id/agui", deps.authWithQueryToken, (ctx) => stream(ctx, undefined));

  router.post("/api/runs/:id/agui", deps.auth, async (ctx) => {
    const body = ctx.request.body as Record<string, unknown> | undefined;
    let threadId: string | undefined;
    if (body !== undefined && Object.keys(body).length > 0) {
      const parsed = RunAgentInputSchema.safeParse(body);
      if (!parsed.success) {
        throw new ValidationError("body must be an AG-UI RunAgentInput", parsed.error.issues.map((i) => ({ path: `/${i.path.join("/")}`, message: i.message })));
      }
      threadId = parsed.data.threadId;
    }
    await stream(ctx, threadId);
  });

  return { router, operations: aguiOperations };
}

const aguiOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/runs/:id/agui",
    summary: "The run's events as AG-UI events over SSE (RUN_STARTED, TEXT_MESSAGE_*, TOOL_CALL_*, STATE_SNAPSHOT, RUN_FINISHED, RUN_ERROR …); Last-Event-ID is the OpenRunner event id",
    tags: ["runs"],
    auth: true,
    query: AguiQuery,
    responses: { 200: { description: "text/event-stream of AG-UI events (data: JSON)" }, ...errorResponses(400, 401, 404) },
  },
  {
    method: "post",
    path: "/api/runs/:id/agui",
    summary: "The same AG-UI stream for clients that POST a RunAgentInput (@ag-ui/client HttpAgent); only its threadId is used",
    tags: ["runs"],
    auth: true,
    requestBody: Type.Unknown({ description: "an AG-UI RunAgentInput, or {}" }),
    responses: { 200: { description: "text/event-stream of AG-UI events (data: JSON)" }, ...errorResponses(400, 401, 404, 413, 415) },
  },
];
