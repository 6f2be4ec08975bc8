/**
 * The containers API (issue 5): this server's containers and the caller's
 * project containers (`src/container/projects.ts`).
 *
 * - `GET /api/containers` (paginated by creation time) and
 *   `GET /api/containers/counts`: admins see every container of this server
 *   instance (optionally `?user_id=`), users only their own (their runs' and
 *   projects' containers). Warm containers not yet handed out belong to
 *   nobody (admins only); a handed-out pool container shows as kind `run`
 *   with `from_pool: true`.
 * - `/api/projects/:project_id/container`: `PUT` ensures it (idempotent;
 *   201 when created, 200 when it already ran; no agent is started), `GET`
 *   its status, `POST …/keepalive` resets its idle time, `POST …/restart`
 *   destroys and recreates it and `DELETE` removes it (both 409
 *   `project_busy` while a run holds it; the workspace stays). The project is the caller's;
 *   an admin may name another user with `?user_id=`. Anything else is 404.
 */
import { Router } from "@koa/router";
import type { Config } from "../../config/schema.ts";
import { LABEL, type ContainerKind } from "../../container/labels.ts";
import type { WarmPool } from "../../container/pool.ts";
import type { ProjectContainers } from "../../container/projects.ts";
import type { ContainerClient, ContainerSummary } from "../../container/types.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import { CONTAINER_KINDS as KINDS, ContainerCountsQuery, ContainerCountsResponse, ContainerListQuery, ContainerListResponse, ContainerView, EnsureProjectBody, ProjectContainerView, ProjectParams, ProjectQuery } from "../../protocol/api.ts";
import { resolveContainerLimits } from "../../run/container-limits.ts";
import type { AppContext, AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses } from "../openapi.ts";
import { validateBody, validateQuery } from "../validate.ts";

/** What the containers routes need. */
export interface ContainerRouteDeps {
  client: () => ContainerClient;
  instance: string;
  projects: ProjectContainers;
  pool?: WarmPool;
  docker: Config["docker"];
  agents: Config["agents"];
}

function viewOf(c: ContainerSummary, pool: WarmPool | undefined): ContainerView {
  const assigned = c.labels[LABEL.kind] === "pool" ? pool?.assignment(c.id) : undefined;
  const kind = (assigned ? "run" : (c.labels[LABEL.kind] ?? "run")) as ContainerKind;
  return {
    id: c.id,
    name: c.name,
    kind: KINDS.includes(kind) ? kind : "run",
    from_pool: assigned !== undefined,
    state: c.state,
    image: c.image,
    user_id: assigned?.userId ?? c.labels[LABEL.userId] ?? null,
    project_id: c.labels[LABEL.projectId] ?? null,
    run_id: assigned?.runId ?? c.labels[LABEL.runId] ?? null,
    created_at: new Date(c.createdAt).toISOString(),
  };
}

const encodeCursor = (v: ContainerView) => Buffer.from(`${v.created_at}|${v.id}`).toString("base64url");
function decodeCursor(raw: string): { at: string; id: string } {
  const [at, id] = Buffer.from(raw, "base64url").toString("utf8").split("|");
  if (!at || !id) throw new ValidationError("cursor is not one this server gave", { field: "cursor" }, "invalid_cursor");
  return { at, id };
}

/** Builds the containers route module. */
export function createContainerRoutes(deps: Pick<AppDeps, "auth" | "store">, c: ContainerRouteDeps): RouteModule {
  const router = new Router<AppState>();
  const auth = deps.auth;

  /** Every container of this instance the caller may see. */
  const visible = async (ctx: AppContext, userFilter: string | undefined): Promise<ContainerView[]> => {
    const all = await c.client().list({ [LABEL.instance]: c.instance });
    c.pool?.prune(new Set(all.map((x) => x.id)));
    const me = ctx.state.user;
    const owner = me.role === "admin" ? userFilter : me.id;
    if (me.role !== "admin" && userFilter !== undefined && userFilter !== me.id) return [];
    return all.map((x) => viewOf(x, c.pool)).filter((v) => owner === undefined || v.user_id === owner);
  };

  /** Resolves the project's owner: the caller, or for an admin the named user. @throws NotFoundError */
  const ownerOf = async (ctx: AppContext): Promise<{ userId: string; projectId: string }> => {
    const { project_id } = validateQuery(ProjectParams, { project_id: ctx.params.project_id });
    const q = validateQuery(ProjectQuery, ctx.query);
    const me = ctx.state.user;
    if (q.user_id === undefined || q.user_id === me.id) return { userId: me.id, projectId: project_id };
    if (me.role !== "admin" || !(await deps.store.users.getById(q.user_id))) throw new NotFoundError("project container");
    return { userId: q.user_id, projectId: project_id };
  };

  router.get("/api/containers", auth, async (ctx) => {
    const q = validateQuery(ContainerListQuery, ctx.query);
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (limit < 1 || limit > 200) throw new ValidationError("limit must be from 1 to 200", { value: q.limit });
    let list = (await visible(ctx, q.user_id)).filter((v) => q.kind === undefined || v.kind === q.kind);
    list.sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1));
    if (q.cursor !== undefined) {
      const cur = decodeCursor(q.cursor);
      list = list.filter((v) => v.created_at > cur.at || (v.created_at === cur.at && v.id > cur.id));
    }
    const page = list.slice(0, limit);
    ctx.body = { containers: page, next_cursor: list.length > limit ? encodeCursor(page.at(-1)!) : null };
  });

  router.get("/api/containers/counts", auth, async (ctx) => {
    const q = validateQuery(ContainerCountsQuery, ctx.query);
    const counts = { run: 0, project: 0, pool: 0 };
    const list = await visible(ctx, q.user_id);
    for (const v of list) counts[v.kind]++;
    ctx.body = { counts, total: list.length };
  });

  const path = "/api/projects/:project_id/container";

  router.put(path, auth, async (ctx) => {
    const { userId, projectId } = await ownerOf(ctx);
    const body = validateBody(EnsureProjectBody, ctx.request.body ?? {});
    const limits = resolveContainerLimits({ agent_type: body.agent_type ?? "shell", isolation: "docker", ...body }, c.docker, true)!;
    const image = (body.agent_type ? c.agents[body.agent_type]?.image : undefined) ?? c.docker.image;
    const r = await c.projects.ensureStatus(userId, projectId, { image, limits });
    ctx.status = r.created ? 201 : 200;
    ctx.body = r.status;
  });

  router.get(path, auth, async (ctx) => {
    const { userId, projectId } = await ownerOf(ctx);
    const st = await c.projects.status(userId, projectId);
    if (!st) throw new NotFoundError("project container");
    ctx.body = st;
  });

  router.post(`${path}/keepalive`, auth, async (ctx) => {
    const { userId, projectId } = await ownerOf(ctx);
    const st = await c.projects.keepalive(userId, projectId);
    if (!st) throw new NotFoundError("project container");
    ctx.body = st;
  });

  router.post(`${path}/restart`, auth, async (ctx) => {
    const { userId, projectId } = await ownerOf(ctx);
    const st = await c.projects.restart(userId, projectId);
    if (!st) throw new NotFoundError("project container");
    ctx.body = st;
  });

  router.delete(path, auth, async (ctx) => {
    const { userId, projectId } = await ownerOf(ctx);
    if (!(await c.projects.remove(userId, projectId))) throw new NotFoundError("project container");
    ctx.status = 204;
  });

  const tags = ["containers"];
  const project = { params: ProjectParams, query: ProjectQuery, tags, auth: true as const };
  return {
    router,
    operations: [
      {
        method: "get",
        path: "/api/containers",
        summary: "List this server's containers the caller may see (admins: all), oldest first",
        tags,
        auth: true,
        query: ContainerListQuery,
        responses: { 200: { description: "A page of containers", schema: ContainerListResponse }, ...errorResponses(400, 401, 503) },
      },
      {
        method: "get",
        path: "/api/containers/counts",
        summary: "Count the caller's visible containers by kind (run, project, pool)",
        tags,
        auth: true,
        query: ContainerCountsQuery,
        responses: { 200: { description: "Counts", schema: ContainerCountsResponse }, ...errorResponses(400, 401, 503) },
      },
      {
        ...project,
        method: "put",
        path,
        summary: "Ensure the project's container exists and runs (idempotent; starts no agent)",
        requestBody: EnsureProjectBody,
        responses: {
          200: { description: "It already ran", schema: ProjectContainerView },
          201: { description: "Created and started", schema: ProjectContainerView },
          ...errorResponses(400, 401, 404, 503),
        },
      },
      { ...project, method: "get", path, summary: "Status of the project's container", responses: { 200: { description: "Status", schema: ProjectContainerView }, ...errorResponses(400, 401, 404, 503) } },
      {
        ...project,
        method: "post",
        path: `${path}/keepalive`,
        summary: "Reset the project container's idle time (docker.project_idle_secs)",
        responses: { 200: { description: "Status", schema: ProjectContainerView }, ...errorResponses(400, 401, 404, 503) },
      },
      {
        ...project,
        method: "post",
        path: `${path}/restart`,
        summary: "Destroy and recreate the project's container (same image and limits; the workspace stays)",
        responses: { 200: { description: "The new container", schema: ProjectContainerView }, ...errorResponses(400, 401, 404, 409, 503) },
      },
      {
        ...project,
        method: "delete",
        path,
        summary: "Remove the project's container (the workspace stays)",
        responses: { 204: { description: "Removed" }, ...errorResponses(400, 401, 404, 409, 503) },
      },
    ],
  };
}
