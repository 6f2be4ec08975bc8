/**
 * Artifacts of `task` runs (the OpenAaaS contract, see `src/agent/task/`):
 *
 * - `GET /api/runs/:id/artifacts`: the files listed in the run's `run.completed` event (empty for any other run);
 * - `GET /api/runs/:id/artifacts/*path`: one of them, streamed.
 *
 * Only a listed path is served, and it is opened without following links
 * (`openArtifact`: no link in any component, `O_NOFOLLOW`, the descriptor's
 * real path inside the run's workspace). Downloads are always attachments
 * with `nosniff` and a sandboxing CSP, so a batch image's HTML or SVG output
 * is never rendered in the API's origin. Another user's run answers 404.
 */
import path from "node:path";
import { Router } from "@koa/router";
import { artifactSegments, openArtifact } from "../../container/artifacts.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import { ArtifactList } from "../../protocol/api.ts";
import type { Artifact } from "../../protocol/events.ts";
import type { RunManager } from "../../run/manager.ts";
import type { Store } from "../../store/types.ts";
import type { AppDeps, AppState, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";

/** Content types by lower-case extension; everything else is `application/octet-stream`. */
const CONTENT_TYPES: Record<string, string> = {
  ".txt": "text/plain; charset=utf-8",
  ".log": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  ".json": "application/json",
  ".jsonl": "application/x-ndjson",
  ".xml": "application/xml",
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".tar": "application/x-tar",
  ".parquet": "application/vnd.apache.parquet",
};

/** The Content-Type for a file name (by extension). */
export function contentTypeOf(name: string): string {
  return CONTENT_TYPES[path.extname(name).toLowerCase()] ?? "application/octet-stream";
}

/** `attachment` with an ASCII fallback and the RFC 5987 UTF-8 name. */
function dispositionOf(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** Resolves the artifacts listed in the run's terminal event (`run.completed`), or none (also used by the MCP resources, `src/mcp/`). */
export async function listedArtifacts(store: Store, runId: string): Promise<Artifact[]> {
  const last = await store.events.lastId(runId);
  if (last === 0) return [];
  const [e] = await store.events.list(runId, last - 1, 1);
  return e?.type === "run.completed" ? (e.data.artifacts ?? []) : [];
}

/** Builds the artifacts route module. */
export function createArtifactRoutes(deps: AppDeps, manager: RunManager): RouteModule {
  const router = new Router<AppState>();

  router.get("/api/runs/:id/artifacts", deps.auth, async (ctx) => {
    const row = await manager.get(ctx.state.user, ctx.params.id!);
    ctx.body = { run_id: row.id, status: row.status, artifacts: await listedArtifacts(deps.store, row.id) };
  });

  router.get("/api/runs/:id/artifacts/*path", deps.auth, async (ctx) => {
    const row = await manager.get(ctx.state.user, ctx.params.id!);
    const rel = String(ctx.params.path ?? "");
    if (!artifactSegments(rel)) throw new ValidationError("artifact path must be relative, without empty, '.' or '..' segments, and not an input", { field: "path" }, "invalid_path");
    if (!(await listedArtifacts(deps.store, row.id)).some((a) => a.path === rel)) throw new NotFoundError("artifact");
    const r = await openArtifact(row.cwd, rel);
    if ("failure" in r) throw new NotFoundError("artifact");
    ctx.status = 200;
    ctx.set("Content-Type", contentTypeOf(rel));
    ctx.set("Content-Disposition", dispositionOf(path.posix.basename(rel)));
    ctx.set("X-Content-Type-Options", "nosniff");
    ctx.set("Content-Security-Policy", "sandbox; default-src 'none'");
    ctx.set("Cache-Control", "private, no-store");
    ctx.body = r.handle.createReadStream(); // closes the file at its end, or when the client goes away
    ctx.length = r.size;
  });

  return { router, operations: artifactOperations };
}

const artifactOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/runs/:id/artifacts",
    summary: "The files a task run produced (from its run.completed event); empty for other runs",
    tags: ["runs"],
    auth: true,
    responses: { 200: { description: "The artifacts: paths relative to the workspace, sizes in bytes", schema: ArtifactList }, ...errorResponses(401, 404) },
  },
  {
    method: "get",
    path: "/api/runs/:id/artifacts/:path",
    summary: "Download one artifact of a task run (streamed, as an attachment)",
    description:
      "`path` is the artifact's path as listed (it may contain `/`). 400 `invalid_path` for an absolute path or one with `..`; 404 for a path that is not listed, a link, or anything outside the run's workspace.",
    tags: ["runs"],
    auth: true,
    responses: { 200: { description: "The file's bytes; Content-Type by extension, else application/octet-stream" }, ...errorResponses(400, 401, 404) },
  },
];
