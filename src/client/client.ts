/**
 * The typed client of the OpenRunner API (docs/architecture.md#http-api). It
 * runs in Node 20+ and in a browser bundle: it uses only `fetch`,
 * `AbortSignal`, `URL` and `TextDecoder`. Request and response types are the
 * TypeBox schemas of `src/protocol/` that the server validates and publishes
 * in its OpenAPI document.
 *
 * Every method takes `{signal}` (an `AbortSignal`; aborting rejects with the
 * signal's reason) and rejects with {@link OpenRunnerError} (the server's
 * `code`, `message`, `details` and HTTP `status`) or, when no answer came,
 * {@link OpenRunnerNetworkError}.
 *
 * @example
 * const client = new OpenRunnerClient({ baseUrl: "http://127.0.0.1:3000" });
 * await client.login({ username: "admin", password });
 * const { run_id } = await client.createRun({ input: { text: "ls" }, metadata: { agent_type: "shell" } });
 * for await (const ev of client.events(run_id)) console.log(ev.id, ev.type);
 */
import type { RunEvent } from "../protocol/events.ts";
import type {
  AgentHealthResponse,
  ApiKeyListResponse,
  ArtifactList,
  ContainerCountsResponse,
  ContainerListResponse,
  ContainerView,
  CreateApiKeyBody,
  CreatedApiKeyResponse,
  CreateUserBody,
  DesktopResponse,
  EnsureProjectBody,
  HealthResponse,
  LoginBody,
  LoginResponse,
  MeResponse,
  PreviewLinkBody,
  PreviewLinkResponse,
  ProjectContainerView,
  UserListResponse,
  UserView,
} from "../protocol/api.ts";
import type {
  ChatResponse,
  CreateRunBody,
  CreateRunResponse,
  PendingPermissionList,
  PermissionDecisionView,
  RunListResponse,
  RunView,
} from "../protocol/requests.ts";
import type { RunStatus } from "../protocol/events.ts";
import { BATCH_DONE, type BatchEvent, type BatchView, type CreateBatchBody, type CreateBatchResponse } from "../protocol/batches.ts";
import type { ConfigView, PatchConfigResponse, ToolListResponse } from "../protocol/config-api.ts";
import type { SessionAgent, SessionDetailResponse, SessionListResponse } from "../protocol/sessions.ts";
import type { CreatedWebhookResponse, CreateWebhookBody, DeliveryListResponse, WebhookView } from "../protocol/webhooks.ts";
import type { WorkerListResponse } from "../protocol/workers.ts";
import type { OpenRunnerError, OpenRunnerNetworkError } from "./errors.ts";
import { followEventStream, type EventStreamOptions } from "./events.ts";
import { Transport, type CallOptions, type OpenRunnerClientOptions } from "./transport.ts";

export type { CallOptions, FetchLike, OpenRunnerClientOptions } from "./transport.ts";

/** Filters and paging of {@link OpenRunnerClient.listRuns}. */
export interface RunListFilters extends CallOptions {
  status?: RunStatus;
  agent_type?: string;
  /** Page size, 1-200 (default 50). */
  limit?: number;
  /** The `next_cursor` of the previous page. */
  cursor?: string;
  /** For an admin: only their own runs. */
  mine?: boolean;
  /** Only the runs of this batch. */
  batch_id?: string;
}

/** A page of stored events, as {@link OpenRunnerClient.eventsPage} returns it. */
export interface EventPage {
  /** The events after `after`, in id order. */
  events: RunEvent[];
  /** The id to pass as `after` for the next page. */
  next_after: number;
  /** True when the page ends with (or is past) the terminal event. */
  done: boolean;
}

/** Filters and paging of {@link OpenRunnerClient.listContainers}. */
export interface ContainerListFilters extends CallOptions {
  kind?: ContainerView["kind"];
  /** Admins: only this user's containers. */
  user_id?: string;
  limit?: number;
  cursor?: string;
}

/** Options of the project-container methods. */
export interface ProjectOptions extends CallOptions {
  /** Admins: the project's owner (default: the caller). */
  user_id?: string;
}


const enc = encodeURIComponent;

/** A client bound to one server and (optionally) one token. See the module comment. */
export class OpenRunnerClient {
  /** The server address, without trailing slashes. */
  readonly baseUrl: string;
  readonly #t: Transport;

  /** @param opts the server, the token and the transport; see {@link OpenRunnerClientOptions}. */
  constructor(opts: OpenRunnerClientOptions) {
    this.#t = new Transport(opts);
    this.baseUrl = this.#t.baseUrl;
  }

  /** The bearer token sent with each request, if any. */
  get token(): string | undefined {
    return this.#t.token;
  }

  /** Sets (or with `undefined` clears) the bearer token. */
  setToken(token: string | undefined): void {
    this.#t.token = token;
  }

  // ------------------------------------------------------------ auth

  /**
   * `POST /api/auth/login`: exchanges a username and password for a token, and
   * from then on sends that token. @throws {OpenRunnerError} 401 `unauthorized`, 429 `rate_limited`
   */
  async login(body: LoginBody, opts: CallOptions = {}): Promise<LoginResponse> {
    const res = await this.#t.json<LoginResponse>({ method: "POST", path: "/api/auth/login", body, signal: opts.signal });
    this.#t.token = res.token;
    return res;
  }

  /** `GET /api/auth/me`: the caller. @throws {OpenRunnerError} 401 `unauthorized` */
  me(opts: CallOptions = {}): Promise<MeResponse> {
    return this.#t.json({ method: "GET", path: "/api/auth/me", signal: opts.signal });
  }

  // ------------------------------------------------------------ API keys

  /** `POST /api/api-keys`: a new key of the caller; `key` is shown only in this answer. @throws {OpenRunnerError} 400 `validation_failed` */
  createApiKey(body: CreateApiKeyBody, opts: CallOptions = {}): Promise<CreatedApiKeyResponse> {
    return this.#t.json({ method: "POST", path: "/api/api-keys", body, signal: opts.signal });
  }

  /** `GET /api/api-keys`: the caller's keys (never the key itself). */
  async listApiKeys(opts: CallOptions = {}): Promise<ApiKeyListResponse["api_keys"]> {
    return (await this.#t.json<ApiKeyListResponse>({ method: "GET", path: "/api/api-keys", signal: opts.signal })).api_keys;
  }

  /** `DELETE /api/api-keys/:id`: revokes one of the caller's keys. @throws {OpenRunnerError} 404 `not_found` */
  async deleteApiKey(id: string, opts: CallOptions = {}): Promise<void> {
    await this.#t.json({ method: "DELETE", path: `/api/api-keys/${enc(id)}`, signal: opts.signal });
  }

  // ------------------------------------------------------------ users (admin)

  /** `GET /api/users` (admin): every user, oldest first. @throws {OpenRunnerError} 403 `forbidden` */
  async listUsers(opts: CallOptions = {}): Promise<UserView[]> {
    return (await this.#t.json<UserListResponse>({ method: "GET", path: "/api/users", signal: opts.signal })).users;
  }

  /** `POST /api/users` (admin): creates a user (`role` default `user`). @throws {OpenRunnerError} 409 `username_taken`, 400 `validation_failed`, 403 `forbidden` */
  createUser(body: CreateUserBody, opts: CallOptions = {}): Promise<UserView> {
    return this.#t.json({ method: "POST", path: "/api/users", body, signal: opts.signal });
  }

  /** `DELETE /api/users/:id` (admin): deletes a user with their keys, runs and events. @throws {OpenRunnerError} 404 `not_found`, 409 `cannot_delete_self` */
  async deleteUser(id: string, opts: CallOptions = {}): Promise<void> {
    await this.#t.json({ method: "DELETE", path: `/api/users/${enc(id)}`, signal: opts.signal });
  }

  // ------------------------------------------------------------ runs

  /**
   * `POST /api/runs`: starts a run; answers `{run_id, status: "queued"}`.
   * @throws {OpenRunnerError} 400 (`validation_failed`, `unknown_agent`, …), 409 `workspace_busy`, 429 `rate_limited`, 503 `agent_unavailable`
   */
  createRun(body: CreateRunBody, opts: CallOptions = {}): Promise<CreateRunResponse> {
    return this.#t.json({ method: "POST", path: "/api/runs", body, signal: opts.signal });
  }

  /**
   * Resumes the agent session of run `runId` in a new run: {@link createRun}
   * with `metadata.resume` set. @throws {OpenRunnerError} 404, 409 `run_active`, 400 `resume_no_session`
   */
  resumeRun(runId: string, body: CreateRunBody, opts: CallOptions = {}): Promise<CreateRunResponse> {
    return this.createRun({ ...body, metadata: { ...body.metadata, resume: runId } }, opts);
  }

  /** `GET /api/runs`: a page of runs (own; an admin's: everyone's), newest first. @throws {OpenRunnerError} 400 `invalid_cursor`, `validation_failed` */
  listRuns(filters: RunListFilters = {}): Promise<RunListResponse> {
    const { signal, mine, ...query } = filters;
    return this.#t.json({ method: "GET", path: "/api/runs", query: { ...query, mine }, signal });
  }

  /** `GET /api/runs/:id`: one run. @throws {OpenRunnerError} 404 `not_found` (also another user's run) */
  getRun(runId: string, opts: CallOptions = {}): Promise<RunView> {
    return this.#t.json({ method: "GET", path: `/api/runs/${enc(runId)}`, signal: opts.signal });
  }

  /** `POST /api/runs/:id/cancel` (idempotent): the run ends with `run.cancelled` unless it already ended. @throws {OpenRunnerError} 404 */
  cancelRun(runId: string, opts: CallOptions = {}): Promise<CreateRunResponse> {
    return this.#t.json({ method: "POST", path: `/api/runs/${enc(runId)}/cancel`, signal: opts.signal });
  }

  /** `DELETE /api/runs/:id`: cancels the run if needed, then deletes it with its events. @throws {OpenRunnerError} 404 */
  async deleteRun(runId: string, opts: CallOptions = {}): Promise<void> {
    await this.#t.json({ method: "DELETE", path: `/api/runs/${enc(runId)}`, signal: opts.signal });
  }

  /** `POST /api/chat`: starts a run, waits for its end and answers its final text. Errors as {@link createRun}. */
  chat(body: CreateRunBody, opts: CallOptions = {}): Promise<ChatResponse> {
    return this.#t.json({ method: "POST", path: "/api/chat", body, signal: opts.signal });
  }

  /**
   * `GET /api/runs/:id/events` with `Accept: application/json`: one page of
   * stored events after `after` (default 0). @throws {OpenRunnerError} 404, 400 `invalid_last_event_id`
   */
  eventsPage(runId: string, opts: CallOptions & { after?: number; limit?: number } = {}): Promise<EventPage> {
    return this.#t.json({ method: "GET", path: `/api/runs/${enc(runId)}/events`, query: { after: opts.after ?? 0, limit: opts.limit }, signal: opts.signal });
  }

  /**
   * `GET /api/runs/:id/events` over SSE: the run's events after `opts.after`,
   * replayed then live, each once and in id order, ending after the terminal
   * event. Reconnects with `Last-Event-ID` after a dropped connection or
   * `stream.lagged` (see {@link EventStreamOptions}).
   * @throws {OpenRunnerError} for a 4xx answer (404 `not_found`, 401); {@link OpenRunnerNetworkError} after `maxRetries` failed reconnects
   * @example for await (const ev of client.events(runId, { after: 3 })) console.log(ev.type);
   */
  events(runId: string, opts: EventStreamOptions = {}): AsyncIterable<RunEvent> {
    const path = `/api/runs/${enc(runId)}/events`;
    return followEventStream((after, signal) => this.#stream(path, after, signal), this.baseUrl, opts);
  }

  /** Opens one SSE connection of `path` after event `after` (also sent as `Last-Event-ID`). */
  #stream(path: string, after: number, signal: AbortSignal): Promise<Response> {
    return this.#t.send({
      method: "GET",
      path,
      query: { after },
      headers: { accept: "text/event-stream", ...(after > 0 ? { "last-event-id": String(after) } : {}) },
      signal,
      stream: true,
    });
  }


  // ------------------------------------------------------------ permissions

  /** `GET /api/runs/:id/permissions`: the run's open permission requests, oldest first. @throws {OpenRunnerError} 404 */
  async listPermissions(runId: string, opts: CallOptions = {}): Promise<PendingPermissionList["permissions"]> {
    return (await this.#t.json<PendingPermissionList>({ method: "GET", path: `/api/runs/${enc(runId)}/permissions`, signal: opts.signal })).permissions;
  }

  /**
   * `POST /api/runs/:id/permissions/:request_id`: answers a request with one of its `options[].option_id`.
   * @throws {OpenRunnerError} 409 `permission_already_decided`, 400 `unknown_option`, 404
   */
  answerPermission(runId: string, requestId: string, optionId: string, opts: CallOptions = {}): Promise<PermissionDecisionView> {
    return this.#t.json({ method: "POST", path: `/api/runs/${enc(runId)}/permissions/${enc(requestId)}`, body: { option_id: optionId }, signal: opts.signal });
  }

  // ------------------------------------------------------------ artifacts

  /** `GET /api/runs/:id/artifacts`: the files a `task` run produced (empty for other runs). @throws {OpenRunnerError} 404 */
  listArtifacts(runId: string, opts: CallOptions = {}): Promise<ArtifactList> {
    return this.#t.json({ method: "GET", path: `/api/runs/${enc(runId)}/artifacts`, signal: opts.signal });
  }

  /**
   * `GET /api/runs/:id/artifacts/*path`: one listed artifact; the response's
   * body is the file (read it with `.blob()`, `.arrayBuffer()` or `.body`).
   * @throws {OpenRunnerError} 404 (not listed), 400 `invalid_path`
   */
  downloadArtifact(runId: string, path: string, opts: CallOptions = {}): Promise<Response> {
    const rel = path.split("/").map(enc).join("/");
    return this.#t.send({ method: "GET", path: `/api/runs/${enc(runId)}/artifacts/${rel}`, headers: { accept: "*/*" }, signal: opts.signal, stream: true });
  }

  // ------------------------------------------------------------ preview links

  /**
   * `POST /api/runs/:id/preview-links`: an expiring link that opens port `body.port`
   * of the run (through the port proxy) in a browser; `ttl_secs` default
   * `proxy.preview_ttl_secs`. `url` is absolute, `path` the same without the origin.
   * @throws {OpenRunnerError} 403 `port_not_allowed`, 409 `proxy_unavailable`, 400 `validation_failed`, 404
   * @example const { url } = await client.createPreviewLink(runId, { port: 5173 });
   */
  createPreviewLink(runId: string, body: PreviewLinkBody, opts: CallOptions = {}): Promise<PreviewLinkResponse> {
    return this.#t.json({ method: "POST", path: `/api/runs/${enc(runId)}/preview-links`, body, signal: opts.signal });
  }

  // ------------------------------------------------------------ desktop

  /**
   * `GET /api/runs/:id/desktop`: the noVNC and audio links (through the port proxy) of a run
   * with `metadata.desktop`, and the readiness of each desktop service.
   * @throws {OpenRunnerError} 409 `desktop_unavailable` (no desktop, or the run has ended), 404
   */
  getDesktop(runId: string, opts: CallOptions = {}): Promise<DesktopResponse> {
    return this.#t.json({ method: "GET", path: `/api/runs/${enc(runId)}/desktop`, signal: opts.signal });
  }

  /**
   * `POST /api/runs/:id/desktop/screenshot`: a PNG of the run's display; the response's body is
   * the image (read it with `.arrayBuffer()` or `.blob()`). @throws {OpenRunnerError} 409 `desktop_unavailable`, 404
   */
  desktopScreenshot(runId: string, opts: CallOptions = {}): Promise<Response> {
    return this.#t.send({ method: "POST", path: `/api/runs/${enc(runId)}/desktop/screenshot`, headers: { accept: "image/png" }, signal: opts.signal, stream: true });
  }

  // ------------------------------------------------------------ containers and projects

  /** `GET /api/containers`: a page of the containers the caller may see, oldest first. @throws {OpenRunnerError} 503 `engine_unavailable` */
  listContainers(filters: ContainerListFilters = {}): Promise<ContainerListResponse> {
    const { signal, ...query } = filters;
    return this.#t.json({ method: "GET", path: "/api/containers", query, signal });
  }

  /** `GET /api/containers/counts`: the caller's visible containers counted by kind. @throws {OpenRunnerError} 503 `engine_unavailable` */
  containerCounts(opts: ProjectOptions = {}): Promise<ContainerCountsResponse> {
    return this.#t.json({ method: "GET", path: "/api/containers/counts", query: { user_id: opts.user_id }, signal: opts.signal });
  }

  /** `PUT /api/projects/:project_id/container`: ensures the project's container runs (idempotent). @throws {OpenRunnerError} 503 `engine_unavailable`, 400 */
  ensureProjectContainer(projectId: string, body: EnsureProjectBody = {}, opts: ProjectOptions = {}): Promise<ProjectContainerView> {
    return this.#t.json({ method: "PUT", path: `/api/projects/${enc(projectId)}/container`, query: { user_id: opts.user_id }, body, signal: opts.signal });
  }

  /** `GET /api/projects/:project_id/container`: its status. @throws {OpenRunnerError} 404 when it has none */
  getProjectContainer(projectId: string, opts: ProjectOptions = {}): Promise<ProjectContainerView> {
    return this.#t.json({ method: "GET", path: `/api/projects/${enc(projectId)}/container`, query: { user_id: opts.user_id }, signal: opts.signal });
  }

  /** `POST /api/projects/:project_id/container/keepalive`: resets its idle time. @throws {OpenRunnerError} 404 */
  keepaliveProjectContainer(projectId: string, opts: ProjectOptions = {}): Promise<ProjectContainerView> {
    return this.#t.json({ method: "POST", path: `/api/projects/${enc(projectId)}/container/keepalive`, query: { user_id: opts.user_id }, signal: opts.signal });
  }

  /** `POST /api/projects/:project_id/container/restart`: destroys and recreates it. @throws {OpenRunnerError} 404, 409 `project_busy` */
  restartProjectContainer(projectId: string, opts: ProjectOptions = {}): Promise<ProjectContainerView> {
    return this.#t.json({ method: "POST", path: `/api/projects/${enc(projectId)}/container/restart`, query: { user_id: opts.user_id }, signal: opts.signal });
  }

  /** `DELETE /api/projects/:project_id/container`: removes it (the workspace stays). @throws {OpenRunnerError} 404, 409 `project_busy` */
  async deleteProjectContainer(projectId: string, opts: ProjectOptions = {}): Promise<void> {
    await this.#t.json({ method: "DELETE", path: `/api/projects/${enc(projectId)}/container`, query: { user_id: opts.user_id }, signal: opts.signal });
  }

  // ------------------------------------------------------------ batches

  /**
   * `POST /api/runs/batch`: queues up to `batch_max_runs` runs at once, all or none.
   * @throws {OpenRunnerError} the first failing item's own status and code with `details.index`; 400 `batch_too_large`
   */
  createBatch(body: CreateBatchBody, opts: CallOptions = {}): Promise<CreateBatchResponse> {
    return this.#t.json({ method: "POST", path: "/api/runs/batch", body, signal: opts.signal });
  }

  /** `GET /api/batches/:id`: counts by status and the run ids, in request order. @throws {OpenRunnerError} 404 (also another user's batch) */
  getBatch(batchId: string, opts: CallOptions = {}): Promise<BatchView> {
    return this.#t.json({ method: "GET", path: `/api/batches/${enc(batchId)}`, signal: opts.signal });
  }

  /** `POST /api/batches/:id/cancel`: cancels every unfinished run of the batch. @throws {OpenRunnerError} 404 */
  cancelBatch(batchId: string, opts: CallOptions = {}): Promise<BatchView> {
    return this.#t.json({ method: "POST", path: `/api/batches/${enc(batchId)}/cancel`, signal: opts.signal });
  }

  /**
   * `GET /api/batches/:id/events` over SSE: the batch's `run.status` changes,
   * then one `batch.done`, each once and in id order, reconnecting with
   * `Last-Event-ID` like {@link events}. @throws {OpenRunnerError} 404
   */
  batchEvents(batchId: string, opts: EventStreamOptions = {}): AsyncIterable<BatchEvent> {
    const path = `/api/batches/${enc(batchId)}/events`;
    return followEventStream<BatchEvent>((after, signal) => this.#stream(path, after, signal), this.baseUrl, opts, (e) => e.type === BATCH_DONE);
  }

  // ------------------------------------------------------------ stored agent sessions

  /** `GET /api/sessions?agent=`: the sessions the agent left in the caller's own homes, newest first. @throws {OpenRunnerError} 400 `validation_failed` */
  async listSessions(agent: SessionAgent, opts: CallOptions = {}): Promise<SessionListResponse["sessions"]> {
    return (await this.#t.json<SessionListResponse>({ method: "GET", path: "/api/sessions", query: { agent }, signal: opts.signal })).sessions;
  }

  /** `GET /api/sessions/:agent/:session_id`: one session with its history as normalized events. @throws {OpenRunnerError} 404 */
  getSession(agent: SessionAgent, sessionId: string, opts: CallOptions = {}): Promise<SessionDetailResponse> {
    return this.#t.json({ method: "GET", path: `/api/sessions/${enc(agent)}/${enc(sessionId)}`, signal: opts.signal });
  }

  // ------------------------------------------------------------ webhooks

  /**
   * `POST /api/webhooks`: a webhook of the caller; `secret` (which signs deliveries) is shown only in this answer.
   * @throws {OpenRunnerError} 400 `validation_failed` or a refused target, 409 `webhook_limit_reached`
   */
  createWebhook(body: CreateWebhookBody, opts: CallOptions = {}): Promise<CreatedWebhookResponse> {
    return this.#t.json({ method: "POST", path: "/api/webhooks", body, signal: opts.signal });
  }

  /** `GET /api/webhooks`: the caller's webhooks (never their secrets). */
  async listWebhooks(opts: CallOptions = {}): Promise<WebhookView[]> {
    return (await this.#t.json<{ webhooks: WebhookView[] }>({ method: "GET", path: "/api/webhooks", signal: opts.signal })).webhooks;
  }

  /** `GET /api/webhooks/:id`. @throws {OpenRunnerError} 404 */
  getWebhook(id: string, opts: CallOptions = {}): Promise<WebhookView> {
    return this.#t.json({ method: "GET", path: `/api/webhooks/${enc(id)}`, signal: opts.signal });
  }

  /** `DELETE /api/webhooks/:id`. @throws {OpenRunnerError} 404 */
  async deleteWebhook(id: string, opts: CallOptions = {}): Promise<void> {
    await this.#t.json({ method: "DELETE", path: `/api/webhooks/${enc(id)}`, signal: opts.signal });
  }

  /** `GET /api/webhooks/:id/deliveries`: the newest deliveries with their attempts (`limit` 1-500, default 50). @throws {OpenRunnerError} 404 */
  async listWebhookDeliveries(id: string, opts: CallOptions & { limit?: number } = {}): Promise<DeliveryListResponse["deliveries"]> {
    const res = await this.#t.json<DeliveryListResponse>({ method: "GET", path: `/api/webhooks/${enc(id)}/deliveries`, query: { limit: opts.limit }, signal: opts.signal });
    return res.deliveries;
  }

  // ------------------------------------------------------------ workers (admin)

  /**
   * `GET /api/workers` (admin): the distributed mode's workers, oldest first, with their agents, isolations, live runs
   * and last heartbeat; `{mode: "single", workers: []}` on a single-process server. @throws {OpenRunnerError} 403 `forbidden`
   */
  listWorkers(opts: CallOptions = {}): Promise<WorkerListResponse> {
    return this.#t.json({ method: "GET", path: "/api/workers", signal: opts.signal });
  }

  // ------------------------------------------------------------ configuration (admin) and tools

  /** `GET /api/config` (admin): the effective configuration, secrets redacted, with each value's source. @throws {OpenRunnerError} 403 */
  getConfig(opts: CallOptions = {}): Promise<ConfigView> {
    return this.#t.json({ method: "GET", path: "/api/config", signal: opts.signal });
  }

  /**
   * `PATCH /api/config` (admin): a JSON merge patch of live settings, applied without a restart;
   * `persist` also writes the patched keys into the configuration file.
   * @throws {OpenRunnerError} 400 `config_not_live` (`details.key`), `validation_failed`; 409 `config_not_persistable`; 403
   */
  patchConfig(patch: Record<string, unknown>, opts: CallOptions & { persist?: boolean } = {}): Promise<PatchConfigResponse> {
    return this.#t.json({ method: "PATCH", path: "/api/config", query: { persist: opts.persist }, body: patch, signal: opts.signal });
  }

  /** `GET /api/tools`: the `openrunner` agent's tools with their input schemas. */
  async listTools(opts: CallOptions = {}): Promise<ToolListResponse["tools"]> {
    return (await this.#t.json<ToolListResponse>({ method: "GET", path: "/api/tools", signal: opts.signal })).tools;
  }

  // ------------------------------------------------------------ system

  /** `GET /health`: liveness, version and uptime (no token needed). */
  health(opts: CallOptions = {}): Promise<HealthResponse> {
    return this.#t.json({ method: "GET", path: "/health", signal: opts.signal });
  }

  /** `GET /health/agents`: which agents can run on the server (no token needed). */
  async agentsHealth(opts: CallOptions = {}): Promise<AgentHealthResponse["agents"]> {
    return (await this.#t.json<AgentHealthResponse>({ method: "GET", path: "/health/agents", signal: opts.signal })).agents;
  }
}
