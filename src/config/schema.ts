/**
 * The configuration schema (DESIGN.md section 7). One TypeBox schema gives the
 * TypeScript type, the ajv validation at boot and the documented defaults.
 * Sources, lowest to highest precedence: defaults < file (`openrunner.yaml`) <
 * environment (`OPENRUNNER_*`) < CLI flags. See `load.ts`.
 */
import { Type, type Static } from "@sinclair/typebox";

export const ConfigSchema = Type.Object(
  {
    /** `host:port` to listen on; port 0 picks a free port. */
    addr: Type.String({ pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^:\\s]+):(\\d{1,5})$", default: "127.0.0.1:3000", description: "host:port" }),
    /** Data folder: SQLite database, generated JWT secret. */
    data_dir: Type.String({ minLength: 1, default: "./data" }),
    /** Root of the per-run workspaces; default `<data_dir>/workspaces`. */
    workspaces_dir: Type.Optional(Type.String({ minLength: 1 })),
    /** First admin's password (used only when the users table is empty). */
    admin_password: Type.Optional(Type.String({ minLength: 8 })),
    /** JWT HS256 secret; otherwise generated once into `<data_dir>/jwt-secret` (mode 0600). */
    jwt_secret: Type.Optional(Type.String({ minLength: 32 })),
    /** JWT lifetime in seconds. */
    jwt_expires_in_secs: Type.Integer({ minimum: 60, maximum: 2592000, default: 86400 }),
    max_concurrent_runs: Type.Integer({ minimum: 1, maximum: 10000, default: 8 }),
    max_concurrent_runs_per_user: Type.Integer({ minimum: 1, maximum: 10000, default: 4 }),
    /** Default run timeout in seconds. */
    default_timeout_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 300 }),
    /** Upper bound a request may ask for with `metadata.timeout_secs`. */
    max_timeout_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 86400 }),
    /** Grace between SIGTERM and SIGKILL of a run's process group, ms. */
    kill_grace_ms: Type.Integer({ minimum: 0, maximum: 600000, default: 5000 }),
    log_level: Type.Union(
      ["silly", "trace", "debug", "info", "warn", "error", "fatal"].map((l) => Type.Literal(l)),
      { default: "info" },
    ),
    /** Force JSON logs (default: JSON unless stdout is a TTY). */
    log_json: Type.Optional(Type.Boolean()),
    /** Maximum request body, bytes. */
    body_limit_bytes: Type.Integer({ minimum: 1024, maximum: 104857600, default: 1048576 }),
    /** Per-subscriber SSE buffer, events; past it the subscriber gets `stream.lagged`. */
    sse_buffer_events: Type.Integer({ minimum: 16, maximum: 1000000, default: 8192 }),
    /** SSE heartbeat comment interval, ms. */
    sse_heartbeat_ms: Type.Integer({ minimum: 100, maximum: 600000, default: 15000 }),
    /** What shutdown does with running runs: cancel them, or wait up to `shutdown_grace_ms`. */
    shutdown_runs: Type.Union([Type.Literal("cancel"), Type.Literal("wait")], { default: "cancel" }),
    shutdown_grace_ms: Type.Integer({ minimum: 0, maximum: 3600000, default: 10000 }),
    /** Login attempts allowed per username and per address in `login_window_secs`. */
    login_max_attempts: Type.Integer({ minimum: 1, maximum: 100000, default: 10 }),
    login_window_secs: Type.Integer({ minimum: 1, maximum: 86400, default: 300 }),
    /** Per-agent settings, keyed by agent name (`claude_code`, `codex`, …). */
    agents: Type.Record(
      Type.String(),
      Type.Object(
        {
          command: Type.Optional(Type.String()),
          base_url: Type.Optional(Type.String()),
          api_key: Type.Optional(Type.String()),
          model: Type.Optional(Type.String()),
          env: Type.Optional(Type.Record(Type.String(), Type.String())),
          args: Type.Optional(Type.Array(Type.String())),
          /** Caps the CLI's own HTTP retries where it has a knob (claude, codex, gemini). */
          max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
        },
        { additionalProperties: false },
      ),
      { default: {} },
    ),
  },
  { additionalProperties: false },
);

/** The validated configuration. */
export type Config = Static<typeof ConfigSchema>;
