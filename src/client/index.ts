/**
 * `openrunner/client`: the typed client of the OpenRunner API, for Node 20+ and
 * browser bundles (see `./client.ts`). The request and response types are the
 * server's own TypeBox schemas (`src/protocol/`).
 */
export { OpenRunnerClient, type CallOptions, type ContainerListFilters, type EventPage, type FetchLike, type OpenRunnerClientOptions, type ProjectOptions, type RunListFilters } from "./client.ts";
export { OpenRunnerError, OpenRunnerNetworkError, type OpenRunnerErrorCode } from "./errors.ts";
export type { EventStreamOptions, ReconnectReason } from "./events.ts";
export type { RunEvent, RunEventType, RunStatus } from "../protocol/events.ts";
/** The request and response types of every route (each schema's name is also its `Static` type). */
export type * from "../protocol/requests.ts";
export type * from "../protocol/api.ts";
export type * from "../protocol/batches.ts";
export type * from "../protocol/config-api.ts";
export type * from "../protocol/sessions.ts";
export type * from "../protocol/webhooks.ts";
export type * from "../protocol/workers.ts";
