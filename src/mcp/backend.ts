/**
 * What the MCP server (docs/architecture.md#mcp) acts through: the operations
 * of the runs API, for one caller. Two implementations: {@link createManagerBackend}
 * (`./manager-backend.ts`, the `/mcp` route: the RunManager in-process, with the
 * request's caller, so permissions and ownership are the API's own) and
 * {@link createClientBackend} (`./client-backend.ts`, `openrunner mcp` over stdio:
 * the typed HTTP client with the CLI's stored credentials). The MCP tools never
 * know which one they have.
 */
import type { RunEvent } from "../protocol/events.ts";
import type { AgentHealthView, ArtifactList } from "../protocol/api.ts";
import type { CreateRunBody, CreateRunResponse, PermissionDecisionView, RunListResponse, RunView } from "../protocol/requests.ts";
import type { RunStatus } from "../protocol/events.ts";

/** Filters of {@link McpBackend.listRuns} (those of `GET /api/runs`). */
export interface RunFilters {
  status?: RunStatus;
  agent_type?: string;
  cursor?: string;
  limit?: number;
}

/** A page of stored events after a cursor (`GET /api/runs/:id/events` with `Accept: application/json`). */
export interface EventsPage {
  events: RunEvent[];
  next_after: number;
  done: boolean;
}

/** One artifact's bytes and media type. */
export interface ArtifactContent {
  bytes: Uint8Array;
  mimeType: string;
}

/**
 * The runs API for one caller. Every method fails with the API's own errors: an
 * `AppError` of `src/errors.ts` in-process, an `OpenRunnerError` over HTTP (both
 * carry `status`, `code` and `message`).
 */
export interface McpBackend {
  startRun(body: CreateRunBody): Promise<CreateRunResponse>;
  getRun(runId: string): Promise<RunView>;
  listRuns(filters: RunFilters): Promise<RunListResponse>;
  cancelRun(runId: string): Promise<CreateRunResponse>;
  listAgents(): Promise<AgentHealthView[]>;
  answerPermission(runId: string, requestId: string, optionId: string): Promise<PermissionDecisionView>;
  /** Stored events after `after`, at most `limit`. */
  eventsPage(runId: string, after: number, limit: number): Promise<EventsPage>;
  /** The run's events after `after`, live, until the terminal event (or `signal`). */
  followEvents(runId: string, after: number, signal: AbortSignal): AsyncIterable<RunEvent>;
  listArtifacts(runId: string): Promise<ArtifactList>;
  readArtifact(runId: string, path: string): Promise<ArtifactContent>;
}
