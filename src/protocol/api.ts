/**
 * Request and response schemas of the API routes other than runs
 * (docs/architecture.md#http-api): auth, API keys, users, health, containers
 * and projects, artifacts. The route modules of `src/api/routes/` validate
 * with them and publish them in the OpenAPI document; the typed client
 * (`src/client/`) takes its types from them. Part of the contract layer:
 * imports nothing of the project but `./events.ts` and `./requests.ts`.
 */
import { Type, type Static } from "@sinclair/typebox";
import { ArtifactSchema } from "./events.ts";
import { PROJECT_ID_PATTERN } from "./requests.ts";

// ---------------------------------------------------------------- auth

/** Body of `POST /api/auth/login`. */
export const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
  },
  { additionalProperties: false },
);
/** Body of `POST /api/auth/login`. */
export type LoginBody = Static<typeof LoginBody>;

/** Response of `POST /api/auth/login`. `expires_in`: token lifetime, seconds. */
export const LoginResponse = Type.Object({
  token: Type.String(),
  token_type: Type.Literal("Bearer"),
  expires_in: Type.Integer({ minimum: 1 }),
});
/** Response of `POST /api/auth/login`. */
export type LoginResponse = Static<typeof LoginResponse>;

const RoleSchema = Type.Union([Type.Literal("admin"), Type.Literal("user")]);

/** The caller, as `GET /api/auth/me` answers it. */
export const MeResponse = Type.Object({
  id: Type.String(),
  username: Type.String(),
  role: RoleSchema,
});
/** The caller, as `GET /api/auth/me` answers it. */
export type MeResponse = Static<typeof MeResponse>;

// ---------------------------------------------------------------- API keys

/** Body of `POST /api/api-keys`. */
export const CreateApiKeyBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 100, description: "a label, e.g. `ci`" }) },
  { additionalProperties: false },
);
/** Body of `POST /api/api-keys`. */
export type CreateApiKeyBody = Static<typeof CreateApiKeyBody>;

/** An API key as listings show it. Timestamps: ISO 8601 UTC or null. */
export const ApiKeyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: "first characters of the key, e.g. `or_ab12cd`" }),
  created_at: Type.String({ format: "date-time" }),
  last_used_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  revoked_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});
/** An API key as listings show it. */
export type ApiKeyView = Static<typeof ApiKeyView>;

/** Response of `POST /api/api-keys`: the view plus the key itself, shown only here. */
export const CreatedApiKeyResponse = Type.Composite([ApiKeyView, Type.Object({ key: Type.String({ description: "`or_…`; shown once" }) })]);
/** Response of `POST /api/api-keys`. */
export type CreatedApiKeyResponse = Static<typeof CreatedApiKeyResponse>;

/** Response of `GET /api/api-keys`. */
export const ApiKeyListResponse = Type.Object({ api_keys: Type.Array(ApiKeyView) });
/** Response of `GET /api/api-keys`. */
export type ApiKeyListResponse = Static<typeof ApiKeyListResponse>;

// ---------------------------------------------------------------- users

/** Body of `POST /api/users`. `role` defaults to `user`. */
export const CreateUserBody = Type.Object(
  {
    username: Type.String({ pattern: "^[a-zA-Z0-9_.-]{1,64}$", description: "1–64 of a-z A-Z 0-9 _ . -" }),
    password: Type.String({ minLength: 8, maxLength: 72, description: "8–72 characters (bcrypt reads 72 bytes)" }),
    role: Type.Optional(RoleSchema),
  },
  { additionalProperties: false },
);
/** Body of `POST /api/users`. */
export type CreateUserBody = Static<typeof CreateUserBody>;

/** A user as the API shows it. `created_at`: ISO 8601 UTC. */
export const UserView = Type.Object({
  id: Type.String(),
  username: Type.String(),
  role: RoleSchema,
  created_at: Type.String({ format: "date-time" }),
});
/** A user as the API shows it. */
export type UserView = Static<typeof UserView>;

/** Response of `GET /api/users`, oldest first. */
export const UserListResponse = Type.Object({ users: Type.Array(UserView) });
/** Response of `GET /api/users`. */
export type UserListResponse = Static<typeof UserListResponse>;

// ---------------------------------------------------------------- health

/** Body of `GET /health`. `uptime_s`: whole seconds since the server started. */
export const HealthResponse = Type.Object({
  status: Type.Literal("ok"),
  version: Type.String(),
  uptime_s: Type.Integer({ minimum: 0 }),
});
/** Body of `GET /health`. */
export type HealthResponse = Static<typeof HealthResponse>;

/** One agent's availability (`AgentHealth` in `src/agent/types.ts`). */
export const AgentHealthSchema = Type.Object({
  agent: Type.String(),
  available: Type.Boolean(),
  version: Type.Optional(Type.String()),
  path: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  /** The version the test suite ran against (`scripts/agents.lock.json`), for agents that have a pin. */
  tested_version: Type.Optional(Type.String()),
  /** Whether the installed `version` is exactly `tested_version`; absent for agents without a pin. */
  tested: Type.Optional(Type.Boolean()),
  /** ACP agents (`agent: "acp:<name>"`): the `acp_agents` name, and what the agent reported at `initialize`. */
  acp_agent: Type.Optional(Type.String()),
  capabilities: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  protocol_version: Type.Optional(Type.Integer()),
});
/** One agent's availability, as `GET /health/agents` lists it. */
export type AgentHealthView = Static<typeof AgentHealthSchema>;

/** Body of `GET /health/agents`. */
export const AgentHealthResponse = Type.Object({ agents: Type.Array(AgentHealthSchema) });
/** Body of `GET /health/agents`. */
export type AgentHealthResponse = Static<typeof AgentHealthResponse>;

// ---------------------------------------------------------------- containers and projects

/** The kinds of container the containers API lists. */
export const CONTAINER_KINDS = ["run", "project", "pool"] as const;
const KindSchema = Type.Union(CONTAINER_KINDS.map((k) => Type.Literal(k)));

/** Query of `GET /api/containers`. */
export const ContainerListQuery = Type.Object(
  {
    kind: Type.Optional(KindSchema),
    user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "admins: only this user's containers" })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,3}$" })),
  },
  { additionalProperties: false },
);

/** Query of `GET /api/containers/counts`. */
export const ContainerCountsQuery = Type.Object({ user_id: ContainerListQuery.properties.user_id }, { additionalProperties: false });

/** Query of the project routes: admins may name the project's owner. */
export const ProjectQuery = Type.Object(
  { user_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "admins: the project's owner (default: the caller)" })) },
  { additionalProperties: false },
);

/** Path parameters of the project routes. */
export const ProjectParams = Type.Object({ project_id: Type.String({ pattern: PROJECT_ID_PATTERN, description: "1-64 characters [A-Za-z0-9_.-], starting with a letter or digit" }) });

/** Body of `PUT /api/projects/:project_id/container` (used only when the container is created). */
export const EnsureProjectBody = Type.Object(
  {
    /** The agent whose image to use (default: `docker.image`). */
    agent_type: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z][a-z0-9_-]*$" })),
    memory_mb: Type.Optional(Type.Integer({ minimum: 6 })),
    cpus: Type.Optional(Type.Number({ minimum: 0.01 })),
    pids_limit: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
/** Body of `PUT /api/projects/:project_id/container`. */
export type EnsureProjectBody = Static<typeof EnsureProjectBody>;

/** A container as listed. Times ISO 8601 UTC. */
export const ContainerView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: KindSchema,
  /** A warm-pool container handed to a run. */
  from_pool: Type.Boolean(),
  state: Type.String({ description: "engine state: created, running, exited, …" }),
  image: Type.String(),
  user_id: Type.Union([Type.String(), Type.Null()]),
  project_id: Type.Union([Type.String(), Type.Null()]),
  run_id: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: "date-time" }),
});
/** A container as listed. */
export type ContainerView = Static<typeof ContainerView>;

/** Response of `GET /api/containers`: a page, oldest first. */
export const ContainerListResponse = Type.Object({ containers: Type.Array(ContainerView), next_cursor: Type.Union([Type.String(), Type.Null()]) });
/** Response of `GET /api/containers`. */
export type ContainerListResponse = Static<typeof ContainerListResponse>;

/** Response of `GET /api/containers/counts`. */
export const ContainerCountsResponse = Type.Object({ counts: Type.Object({ run: Type.Integer(), project: Type.Integer(), pool: Type.Integer() }), total: Type.Integer() });
/** Response of `GET /api/containers/counts`. */
export type ContainerCountsResponse = Static<typeof ContainerCountsResponse>;

/** A project's container, as the project routes answer it. */
export const ProjectContainerView = Type.Object({
  project_id: Type.String(),
  user_id: Type.String(),
  container_id: Type.String(),
  state: Type.String(),
  image: Type.String(),
  created_at: Type.String({ format: "date-time" }),
  active_runs: Type.Integer({ minimum: 0 }),
  waiting_runs: Type.Integer({ minimum: 0 }),
  idle_expires_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  limits: Type.Object({ memory_mb: Type.Number(), cpus: Type.Number(), pids_limit: Type.Integer() }),
});
/** A project's container. */
export type ProjectContainerView = Static<typeof ProjectContainerView>;

// ---------------------------------------------------------------- artifacts

/** Response of `GET /api/runs/:id/artifacts`: the files listed in the run's `run.completed` event. */
export const ArtifactList = Type.Object({ run_id: Type.String(), status: Type.String(), artifacts: Type.Array(ArtifactSchema) });
/** Response of `GET /api/runs/:id/artifacts`. */
export type ArtifactList = Static<typeof ArtifactList>;

// ---------------------------------------------------------------- preview links

/** Body of `POST /api/runs/:id/preview-links`: the run's port, and the link's lifetime in seconds (default `proxy.preview_ttl_secs`). */
export const PreviewLinkBody = Type.Object(
  {
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    ttl_secs: Type.Optional(Type.Integer({ minimum: 10, maximum: 604800 })),
  },
  { additionalProperties: false },
);
/** Body of `POST /api/runs/:id/preview-links`. */
export type PreviewLinkBody = Static<typeof PreviewLinkBody>;

/** Response of `POST /api/runs/:id/preview-links` (201). `expires_at`: ISO 8601 UTC. */
export const PreviewLinkResponse = Type.Object({
  url: Type.String({ description: "absolute URL (from the request's Host); opening it sets a cookie for the proxy path and redirects there" }),
  path: Type.String(),
  expires_at: Type.String({ format: "date-time" }),
});
/** Response of `POST /api/runs/:id/preview-links`. */
export type PreviewLinkResponse = Static<typeof PreviewLinkResponse>;

/** A desktop service's state: `starting`, `ready` or `failed`. */
const DesktopServiceState = Type.Union([Type.Literal("starting"), Type.Literal("ready"), Type.Literal("failed")]);

/** Response of `GET /api/runs/:id/desktop`: the run's desktop (`metadata.desktop: true`). `expires_at`: ISO 8601 UTC. */
export const DesktopResponse = Type.Object({
  url: Type.Union([Type.String(), Type.Null()], { description: "absolute noVNC URL: a preview link through the run's port proxy (it sets a cookie for the proxy path, WebSocket included); null without a docker network" }),
  audio_url: Type.Union([Type.String(), Type.Null()], { description: "absolute preview link of the HTTP audio stream (WAV, 44.1 kHz stereo s16le); null without a docker network" }),
  expires_at: Type.String({ format: "date-time" }),
  display: Type.String({ description: "the X display agents see as DISPLAY" }),
  size: Type.String({ description: "WIDTHxHEIGHT" }),
  ready: Type.Boolean({ description: "every service is ready" }),
  services: Type.Object({ vnc: DesktopServiceState, novnc: DesktopServiceState, audio: DesktopServiceState, ime: DesktopServiceState, xvfb: DesktopServiceState, wm: DesktopServiceState }),
  errors: Type.Record(Type.String(), Type.String()),
});
/** Response of `GET /api/runs/:id/desktop`. */
export type DesktopResponse = Static<typeof DesktopResponse>;
