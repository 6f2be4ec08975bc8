/**
 * The composition root of the command line: builds the commander program and
 * runs it. The only module (besides tests) that reads `process.env` and
 * `process.argv`, and the only one that calls `process.exit`.
 *
 * Exit codes: 0 success; 1 failure (API error, unreachable server, a run that
 * did not complete); 2 bad usage or an invalid configuration; 130 cancelled at
 * a prompt.
 *
 * @example
 * openrunner serve --addr 127.0.0.1:3000 --data-dir ./data
 * openrunner run --agent shell "echo hello"
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { runAgents } from "./cli/agents.ts";
import { runCancel } from "./cli/cancel.ts";
import { runAnswer, runPermissions } from "./cli/permissions.ts";
import { describeCliError } from "./cli/client.ts";
import { runImageBuild } from "./cli/image.ts";
import { registerTunnelCommands, type Closable } from "./cli/tunnel.ts";
import type { CliContext } from "./cli/context.ts";
import { runLogin } from "./cli/login.ts";
import { runLogs } from "./cli/logs.ts";
import { runMcp } from "./cli/mcp.ts";
import { PromptCancelledError } from "./cli/prompt.ts";
import { runRunCommand } from "./cli/run.ts";
import { runRunsList } from "./cli/runs.ts";
import { runUsersAdd, runUsersList, runUsersRemove } from "./cli/users.ts";
import { ConfigError } from "./errors.ts";
import { LOG_LEVELS, type Log, type LogLevelName } from "./log.ts";
import { RUN_STATUSES } from "./protocol/events.ts";
import type { ServerHandle } from "./server.ts";

/** What an action leaves behind: an exit code, or "serving" (keep the process alive). */
type Outcome = number | "serving";

/** Flags of `serve`. */
interface ServeFlags {
  config?: string;
  addr?: string;
  dataDir?: string;
  logLevel?: string;
  tunnelServer?: string;
  tunnelClientId?: string;
  tunnelSecretFile?: string;
}

/** Flags of `worker`. */
interface WorkerFlags {
  config?: string;
  dataDir?: string;
  capacity?: number;
  logLevel?: string;
}

/** Parses a positive integer option value, or fails as a usage error (exit 2). */
function parsePositiveInt(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError("expected a positive integer.");
  return Number(value);
}

function readVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

/**
 * Builds the program. Each action stores its outcome through `setOutcome`.
 * @param ctx environment and streams handed to the client commands
 */
function buildProgram(ctx: CliContext, setOutcome: (o: Outcome) => void): Command {
  const program = new Command("openrunner")
    .description("Self-hosted orchestrator for coding-agent runs: server and client.")
    .version(readVersion())
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)");
  const serverOpt = () => new Option("--server <url>", "server URL (default: $OPENRUNNER_URL, the stored login, http://127.0.0.1:3000)");
  const act = <A extends unknown[]>(fn: (...args: A) => Promise<Outcome>) => async (...args: A) => setOutcome(await fn(...args));

  program
    .command("serve")
    .description("start the server")
    .option("--config <file>", "configuration file (YAML)")
    .option("--addr <host:port>", "address to listen on")
    .option("--data-dir <dir>", "data folder")
    .option("--log-level <level>", `log level (${Object.keys(LOG_LEVELS).join(", ")})`)
    .option("--tunnel-server <host[:port]>", "expose this server through a tunnel relay (control port default 17001)")
    .option("--tunnel-client-id <id>", "tunnel client id (default: stable id of this machine)")
    .option("--tunnel-secret-file <file>", "file holding the tunnel secret (or set OPENRUNNER_TUNNEL_SECRET)")
    .action(act((flags: ServeFlags) => serve(ctx, flags)));

  program
    .command("worker")
    .description("run agents for the API servers of a distributed set-up (claims queued runs from the shared PostgreSQL store)")
    .option("--config <file>", "configuration file (YAML)")
    .option("--data-dir <dir>", "data folder of this worker (workspaces, agent homes)")
    .option("--capacity <n>", "most runs at once on this worker", parsePositiveInt)
    .option("--log-level <level>", `log level (${Object.keys(LOG_LEVELS).join(", ")})`)
    .action(act((flags: WorkerFlags) => worker(ctx, flags)));

  program
    .command("login")
    .description("log in and store the token")
    .addOption(serverOpt())
    .option("--username <name>", "user name (prompted for on a terminal)")
    .option("--password-stdin", "read the password from stdin")
    .action(act((o: { server?: string; username?: string; passwordStdin?: boolean }) => runLogin(ctx, o)));

  program
    .command("run")
    .description("start a run and stream it; exit 0 only if it completes")
    .argument("<text>", "the prompt (or the command, for the shell agent)")
    .requiredOption("--agent <agent>", "agent: shell, claude_code, codex, opencode, gemini, acp")
    .option("--cwd <dir>", "working directory of the run")
    .option("--timeout <secs>", "timeout in seconds", parsePositiveInt)
    .option("--model <model>", "model name passed to the agent")
    .option("--resume <run>", "continue the session of this earlier run")
    .option("--acp-agent <name>", "the ACP agent of an `--agent acp` run (see `openrunner agents`)")
    .addOption(new Option("--isolation <mode>", "run on the host or in a container").choices(["none", "docker"]))
    .option("--project <id>", "run in this project's long-lived container (implies docker)")
    .addOption(new Option("--permission-policy <policy>", "who answers the agent's permission requests").choices(["allow", "deny", "ask"]))
    .option("--json", "print each event as one JSON line")
    .addOption(serverOpt())
    .action(act((text: string, o: Omit<Parameters<typeof runRunCommand>[1], "text">) => runRunCommand(ctx, { ...o, text })));

  program
    .command("runs")
    .description("list runs, newest first")
    .addOption(new Option("--status <status>", "only runs in this status").choices(RUN_STATUSES))
    .option("--agent <agent>", "only runs of this agent")
    .option("--limit <n>", "runs per page", parsePositiveInt)
    .option("--all", "fetch every page")
    .addOption(serverOpt())
    .action(act((o: Parameters<typeof runRunsList>[1]) => runRunsList(ctx, o)));

  program
    .command("logs")
    .description("print a run's events; -f follows it until it ends")
    .argument("<run>", "run id")
    .option("-f, --follow", "follow the live stream")
    .option("--json", "print each event as one JSON line")
    .addOption(serverOpt())
    .action(act((runId: string, o: { server?: string; follow?: boolean; json?: boolean }) => runLogs(ctx, { ...o, runId })));

  program
    .command("cancel")
    .description("cancel a run")
    .argument("<run>", "run id")
    .addOption(serverOpt())
    .action(act((runId: string, o: { server?: string }) => runCancel(ctx, { ...o, runId })));

  program
    .command("permissions")
    .description("list a run's open permission requests and their options")
    .argument("<run>", "run id")
    .option("--json", "print each request as one JSON line")
    .addOption(serverOpt())
    .action(act((runId: string, o: { server?: string; json?: boolean }) => runPermissions(ctx, { ...o, runId })));

  program
    .command("answer")
    .description("answer a run's permission request with one of its options")
    .argument("<run>", "run id")
    .argument("<request>", "request id (see `openrunner permissions RUN`)")
    .argument("<option>", "option id")
    .addOption(serverOpt())
    .action(act((runId: string, requestId: string, optionId: string, o: { server?: string }) => runAnswer(ctx, { ...o, runId, requestId, optionId })));

  program
    .command("agents")
    .description("show which agents work on the server")
    .addOption(serverOpt())
    .action(act((o: { server?: string }) => runAgents(ctx, o)));

  program
    .command("mcp")
    .description("serve OpenRunner's MCP tools over stdio (for an assistant), with the stored login")
    .addOption(serverOpt())
    .action(act((o: { server?: string }) => runMcp(ctx, { ...o, version: readVersion() })));

  const image = program.command("image").description("the agent image for docker runs");
  image
    .command("build")
    .description("build the agent image in the docker engine at DOCKER_HOST (default /var/run/docker.sock)")
    .option("--offline", "build FROM scratch from this machine's node and busybox (no registry needed)")
    .option("--tag <name:tag>", "image tag (default openrunner-agent:latest; with --desktop openrunner-desktop:latest)")
    .option("--agents <names>", "with --offline: agent CLIs to copy from .agents/bin, comma-separated, or none (default: claude,claude-code-acp)")
    .option("--desktop", "the desktop image instead: Debian's Xvfb, VNC, noVNC, chromium, PulseAudio, ibus from debootstrap of the configured mirror (root)")
    .option("--force", "with --desktop: rebuild even when the image is current")
    .action(act((o: { offline?: boolean; tag?: string; agents?: string; desktop?: boolean; force?: boolean }) => runImageBuild(ctx, o)));

  const users = program.command("users").description("manage users (admin)");
  users
    .command("add")
    .argument("<name>", "user name")
    .addOption(new Option("--role <role>", "role").choices(["admin", "user"]).default("user"))
    .option("--password-stdin", "read the password from stdin")
    .addOption(serverOpt())
    .action(act((username: string, o: { server?: string; role?: string; passwordStdin?: boolean }) => runUsersAdd(ctx, { ...o, username })));
  users
    .command("list")
    .addOption(serverOpt())
    .action(act((o: { server?: string }) => runUsersList(ctx, o)));
  users
    .command("rm")
    .argument("<id>", "user id")
    .addOption(serverOpt())
    .action(act((id: string, o: { server?: string }) => runUsersRemove(ctx, { ...o, id })));
  registerTunnelCommands(
    program,
    Object.assign(Object.create(ctx) as CliContext, {
      // Object.create keeps ctx's lazy getters (stdin)
      setOutcome: (code: number) => setOutcome(code),
      keepAlive: (handle: Closable, log: Log) => {
        installShutdownHandlers(handle, log, ctx);
        setOutcome("serving");
      },
      exit: (code: number) => exitAfterFlush(code),
    }),
  );
  return program;
}

/**
 * `serve`: loads the configuration, starts the server, installs the signal
 * handlers. The server modules are imported here, so client commands never
 * load them (nor the native SQLite binding).
 */
async function serve(ctx: CliContext, flags: ServeFlags): Promise<Outcome> {
  let handle: ServerHandle;
  let log: Log;
  try {
    const [{ loadConfigWithSources }, { startServer }, { createRootLogger }] = await Promise.all([
      import("./config/load.ts"),
      import("./server.ts"),
      import("./log.ts"),
    ]);
    const { config, sources, file } = loadConfigWithSources({
      env: { ...ctx.env },
      flags: { addr: flags.addr, data_dir: flags.dataDir, log_level: flags.logLevel },
      ...(flags.config !== undefined ? { configPath: flags.config } : {}),
    });
    const level = (config.log_level in LOG_LEVELS ? config.log_level : "info") as LogLevelName;
    log = createRootLogger({ level, ...(config.log_json !== undefined ? { json: config.log_json } : {}) });
    handle = await startServer({ config, configSources: { sources, file }, env: { ...ctx.env }, log, print: (line) => void process.stdout.write(`${line}\n`) });
  } catch (err) {
    if (err instanceof ConfigError) {
      ctx.stderr.write(`${err.message}\n`);
      return 2;
    }
    ctx.stderr.write(`error: cannot start the server: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  if (flags.tunnelServer === undefined) {
    installShutdownHandlers(handle, log, ctx);
    return "serving";
  }
  // `serve --tunnel-server`: the server's own API, reachable through a public relay.
  let tunnel: { close(): Promise<void> };
  try {
    tunnel = await startServeTunnel(ctx, flags, handle, log);
  } catch (err) {
    ctx.stderr.write(`error: cannot start the tunnel client: ${err instanceof Error ? err.message : String(err)}\n`);
    await handle.close();
    return err instanceof ConfigError ? 2 : 1;
  }
  const server = handle;
  installShutdownHandlers({ close: async () => (await tunnel.close(), await server.close()) }, log, ctx);
  return "serving";
}

/**
 * `worker`: loads the configuration (it must name the PostgreSQL store), starts the engine in the
 * `worker` role (it registers, then claims and runs queued runs), installs the signal handlers.
 */
async function worker(ctx: CliContext, flags: WorkerFlags): Promise<Outcome> {
  let engine: { close(): Promise<void> };
  let log: Log;
  try {
    const [{ loadConfigWithSources }, { createEngine }, { createRootLogger }] = await Promise.all([import("./config/load.ts"), import("./engine.ts"), import("./log.ts")]);
    const { config } = loadConfigWithSources({
      env: { ...ctx.env },
      flags: { data_dir: flags.dataDir, log_level: flags.logLevel, worker_capacity: flags.capacity },
      ...(flags.config !== undefined ? { configPath: flags.config } : {}),
    });
    // From the environment or the file only: a flag would put the URL's password in argv, readable by every local user.
    if (!config.database_url) throw new ConfigError("OPENRUNNER_DATABASE_URL", "the PostgreSQL URL of the API servers' store (environment or configuration file)", "");
    const level = (config.log_level in LOG_LEVELS ? config.log_level : "info") as LogLevelName;
    log = createRootLogger({ level, ...(config.log_json !== undefined ? { json: config.log_json } : {}) });
    const e = await createEngine({ config, env: { ...ctx.env }, log, role: "worker" });
    engine = e;
    const w = e.node.worker!;
    ctx.stdout.write(`OpenRunner worker ${w.id} ready: ${w.agents.map((a) => a.agent).join(", ") || "no agents"}; isolations ${w.isolations.join(", ")}; capacity ${config.worker_capacity}\n`);
  } catch (err) {
    if (err instanceof ConfigError) {
      ctx.stderr.write(`${err.message}\n`);
      return 2;
    }
    ctx.stderr.write(`error: cannot start the worker: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  installShutdownHandlers(engine, log, ctx);
  return "serving";
}

/** Starts the tunnel client that exposes `handle` through the relay named by `--tunnel-server`. */
async function startServeTunnel(ctx: CliContext, flags: ServeFlags, handle: ServerHandle, log: Log): Promise<{ close(): Promise<void> }> {
  const { startTunnelClient } = await import("./tunnel/client.ts");
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(flags.tunnelServer ?? "");
  if (!m) throw new ConfigError("--tunnel-server", "host or host:port", flags.tunnelServer);
  const secret = flags.tunnelSecretFile !== undefined ? readFileSync(flags.tunnelSecretFile, "utf8").trim() : ctx.env.OPENRUNNER_TUNNEL_SECRET;
  if (!secret) throw new ConfigError("OPENRUNNER_TUNNEL_SECRET", "a tunnel secret (or --tunnel-secret-file)", "");
  const local = new URL(handle.url);
  const client = startTunnelClient({
    host: m[1]!.replace(/^\[(.*)\]$/, "$1"),
    controlPort: m[2] !== undefined ? Number(m[2]) : 17001,
    secret,
    ...(flags.tunnelClientId !== undefined ? { clientId: flags.tunnelClientId } : {}),
    localAddr: local.hostname.replace(/^\[(.*)\]$/, "$1"),
    localPort: handle.port,
    publish: handle.bus.publish.bind(handle.bus),
    log: log.getSubLogger({ name: "tunnel.client" }),
  });
  ctx.stdout.write(`tunnel client ${client.clientId} connecting to ${flags.tunnelServer}\n`);
  return client;
}

/**
 * First SIGINT/SIGTERM: `handle.close()` then exit 0 (1 if closing failed).
 * Second: ignored with a note. Third: exit 1 at once.
 */
function installShutdownHandlers(handle: Pick<ServerHandle, "close">, log: Log, ctx: CliContext): void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received += 1;
    if (received === 1) {
      log.info("shutdown requested", { signal });
      handle.close().then(
        () => exitAfterFlush(0),
        (err: unknown) => {
          log.error("shutdown failed", { err: String(err) });
          exitAfterFlush(1);
        },
      );
    } else if (received === 2) {
      ctx.stderr.write(`openrunner: ${signal} received while shutting down; ignored (send it again to force exit)\n`);
    } else {
      ctx.stderr.write(`openrunner: ${signal} received again; exiting now\n`);
      process.exit(1);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Last resort: a bug that escapes every handler is logged, then the server shuts down in
  // order (runs end with their terminal events, the store is flushed) and exits 1.
  let crashing = false;
  const onFatal = (err: unknown, origin: string) => {
    log.fatal("unexpected error; shutting down", { origin, err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    if (crashing) return;
    crashing = true;
    handle.close().finally(() => exitAfterFlush(1));
  };
  process.on("uncaughtException", (err) => onFatal(err, "uncaughtException"));
  process.on("unhandledRejection", (reason) => onFatal(reason, "unhandledRejection"));
}

/** Exits once stdout and stderr have flushed (process.exit can cut piped output). */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

/** Maps what an action threw to an exit code, printing one line when needed. */
function handleError(ctx: CliContext, err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // commander printed it already
  if (err instanceof PromptCancelledError) return 130;
  const { line, exitCode } = describeCliError(err);
  ctx.stderr.write(`${line}\n`);
  return exitCode;
}

/** Runs the command line. */
async function main(): Promise<void> {
  const ctx: CliContext = {
    env: process.env,
    get stdin() {
      return process.stdin; // created on first use only: most commands never read it
    },
    stdout: process.stdout,
    stderr: process.stderr,
  };
  let outcome = 0 as Outcome;
  try {
    await buildProgram(ctx, (o) => (outcome = o)).parseAsync(process.argv);
  } catch (err) {
    outcome = handleError(ctx, err);
  }
  if (outcome !== "serving") exitAfterFlush(outcome);
}

await main();
