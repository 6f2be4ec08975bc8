/**
 * The configuration schema (docs/architecture.md#configuration). One TypeBox schema gives the
 * TypeScript type, the ajv validation at boot and the documented defaults.
 * Sources, lowest to highest precedence: defaults < file (`openrunner.yaml`) <
 * environment (`OPENRUNNER_*`) < CLI flags. See `load.ts`.
 */
import { Type, type Static } from "@sinclair/typebox";
import { ProxyConfigSchema } from "./proxy-schema.ts";

/**
 * Marks a setting secret: `GET /api/config` shows it redacted, config errors never echo it, `config.changed`
 * never carries it. Schema keyword `x-secret` (registered with the config validator in `load.ts`).
 */
const SECRET = { "x-secret": true } as const;

export const ConfigSchema = Type.Object(
  {
    /** `host:port` to listen on; port 0 picks a free port. */
    addr: Type.String({ pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^:\\s]+):(\\d{1,5})$", default: "127.0.0.1:3000", description: "host:port" }),
    /** Data folder: SQLite database, generated JWT secret. */
    data_dir: Type.String({ minLength: 1, default: "./data" }),
    /** Root of the per-run workspaces; default `<data_dir>/workspaces`. */
    workspaces_dir: Type.Optional(Type.String({ minLength: 1 })),
    /** First admin's password (used only when the users table is empty). */
    admin_password: Type.Optional(Type.String({ minLength: 8, ...SECRET })),
    /** JWT HS256 secret; otherwise generated once into `<data_dir>/jwt-secret` (mode 0600). */
    jwt_secret: Type.Optional(Type.String({ minLength: 32, ...SECRET })),
    /** JWT lifetime in seconds. */
    jwt_expires_in_secs: Type.Integer({ minimum: 60, maximum: 2592000, default: 86400 }),
    /**
     * Distributed mode (docs/architecture.md#scale-out): the PostgreSQL store shared by API servers and workers, e.g.
     * `postgresql://openrunner:…@db.internal:5432/openrunner`; unset: the embedded SQLite store in the data folder.
     */
    database_url: Type.Optional(Type.String({ pattern: "^postgres(ql)?://", description: "postgres:// or postgresql:// URL", ...SECRET })),
    /** Distributed mode: a worker that has not renewed its runs' leases for this long loses them (`worker_lost`), ms. */
    cluster_lease_ms: Type.Integer({ minimum: 1000, maximum: 3600000, default: 15000 }),
    /** Distributed mode: how often a worker renews its leases and looks for runs, ms (well under the lease). */
    cluster_heartbeat_ms: Type.Integer({ minimum: 100, maximum: 600000, default: 3000 }),
    /** `openrunner worker`: most runs this worker executes at once. */
    worker_capacity: Type.Integer({ minimum: 1, maximum: 10000, default: 4 }),
    max_concurrent_runs: Type.Integer({ minimum: 1, maximum: 10000, default: 8 }),
    max_concurrent_runs_per_user: Type.Integer({ minimum: 1, maximum: 10000, default: 4 }),
    /**
     * Whether non-admin users may start `shell` runs on the host. Off by default: a host
     * shell has the server's OS privileges (its data folder, its environment).
     */
    allow_shell_for_users: Type.Boolean({ default: false }),
    /** Runs one user may have waiting in the queue; past it POST /api/runs answers 429. */
    max_queued_runs_per_user: Type.Integer({ minimum: 1, maximum: 100000, default: 100 }),
    /** Most runs one `POST /api/runs/batch` may hold (all are admitted or none). */
    batch_max_runs: Type.Integer({ minimum: 1, maximum: 10000, default: 100 }),
    /** Seconds a queued run waits before its admission priority rises one level (so a `low` run is never starved). */
    priority_aging_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 60 }),
    /**
     * OS user for host runs, `"uid:gid"`, or `"none"` for the server's own user. Unset: 65534:65534
     * (nobody) when the server runs as root, so agents cannot read the data folder or the server's environment.
     */
    host_run_user: Type.Optional(Type.String({ pattern: "^(none|[0-9]+:[0-9]+)$", description: '"uid:gid" or "none"' })),
    /** Default run timeout in seconds. */
    default_timeout_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 300 }),
    /** Upper bound a request may ask for with `metadata.timeout_secs`. */
    max_timeout_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 86400 }),
    /** Grace between SIGTERM and SIGKILL of a run's process group, ms. */
    kill_grace_ms: Type.Integer({ minimum: 0, maximum: 600000, default: 5000 }),
    /** Stall watchdog (`src/run/stall.ts`): seconds without an event, while the agent lives, before `run.stalled`; 0: off. */
    stall_secs: Type.Number({ minimum: 0, maximum: 86400, default: 0 }),
    /** Seconds without an event before a stalled run fails with code `stalled`; 0: never (only `run.stalled`). */
    stall_fail_secs: Type.Number({ minimum: 0, maximum: 604800, default: 0 }),
    /** OpenTelemetry traces (`src/telemetry/`): off (no SDK loaded) unless `otlp_endpoint` is set. */
    telemetry: Type.Object(
      {
        /** OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces` (JSON encoding). */
        otlp_endpoint: Type.Optional(Type.String({ pattern: "^https?://", description: "http(s) URL of the OTLP/HTTP traces endpoint" })),
        /** `service.name` of the exported spans. */
        service_name: Type.String({ minLength: 1, maxLength: 200, default: "openrunner" }),
        /** Extra headers of the export requests (e.g. an API key of the collector). */
        headers: Type.Record(Type.String(), Type.String(), { default: {} }),
      },
      { additionalProperties: false, default: {} },
    ),
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
    /** The port proxy (`/proxy/:port/*`, `/api/runs/:id/proxy/:port/*`); off until `allowed_ports` names ports. */
    proxy: ProxyConfigSchema,
    /** Approvals of agents that ask before they act (ACP `session/request_permission`); see `src/run/permissions.ts`. */
    permissions: Type.Object(
      {
        /** Policy of runs that set no `metadata.permission_policy`: `allow`, `deny`, or `ask` the run's owner. */
        default_policy: Type.Union([Type.Literal("allow"), Type.Literal("deny"), Type.Literal("ask")], { default: "ask" }),
        /** How long an `ask` request waits for an answer (runs may set `metadata.permission_timeout_secs`), seconds. */
        timeout_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 300 }),
        /** What an unanswered request gets at its deadline: the agent's first reject option, or its first allow option. */
        timeout_decision: Type.Union([Type.Literal("reject"), Type.Literal("allow")], { default: "reject" }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Per-run MCP servers (`metadata.mcp_servers`, see `src/run/mcp-servers.ts`). Off until the lists name something. */
    mcp: Type.Object(
      {
        /** Commands a stdio MCP server of a run may be started with, exactly as the request names them (a path or a name on the agent's PATH). An interpreter listed here runs any script it is given. */
        allowed_commands: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: 1000, default: [] }),
        /** Hosts an HTTP MCP server's URL may name: exact names or IP literals (`127.0.0.1`, `localhost` for loopback), `*.example.com` for any subdomain. */
        allowed_hosts: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 1000, default: [] }),
        /**
         * Environment variable names a stdio MCP server of a run may be given (`metadata.mcp_servers.<name>.env`); any
         * other name is refused (an allowed command can often be turned into another one through its environment:
         * `GIT_CONFIG_*`, `BASH_FUNC_*`, loader variables). Loader and start-up variables stay refused even if listed.
         */
        allowed_env: Type.Array(Type.String({ minLength: 1, maxLength: 256, pattern: "^[A-Za-z_][A-Za-z0-9_]*$" }), { maxItems: 1000, default: [] }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Outgoing webhooks (`/api/webhooks`); see `src/webhooks/`. Off until `allowed_hosts` names targets. */
    webhooks: Type.Object(
      {
        /**
         * Hosts webhook URLs may name: exact names or IP literals, `*.example.com` for any subdomain, `*` for any public host.
         * Default none: every registration is refused. An IP literal listed here may be private.
         */
        allowed_hosts: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 1000, default: [] }),
        /** Allow targets resolving to loopback, private, link-local, unique-local or other internal addresses. */
        allow_private: Type.Boolean({ default: false }),
        /** Attempts per delivery (the first one included); retried on network errors, timeouts and HTTP 408, 429 and 5xx. */
        max_attempts: Type.Integer({ minimum: 1, maximum: 20, default: 5 }),
        /** Timeout of one attempt (connect to last byte), ms. */
        timeout_ms: Type.Integer({ minimum: 100, maximum: 120000, default: 10000 }),
        /** Delay before the first retry, ms; doubled per attempt (with jitter), at most `retry_max_ms`. */
        retry_base_ms: Type.Integer({ minimum: 10, maximum: 3600000, default: 1000 }),
        retry_max_ms: Type.Integer({ minimum: 10, maximum: 86400000, default: 300000 }),
        /** Deliveries held at once (queued, in flight or waiting to retry); past it new ones are dropped, logged and counted. */
        max_queue: Type.Integer({ minimum: 1, maximum: 1000000, default: 1000 }),
        /** Deliveries sent concurrently. */
        concurrency: Type.Integer({ minimum: 1, maximum: 256, default: 4 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Per-agent settings, keyed by agent name (`claude_code`, `codex`, …). */
    agents: Type.Record(
      Type.String(),
      Type.Object(
        {
          command: Type.Optional(Type.String()),
          base_url: Type.Optional(Type.String()),
          api_key: Type.Optional(Type.String(SECRET)),
          model: Type.Optional(Type.String()),
          env: Type.Optional(Type.Record(Type.String(), Type.String(), SECRET)),
          args: Type.Optional(Type.Array(Type.String())),
          /** Caps the CLI's own HTTP retries where it has a knob (claude, codex, gemini). */
          max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
          /** Image for this agent's docker runs (default `docker.image`). */
          image: Type.Optional(Type.String({ minLength: 1 })),
          /** argv[0] inside a container (default: the basename of the host command, looked up in the image's PATH). */
          container_command: Type.Optional(Type.String({ minLength: 1 })),
          /** Model API base URL for this agent's docker runs (the host's address as seen from `docker.network`); default `base_url`. */
          container_base_url: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
      { default: {} },
    ),
    /**
     * ACP agents (`metadata.agent_type: "acp"`, `metadata.acp_agent: <name>`), merged over the built-in
     * `claude-code-acp`, `codex-acp`, `gemini` (`--experimental-acp`) and `opencode` (`acp`); see `src/agent/acp/agents.ts`.
     * A new name needs `command`; `vendor` says how `base_url`/`api_key`/`model` reach it (built-ins know theirs).
     */
    acp_agents: Type.Record(
      Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" }),
      Type.Object(
        {
          command: Type.Optional(Type.String({ minLength: 1 })),
          args: Type.Optional(Type.Array(Type.String())),
          env: Type.Optional(Type.Record(Type.String(), Type.String(), SECRET)),
          base_url: Type.Optional(Type.String()),
          api_key: Type.Optional(Type.String(SECRET)),
          model: Type.Optional(Type.String()),
          vendor: Type.Optional(Type.Union([Type.Literal("claude"), Type.Literal("codex"), Type.Literal("gemini"), Type.Literal("opencode"), Type.Literal("none")])),
          /** MCP servers passed through in `session/new` (ACP `McpServer` objects: stdio `{name, command, args, env}` or `{type: "http"|"sse", name, url, headers}`). */
          mcp_servers: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }) }, { additionalProperties: true }), SECRET)),
          /** Image for this agent's docker runs (default `docker.image`). */
          image: Type.Optional(Type.String({ minLength: 1 })),
          /** argv[0] inside a container (default: the basename of `command`, looked up in the image's PATH). */
          container_command: Type.Optional(Type.String({ minLength: 1 })),
          /** Model API base URL for this agent's docker runs (the host's address as seen from `docker.network`); default `base_url`. */
          container_base_url: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
      { default: {} },
    ),
    /** Docker isolation (docs/architecture.md#containers): image, container user, limits and their admin maxima, network. */
    docker: Type.Object(
      {
        /** Image of per-run containers (`openrunner image build` makes it). */
        image: Type.String({ minLength: 1, default: "openrunner-agent:latest" }),
        /** Numeric non-root `uid:gid` the container runs as. */
        user: Type.String({ pattern: "^[1-9][0-9]{0,9}(:[1-9][0-9]{0,9})?$", default: "1000:1000", description: "a non-root numeric uid:gid" }),
        /** Default memory limit, MiB (no swap beyond it); a run may ask for up to `max_memory_mb`. */
        memory_mb: Type.Integer({ minimum: 6, maximum: 1048576, default: 2048 }),
        max_memory_mb: Type.Integer({ minimum: 6, maximum: 1048576, default: 8192 }),
        /** Default CPU quota (fractions allowed); a run may ask for up to `max_cpus`. */
        cpus: Type.Number({ minimum: 0.01, maximum: 1024, default: 2 }),
        max_cpus: Type.Number({ minimum: 0.01, maximum: 1024, default: 4 }),
        /** Default process limit; a run may ask for up to `max_pids_limit`. */
        pids_limit: Type.Integer({ minimum: 1, maximum: 4194304, default: 512 }),
        max_pids_limit: Type.Integer({ minimum: 1, maximum: 4194304, default: 4096 }),
        /** Docker network to join; absent: no network at all (`none`). `host` is refused. */
        network: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        /** Isolation of runs that do not say (`metadata.isolation`). */
        default_isolation: Type.Union([Type.Literal("none"), Type.Literal("docker")], { default: "none" }),
        /** How long an unused project container (`metadata.project_id`) is kept after its last run ended or keepalive. */
        project_idle_secs: Type.Integer({ minimum: 1, maximum: 604800, default: 600 }),
        /** Runs at a time in one project container. */
        max_runs_per_project: Type.Integer({ minimum: 1, maximum: 1000, default: 1 }),
        /** Project containers one user may have at once (each long-lived, up to max_memory_mb); past it creating another answers 409 `project_limit`. */
        max_projects_per_user: Type.Integer({ minimum: 1, maximum: 1000, default: 8 }),
        /** A run on a project container already running `max_runs_per_project` runs: `wait` (in `preparing`) or `reject` (409 `project_busy`). */
        project_busy: Type.Union([Type.Literal("wait"), Type.Literal("reject")], { default: "wait" }),
        /** Started containers kept ready per image for per-run runs with the default limits (0: no warm pool). */
        warm_pool: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
        /** Period of the idle-container sweep. */
        sweep_interval_secs: Type.Integer({ minimum: 1, maximum: 86400, default: 30 }),
        /** Batch images `agent_type: "task"` runs may name in `metadata.image` (exact references); empty: task runs are off. */
        task_images: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 1000, default: [] }),
        /** Artifacts of a task run: at most this many files are listed (the rest is reported in a `log` warning). */
        artifacts_max_files: Type.Integer({ minimum: 1, maximum: 1000000, default: 1000 }),
        /** Artifacts of a task run: at most this many bytes in total are listed. */
        artifacts_max_bytes: Type.Integer({ minimum: 1, maximum: 1099511627776, default: 1073741824 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * Model providers of the `openrunner` agent, by name: a run's `metadata.model` is `<provider>/<model>`
     * (`src/agent/native/providers.ts`). The key comes from `api_key`, else the environment variable `api_key_env`.
     */
    providers: Type.Record(
      Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" }),
      Type.Object(
        {
          /** Wire API: OpenAI `responses`, OpenAI-compatible `chat` (Chat Completions: vLLM, Ollama …), or `anthropic` (Messages). */
          api: Type.Union([Type.Literal("responses"), Type.Literal("chat"), Type.Literal("anthropic")]),
          /** API base URL (OpenAI: with `/v1`; Anthropic: without); default the vendor's. */
          base_url: Type.Optional(Type.String({ minLength: 1 })),
          api_key: Type.Optional(Type.String({ minLength: 1 })),
          /** Name of the server's environment variable holding the key (e.g. `OPENAI_API_KEY`). */
          api_key_env: Type.Optional(Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]*$" })),
          /** The SDK's retries of 408/409/429/5xx and connection errors (default 2). */
          max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
          /** Timeout of one model request, ms (default 600000). */
          timeout_ms: Type.Optional(Type.Integer({ minimum: 1000, maximum: 3600000 })),
          /** USD per million tokens, by model name (without the provider); a model not listed costs 0 (no `cost_usd`). */
          prices: Type.Optional(
            Type.Record(
              Type.String({ minLength: 1 }),
              Type.Object(
                {
                  input_per_mtok: Type.Number({ minimum: 0 }),
                  output_per_mtok: Type.Number({ minimum: 0 }),
                  cache_read_per_mtok: Type.Optional(Type.Number({ minimum: 0 })),
                  cache_write_per_mtok: Type.Optional(Type.Number({ minimum: 0 })),
                },
                { additionalProperties: false },
              ),
            ),
          ),
        },
        { additionalProperties: false },
      ),
      { default: {} },
    ),
    /** The `openrunner` agent's loop (`src/agent/native/`): default model and per-run limits. */
    native: Type.Object(
      {
        /** Model of runs that name none, `<provider>/<model>`. */
        model: Type.Optional(Type.String({ pattern: "^[^/]+/.+$", description: "<provider>/<model>" })),
        /** Model requests one run may make; past it the run fails `max_turns`. */
        max_turns: Type.Integer({ minimum: 1, maximum: 100000, default: 50 }),
        /** Tokens (input + output, summed over the run's requests) one run may use; past it the run fails `max_tokens`. */
        max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
        /** USD one run may cost (from `providers.<p>.prices`); past it the run fails `max_cost`. */
        max_cost_usd: Type.Optional(Type.Number({ minimum: 0 })),
        /** Output tokens one model request may produce. */
        max_output_tokens: Type.Integer({ minimum: 1, maximum: 1000000, default: 8192 }),
        /** `bash` tool: default timeout of a command, ms; the largest one a call may ask for; output kept, bytes. */
        bash_timeout_ms: Type.Integer({ minimum: 100, maximum: 86400000, default: 120000 }),
        bash_max_timeout_ms: Type.Integer({ minimum: 100, maximum: 86400000, default: 600000 }),
        bash_output_bytes: Type.Integer({ minimum: 1024, maximum: 16777216, default: 65536 }),
        /** Replaces the built-in system prompt. */
        system_prompt: Type.Optional(Type.String({ minLength: 1, maxLength: 100000 })),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

/** The validated configuration. */
export type Config = Static<typeof ConfigSchema>;
