/**
 * The sessions agent CLIs left in the caller's own agent homes (README "Sessions an agent left behind"):
 * `GET /api/sessions?agent=claude_code` lists them (title, cwd, times, turns, and the run whose home holds
 * each), `GET /api/sessions/:agent/:session_id` renders one as run event inputs (`src/agent/sessions/`).
 * Only the homes of the caller's own runs are read, admins included; `POST /api/runs` with
 * `metadata.resume_session` resumes one.
 */
import { Router } from "@koa/router";
import { Type } from "@sinclair/typebox";
import { homesOf, listSessions, readSession } from "../../agent/sessions/index.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import { isSessionAgent, SessionDetailResponse, SessionListQuery, SessionListResponse } from "../../protocol/sessions.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";
import { validateQuery } from "../validate.ts";

const DetailParams = Type.Object({ agent: Type.String(), session_id: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$" }) });

/** Builds the sessions route module. @param o.homesRoot absolute `<data_dir>/homes` */
export function createSessionRoutes(deps: AppDeps, o: { homesRoot: string }): RouteModule {
  const router = new Router<AppState>();
  router.get("/api/sessions", deps.auth, async (ctx) => {
    const q = validateQuery(SessionListQuery, ctx.query);
    ctx.body = { sessions: await listSessions(q.agent, await homesOf(deps.store.runs, ctx.state.user.id, q.agent, o.homesRoot)) };
  });
  router.get("/api/sessions/:agent/:session_id", deps.auth, async (ctx) => {
    const agent = ctx.params.agent!;
    if (!isSessionAgent(agent)) throw new ValidationError(`stored sessions of ${agent} cannot be read`, { field: "agent" }, "sessions_unsupported");
    const id = ctx.params.session_id!;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) throw new NotFoundError("session");
    const found = await readSession(agent, id, await homesOf(deps.store.runs, ctx.state.user.id, agent, o.homesRoot));
    if (!found) throw new NotFoundError("session");
    ctx.body = found;
  });
  return { router, operations: sessionOperations };
}

const sessionOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/sessions",
    summary: "The sessions an agent left in the caller's agent homes",
    tags: ["sessions"],
    auth: true,
    query: SessionListQuery,
    responses: { 200: { description: "Most recently updated first", schema: SessionListResponse }, ...errorResponses(400, 401) },
  },
  {
    method: "get",
    path: "/api/sessions/:agent/:session_id",
    summary: "One stored session, rendered as run event inputs",
    tags: ["sessions"],
    auth: true,
    params: DetailParams,
    responses: { 200: { description: "The session and its history", schema: SessionDetailResponse }, ...errorResponses(400, 401, 404) },
  },
];
