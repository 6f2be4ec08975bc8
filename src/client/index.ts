/**
 * `openrunner/client`: the typed client of the OpenRunner API, for Node 20+ and
 * browser bundles (see `./client.ts`). The request and response types are the
 * server's own TypeBox schemas (`src/protocol/`).
 */
export { OpenRunnerClient, type CallOptions, type ContainerListFilters, type EventPage, type FetchLike, type OpenRunnerClientOptions, type ProjectOptions, type RunListFilters } from "./client.ts";
export { OpenRunnerError, OpenRunnerNetworkError, type OpenRunnerErrorCode } from "./errors.ts";
export type { EventStreamOptions, ReconnectReason } from "./events.ts";
export type { RunEvent, RunEventType, RunStatus } from "../protocol/events.ts";
export type { CreateRunBody, CreateRunResponse, RunListResponse, RunView, ChatResponse, PendingPermissionView, PermissionDecisionView } from "../protocol/requests.ts";
export type {
  AgentHealthView,
  ApiKeyView,
  ArtifactList,
  ContainerCountsResponse,
  ContainerListResponse,
  ContainerView,
  CreateApiKeyBody,
  CreatedApiKeyResponse,
  CreateUserBody,
  EnsureProjectBody,
  HealthResponse,
  LoginBody,
  LoginResponse,
  MeResponse,
  ProjectContainerView,
  UserView,
} from "../protocol/api.ts";
