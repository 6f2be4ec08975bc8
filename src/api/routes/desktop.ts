/**
 * The desktop of a run (`metadata.desktop: true`, docs/architecture.md#desktop):
 *
 * - `GET /api/runs/:id/desktop`: the noVNC page as a preview link through the run's port proxy
 *   (`/api/runs/:id/proxy/6080/vnc.html?…&path=…/websockify`: opening it sets the preview cookie for
 *   that proxy path, so noVNC's WebSocket is authenticated by it too), the audio stream's link
 *   (port 6081), and each service's readiness as the container reports it (`vnc`, `novnc`, `audio`,
 *   `ime`, `xvfb`, `wm`). The links need `docker.network` (null without one).
 * - `POST /api/runs/:id/desktop/screenshot`: a PNG of the whole display (taken in the container).
 *
 * Another user's run is 404; a run without a desktop, or whose container is gone, 409 `desktop_unavailable`.
 */
import { Router } from "@koa/router";
import { AUDIO_PORT, NOVNC_PORT, readDesktopStatus, takeScreenshot, type DesktopStatus } from "../../container/desktop.ts";
import { launcherDir, withLauncher } from "../../container/launcher-handle.ts";
import type { ContainerClient } from "../../container/types.ts";
import { ConflictError } from "../../errors.ts";
import { DesktopResponse } from "../../protocol/api.ts";
import { createPreviewTokens } from "../../proxy/preview.ts";
import { PREVIEW_COOKIE } from "../../proxy/target.ts";
import type { AppDeps, AppState, AuthUser, RouteModule } from "../context.ts";
import { errorResponses, type OperationSpec } from "../openapi.ts";

/** What the desktop routes need. */
export interface DesktopRouteOptions {
  /** Runs with the API's visibility rule (`get` resolves the run; rejects NotFoundError) and their live containers: `manager` (a RunManager) fits. */
  runs: { get(caller: AuthUser, runId: string): Promise<{ id: string; metadata: Record<string, unknown> }>; liveContainerId(runId: string): string | undefined };
  client: () => ContainerClient;
  /** Where containers' launcher directories are (`ProjectContainers.launcherRoot`). */
  launcherRoot: string;
  /** The secret the port proxy verifies preview links with (the same as `createProxyRoutes`'); absent: links never verify. */
  previewSecret?: string;
  /** `docker.network`: the proxy reaches containers only on one; without it the links are null. */
  network?: string;
  /** Lifetime of the links, seconds (default 3600). */
  ttlSecs?: number;
}

/**
 * Builds the desktop routes.
 * @example
 * createDesktopRoutes(deps, { runs: manager, client: dockerClient, launcherRoot: projects.launcherRoot, previewSecret, network: "bridge" })
 */
export function createDesktopRoutes(deps: AppDeps, o: DesktopRouteOptions): RouteModule {
  const previews = createPreviewTokens(o.previewSecret === undefined ? {} : { secret: o.previewSecret });
  const router = new Router<AppState>();

  /** The run's desktop container and its report. @throws NotFoundError (another user's run), ConflictError `desktop_unavailable` */
  const desktopOf = async (caller: AuthUser, runId: string): Promise<{ runId: string; containerId: string; socketDir: string; status: DesktopStatus }> => {
    const run = await o.runs.get(caller, runId);
    if (run.metadata.desktop !== true) throw new ConflictError("this run has no desktop (create it with metadata.desktop: true and docker isolation)", "desktop_unavailable");
    const containerId = o.runs.liveContainerId(run.id);
    const st = containerId ? await o.client().get(containerId).inspect().catch(() => undefined) : undefined;
    if (!containerId || !st?.running) throw new ConflictError("the run's desktop is not running (the run has not started or has ended)", "desktop_unavailable");
    const socketDir = launcherDir(o.launcherRoot, st.name);
    const status = await readDesktopStatus(socketDir);
    if (!status) throw new ConflictError("the run's container reports no desktop", "desktop_unavailable");
    return { runId: run.id, containerId, socketDir, status };
  };

  router.get("/api/runs/:id/desktop", deps.auth, async (ctx) => {
    const d = await desktopOf(ctx.state.user, ctx.params.id!);
    const exp = Math.floor(Date.now() / 1000) + (o.ttlSecs ?? 3600);
    const link = (port: number, page: string, query: string) => {
      if (!o.network) return null;
      const token = previews.issue({ runId: d.runId, port, userId: ctx.state.user.id, exp });
      return `${ctx.protocol}://${ctx.host}/api/runs/${d.runId}/proxy/${port}/${page}?${query}${query ? "&" : ""}${PREVIEW_COOKIE}=${token}`;
    };
    const wsPath = encodeURIComponent(`api/runs/${d.runId}/proxy/${NOVNC_PORT}/websockify`);
    const s = d.status.services;
    const secret = d.status.secret;
    const body: DesktopResponse = {
      // The desktop's secret (its VNC password and audio key) goes to the run's owner only, inside these links.
      url: link(NOVNC_PORT, "vnc.html", `autoconnect=1&path=${wsPath}${secret ? `&password=${encodeURIComponent(secret)}` : ""}`),
      audio_url: link(AUDIO_PORT, "stream.wav", secret ? `key=${encodeURIComponent(secret)}` : ""),
      expires_at: new Date(exp * 1000).toISOString(),
      display: d.status.display,
      size: d.status.size,
      ready: Object.values(s).every((v) => v === "ready"),
      services: { vnc: s.vnc, novnc: s.novnc, audio: s.audio, ime: s.ime, xvfb: s.xvfb, wm: s.wm },
      errors: d.status.errors,
    };
    ctx.set("Cache-Control", "no-store");
    ctx.body = body;
  });

  router.post("/api/runs/:id/desktop/screenshot", deps.auth, async (ctx) => {
    const d = await desktopOf(ctx.state.user, ctx.params.id!);
    const png = await takeScreenshot(withLauncher(o.client().get(d.containerId), d.socketDir));
    ctx.set("Cache-Control", "no-store");
    ctx.type = "image/png";
    ctx.body = png;
  });

  return { router, operations: desktopOperations };
}

const desktopOperations: OperationSpec[] = [
  {
    method: "get",
    path: "/api/runs/:id/desktop",
    summary: "The run's desktop: noVNC and audio preview links through the port proxy, and each service's readiness",
    description: "For runs created with `metadata.desktop: true`. The links are preview links (a cookie for the proxy path, WebSocket included); null without `docker.network`. 409 `desktop_unavailable` for a run without a running desktop.",
    tags: ["runs"],
    auth: true,
    responses: { 200: { description: "The desktop", schema: DesktopResponse }, ...errorResponses(401, 404, 409) },
  },
  {
    method: "post",
    path: "/api/runs/:id/desktop/screenshot",
    summary: "A PNG screenshot of the run's desktop",
    tags: ["runs"],
    auth: true,
    responses: { 200: { description: "image/png of the whole display" }, ...errorResponses(401, 404, 409) },
  },
];
