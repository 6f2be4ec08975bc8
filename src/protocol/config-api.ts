/**
 * The configuration API (`GET`/`PATCH /api/config`, admins) and the tool list
 * (`GET /api/tools`): request and response schemas, and the `config.changed`
 * audit record (docs/architecture.md#configuration). Part of the contract
 * layer: imports nothing of the project.
 */
import { Type, type Static } from "@sinclair/typebox";

/** Where a setting's value came from; `api`: changed by `PATCH /api/config` since the server started. */
export const CONFIG_SOURCES = ["default", "file", "env", "flag", "api"] as const;
/** One of {@link CONFIG_SOURCES}. */
export type ConfigSourceName = (typeof CONFIG_SOURCES)[number];

const SourceSchema = Type.Union(CONFIG_SOURCES.map((s) => Type.Literal(s)));

/** Response of `GET /api/config`. */
export const ConfigView = Type.Object({
  /** The effective configuration; secret settings (the schema's `x-secret`, names like `*_secret`, `api_key`, `env`) read `[redacted]`. */
  config: Type.Record(Type.String(), Type.Unknown()),
  /** Every leaf setting by dotted path (`docker.image`, `agents.codex.model`) -> where its value came from. */
  sources: Type.Record(Type.String(), SourceSchema),
  /** The settings `PATCH /api/config` may change (a section counts with every key in it). */
  live: Type.Array(Type.String()),
  /** The configuration file the server read (absolute), or null. */
  file: Type.Union([Type.String(), Type.Null()]),
});
/** Response of `GET /api/config`. */
export type ConfigView = Static<typeof ConfigView>;

/**
 * Body of `PATCH /api/config`: a JSON merge patch (RFC 7396) of live settings, e.g.
 * `{"max_concurrent_runs": 16, "permissions": {"default_policy": "deny"}}`; `null` resets a setting to its default.
 */
export const PatchConfigBody = Type.Record(Type.String(), Type.Unknown(), { description: "a JSON merge patch of live settings" });

/** Query of `PATCH /api/config`: `persist=true` also writes the patched keys to the configuration file. */
export const PatchConfigQuery = Type.Object({ persist: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])) }, { additionalProperties: false });

/** One changed setting; `from`/`to` are left out for secret settings. */
export const ConfigChangeView = Type.Object({
  key: Type.String({ description: "dotted path, e.g. `permissions.default_policy`" }),
  secret: Type.Boolean(),
  from: Type.Optional(Type.Unknown()),
  to: Type.Optional(Type.Unknown()),
});
/** One changed setting. */
export type ConfigChangeView = Static<typeof ConfigChangeView>;

/** Response of `PATCH /api/config`: what changed, whether the file was written, and the configuration as {@link ConfigView}. */
export const PatchConfigResponse = Type.Composite([ConfigView, Type.Object({ changed: Type.Array(ConfigChangeView), persisted: Type.Boolean() })]);
/** Response of `PATCH /api/config`. */
export type PatchConfigResponse = Static<typeof PatchConfigResponse>;

/** The `config.changed` bus event: who changed what (never a secret value), and whether it was written to the file. */
export interface ConfigChangedEvent {
  /** `user:<name>`. */
  by: string;
  user_id: string;
  changes: ConfigChangeView[];
  persisted: boolean;
  /** ISO 8601 UTC. */
  at: string;
}

/** A tool of the native `openrunner` agent, as `GET /api/tools` lists it. */
export const ToolView = Type.Object({
  name: Type.String(),
  description: Type.String(),
  /** JSON Schema of the tool's input object. */
  input_schema: Type.Record(Type.String(), Type.Unknown()),
  /** The tool changes things (files, commands): the run's permission policy decides each call. */
  mutating: Type.Boolean(),
});
/** Response of `GET /api/tools`. */
export const ToolListResponse = Type.Object({ tools: Type.Array(ToolView) });
/** Response of `GET /api/tools`. */
export type ToolListResponse = Static<typeof ToolListResponse>;
