/**
 * The {@link McpBackend} of the `/mcp` route: the RunManager in-process, acting
 * as the request's caller, so every tool is subject to the same validation,
 * permissions and ownership as the REST API (another user's run is 404, host
 * `shell` runs are for admins unless allowed, …). Artifacts are served by the
 * same rules as `GET /api/runs/:id/artifacts/*path` (listed paths only, opened
 * without following links).
 */
import { listedArtifacts, contentTypeOf } from "../api/routes/artifacts.ts";
import { artifactSegments, openArtifact } from "../container/artifacts.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import type { AgentHealthView } from "../protocol/api.ts";
import type { RunView } from "../protocol/requests.ts";
import type { RunManager } from "../run/manager.ts";
import type { Caller } from "../run/plan.ts";
import type { RunRow, Store } from "../store/types.ts";
import type { McpBackend } from "./backend.ts";
import { followChannel } from "./channel-follow.ts";

/** Largest artifact an MCP `resources/read` returns, bytes (larger ones: download them over HTTP). */
export const MAX_ARTIFACT_BYTES = 16 * 1024 * 1024;

/** What {@link createManagerBackend} needs. */
export interface ManagerBackendDeps {
  manager: RunManager;
  store: Store;
  listAgentHealth: () => Promise<AgentHealthView[]>;
}

/**
 * The runs API of one caller, in-process.
 * @example const backend = createManagerBackend({ manager, store, listAgentHealth }, ctx.state.user);
 */
export function createManagerBackend(deps: ManagerBackendDeps, caller: Caller): McpBackend {
  const { manager, store } = deps;
  const view = (row: RunRow) => row as unknown as RunView; // the row is what the REST API serializes
  return {
    async startRun(body) {
      const row = await manager.create(caller, body);
      return { run_id: row.id, status: row.status };
    },
    async getRun(runId) {
      return view(await manager.get(caller, runId));
    },
    async listRuns(f) {
      const page = await manager.list(caller, {
        limit: f.limit ?? 50,
        ...(f.status ? { status: f.status } : {}),
        ...(f.agent_type ? { agent: f.agent_type } : {}),
        ...(f.cursor ? { cursor: f.cursor } : {}),
      });
      return { runs: page.runs.map(view), next_cursor: page.next_cursor };
    },
    async cancelRun(runId) {
      const row = await manager.cancel(caller, runId);
      return { run_id: row.id, status: row.status };
    },
    listAgents: () => deps.listAgentHealth(),
    async answerPermission(runId, requestId, optionId) {
      return manager.answerPermission(caller, runId, requestId, optionId);
    },
    async eventsPage(runId, after, limit) {
      const channel = await manager.channelFor(await manager.get(caller, runId));
      const events = await channel.readStored(Math.min(after, channel.lastAppendedId), limit);
      const last = events[events.length - 1];
      const done = channel.terminalId !== null && (last?.id ?? after) >= channel.terminalId;
      return { events, next_after: last?.id ?? after, done };
    },
    async *followEvents(runId, after, signal) {
      // The run is looked up on the first `next()`: a refusal (404) rejects the iteration.
      const channel = await manager.channelFor(await manager.get(caller, runId));
      yield* followChannel(channel, Math.min(after, channel.lastAppendedId), signal);
    },
    async listArtifacts(runId) {
      const row = await manager.get(caller, runId);
      return { run_id: row.id, status: row.status, artifacts: await listedArtifacts(store, row.id) };
    },
    async readArtifact(runId, rel) {
      const row = await manager.get(caller, runId);
      if (!artifactSegments(rel)) throw new ValidationError("artifact path must be relative, without empty, '.' or '..' segments, and not an input", { field: "path" }, "invalid_path");
      const listed = (await listedArtifacts(store, row.id)).find((a) => a.path === rel);
      if (!listed) throw new NotFoundError("artifact");
      if (listed.size_bytes > MAX_ARTIFACT_BYTES) throw new ValidationError(`artifact is larger than ${MAX_ARTIFACT_BYTES} bytes; download it from /api/runs/${row.id}/artifacts/${rel}`, { size: listed.size_bytes });
      const r = await openArtifact(row.cwd, rel);
      if ("failure" in r) throw new NotFoundError("artifact");
      try {
        return { bytes: await r.handle.readFile(), mimeType: contentTypeOf(rel) };
      } finally {
        await r.handle.close();
      }
    },
  };
}
