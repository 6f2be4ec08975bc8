/**
 * The {@link McpBackend} of `openrunner mcp` (stdio): every tool is one request
 * of the typed HTTP client (`src/client/`, `openrunner/client`) bound to the
 * CLI's server and token (`src/cli/client.ts`), so the server applies its own
 * authentication, validation and ownership, exactly as for the CLI.
 */
import type { OpenRunnerClient } from "../client/client.ts";
import type { McpBackend } from "./backend.ts";

/**
 * The runs API of the client's caller, over HTTP.
 * @example const backend = createClientBackend(createApiClient(ctx).api);
 */
export function createClientBackend(api: OpenRunnerClient): McpBackend {
  return {
    startRun: (body) => api.createRun(body),
    getRun: (runId) => api.getRun(runId),
    listRuns: (f) => api.listRuns(f),
    cancelRun: (runId) => api.cancelRun(runId),
    listAgents: () => api.agentsHealth(),
    answerPermission: (runId, requestId, optionId) => api.answerPermission(runId, requestId, optionId),
    eventsPage: (runId, after, limit) => api.eventsPage(runId, { after, limit }),
    followEvents: (runId, after, signal) => api.events(runId, { after, signal }),
    listArtifacts: (runId) => api.listArtifacts(runId),
    async readArtifact(runId, path) {
      const res = await api.downloadArtifact(runId, path);
      return { bytes: new Uint8Array(await res.arrayBuffer()), mimeType: res.headers.get("content-type") ?? "application/octet-stream" };
    },
  };
}
