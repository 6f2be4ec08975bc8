/**
 * `openrunner tunnel server …` and `openrunner tunnel client …`. Both keep the
 * process alive ("serving") until SIGINT/SIGTERM, which `src/main.ts` turns
 * into `handle.close()`.
 *
 * Secrets: `--secret`, else `--secret-file`, else `$OPENRUNNER_TUNNEL_SECRET`
 * (a flag is visible in `ps`; prefer the file or the environment).
 *
 * @example
 * openrunner tunnel server --control-port 17001 --proxy-port 17002 --public-port 17003 --secret-file /etc/openrunner/tunnel.secret
 * openrunner tunnel client --server relay.example.com --local-port 3000 --secret-file ~/.openrunner/tunnel.secret
 */
import { readFileSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { ConfigError } from "../errors.ts";
import { createRootLogger, LOG_LEVELS, type Log, type LogLevelName } from "../log.ts";
import { loadTokensFile, type TunnelAuth } from "../tunnel/auth.ts";
import { TunnelAuthError, startTunnelClient } from "../tunnel/client.ts";
import { startTunnelServer } from "../tunnel/server.ts";
import type { CliContext } from "./context.ts";

/** Something `main.ts` closes on SIGINT/SIGTERM. */
export interface Closable {
  close(): Promise<void>;
}

/** What the tunnel commands need from the composition root. */
export interface TunnelCliContext extends CliContext {
  /** Records the action's outcome: an exit code (0 ok, 1 failure, 2 usage/config). */
  setOutcome(code: number): void;
  /** Records "serving": keep the process alive, close `handle` on SIGINT/SIGTERM (then exit 0), exit `code` when `handle` fails on its own. */
  keepAlive(handle: Closable, log: Log): void;
  /** Ends the process later with `code` (used when a running client is refused for good). */
  exit(code: number): void;
}

const parsePort = (v: string): number => {
  if (!/^[0-9]+$/.test(v) || Number(v) > 65535) throw new InvalidArgumentError("expected a port number 0-65535.");
  return Number(v);
};
const parseNonNegInt = (v: string): number => {
  if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError("expected a non-negative integer.");
  return Number(v);
};
const parsePositiveInt = (v: string): number => {
  if (!/^[0-9]+$/.test(v) || Number(v) < 1) throw new InvalidArgumentError("expected a positive integer.");
  return Number(v);
};
const collectTcpPort = (v: string, acc: Record<string, number> = {}): Record<string, number> => {
  const m = /^([^=\s]+)=([0-9]+)$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError("expected CLIENT_ID=PORT.");
  return { ...acc, [m[1]!]: Number(m[2]) };
};

function readSecret(ctx: CliContext, flags: { secret?: string; secretFile?: string }): string | undefined {
  if (flags.secret) return flags.secret;
  if (flags.secretFile) return readFileSync(flags.secretFile, "utf8").trim();
  return ctx.env.OPENRUNNER_TUNNEL_SECRET || undefined;
}

function makeLog(ctx: CliContext, level: string | undefined): Log {
  const name = (level ?? ctx.env.OPENRUNNER_LOG_LEVEL ?? "info") as LogLevelName;
  if (!(name in LOG_LEVELS)) throw new ConfigError("--log-level", Object.keys(LOG_LEVELS).join(" | "), name);
  return createRootLogger({ level: name, name: "openrunner.tunnel" });
}

interface ServerFlags {
  host: string;
  controlPort: number;
  proxyPort: number;
  publicPort: number;
  poolSize: number;
  secret?: string;
  secretFile?: string;
  tokensFile?: string;
  tcpPort?: Record<string, number>;
  routeHeader: string;
  domain?: string;
  tlsCert?: string;
  tlsKey?: string;
  heartbeatMs: number;
  deadAfterMs: number;
  pairingTimeoutMs: number;
  maxFrameBytes: number;
  logLevel?: string;
}

interface ClientFlags {
  server: string;
  clientId?: string;
  secret?: string;
  secretFile?: string;
  localAddr: string;
  localPort: number;
  proxyPort?: number;
  tls?: boolean;
  tlsCa?: string;
  tlsServername?: string;
  heartbeatMs: number;
  deadAfterMs: number;
  logLevel?: string;
}

async function runServer(ctx: TunnelCliContext, f: ServerFlags): Promise<void> {
  try {
    const log = makeLog(ctx, f.logLevel);
    let auth: TunnelAuth;
    if (f.tokensFile) auth = { kind: "tokens", tokens: loadTokensFile(f.tokensFile) };
    else {
      const secret = readSecret(ctx, f);
      if (!secret || secret.length < 16) throw new ConfigError("--secret / --secret-file / OPENRUNNER_TUNNEL_SECRET / --tokens-file", "a secret of at least 16 characters, or a tokens file", secret ? "(too short)" : "(none)");
      auth = { kind: "secret", secret };
    }
    if (Boolean(f.tlsCert) !== Boolean(f.tlsKey)) throw new ConfigError("--tls-cert / --tls-key", "both or neither", f.tlsCert ?? f.tlsKey);
    const server = await startTunnelServer({
      host: f.host,
      controlPort: f.controlPort,
      proxyPort: f.proxyPort,
      publicPort: f.publicPort,
      poolSize: f.poolSize,
      auth,
      routeHeader: f.routeHeader,
      heartbeatMs: f.heartbeatMs,
      deadAfterMs: f.deadAfterMs,
      pairingTimeoutMs: f.pairingTimeoutMs,
      maxFrameBytes: f.maxFrameBytes,
      log,
      ...(f.domain ? { domain: f.domain } : {}),
      ...(f.tcpPort ? { tcpPorts: f.tcpPort } : {}),
      ...(f.tlsCert && f.tlsKey ? { tls: { cert: readFileSync(f.tlsCert), key: readFileSync(f.tlsKey) } } : {}),
    });
    const p = server.ports;
    ctx.stdout.write(`tunnel relay: control ${p.control}, proxy ${p.proxy}, public ${p.public}${Object.entries(p.tcp).map(([id, port]) => `, tcp ${id}=${port}`).join("")}\n`);
    ctx.keepAlive(server, log);
  } catch (err) {
    ctx.stderr.write(`${err instanceof ConfigError ? err.message : `error: cannot start the tunnel relay: ${err instanceof Error ? err.message : String(err)}`}\n`);
    ctx.setOutcome(err instanceof ConfigError ? 2 : 1);
  }
}

function runClient(ctx: TunnelCliContext, f: ClientFlags): void {
  try {
    const log = makeLog(ctx, f.logLevel);
    const secret = readSecret(ctx, f);
    if (!secret) throw new ConfigError("--secret / --secret-file / OPENRUNNER_TUNNEL_SECRET", "the relay's secret or this client's token", "(none)");
    const m = /^(\[[^\]]+\]|[^:]+)(?::([0-9]+))?$/.exec(f.server);
    if (!m) throw new ConfigError("--server", "HOST or HOST:CONTROL_PORT", f.server);
    const tlsOpts = f.tls || f.tlsCa ? { ...(f.tlsCa ? { ca: readFileSync(f.tlsCa) } : {}), ...(f.tlsServername ? { servername: f.tlsServername } : {}) } : undefined;
    const client = startTunnelClient({
      host: m[1]!.replace(/^\[|\]$/g, ""),
      controlPort: m[2] ? Number(m[2]) : 17001,
      secret,
      localAddr: f.localAddr,
      localPort: f.localPort,
      heartbeatMs: f.heartbeatMs,
      deadAfterMs: f.deadAfterMs,
      log,
      ...(f.clientId ? { clientId: f.clientId } : {}),
      ...(f.proxyPort !== undefined ? { proxyPort: f.proxyPort } : {}),
      ...(tlsOpts ? { tls: tlsOpts } : {}),
    });
    client.on("registered", () => ctx.stdout.write(`tunnel client ${client.clientId} registered with ${f.server}\n`));
    client.on("fatal", (err: Error) => {
      ctx.stderr.write(`error: ${err instanceof TunnelAuthError ? err.message : String(err)}\n`);
      ctx.exit(1);
    });
    ctx.keepAlive(client, log);
  } catch (err) {
    ctx.stderr.write(`${err instanceof ConfigError ? err.message : `error: ${err instanceof Error ? err.message : String(err)}`}\n`);
    ctx.setOutcome(err instanceof ConfigError ? 2 : 1);
  }
}

/** Adds `tunnel server` and `tunnel client` to `program`. */
export function registerTunnelCommands(program: Command, ctx: TunnelCliContext): void {
  const tunnel = program.command("tunnel").description("reverse tunnel: a public relay and a client behind NAT");
  const common = (c: Command) =>
    c
      .option("--secret <secret>", "shared secret or client token (default: $OPENRUNNER_TUNNEL_SECRET)")
      .option("--secret-file <file>", "read the secret from a file")
      .addOption(new Option("--heartbeat-ms <ms>", "heartbeat interval").argParser(parsePositiveInt).default(5000))
      .addOption(new Option("--dead-after-ms <ms>", "a silent peer is dead after this").argParser(parsePositiveInt).default(15000))
      .option("--log-level <level>", `log level (${Object.keys(LOG_LEVELS).join(", ")})`);

  common(
    tunnel
      .command("server")
      .description("run the public relay")
      .option("--host <addr>", "address to bind", "0.0.0.0")
      .addOption(new Option("--control-port <port>", "control port").argParser(parsePort).default(17001))
      .addOption(new Option("--proxy-port <port>", "proxy-connection port").argParser(parsePort).default(17002))
      .addOption(new Option("--public-port <port>", "public HTTP port").argParser(parsePort).default(17003))
      .addOption(new Option("--pool-size <n>", "idle proxy connections kept per client").argParser(parseNonNegInt).default(1))
      .option("--tokens-file <file>", "per-client tokens (`client_id token` lines) instead of one secret")
      .option("--tcp-port <client=port>", "a dedicated raw-TCP public port for a client (repeatable)", collectTcpPort)
      .option("--route-header <name>", "header carrying the client id", "x-openrunner-client")
      .option("--domain <domain>", "route Host <client-id>.<domain> to that client")
      .option("--tls-cert <file>", "PEM certificate for the control and proxy ports")
      .option("--tls-key <file>", "PEM key for the control and proxy ports")
      .addOption(new Option("--pairing-timeout-ms <ms>", "deadline for a new proxy connection").argParser(parsePositiveInt).default(5000))
      .addOption(new Option("--max-frame-bytes <n>", "largest control frame").argParser(parsePositiveInt).default(65536)),
  ).action((f: ServerFlags) => runServer(ctx, f));

  common(
    tunnel
      .command("client")
      .description("connect to a relay and expose a local port through it")
      .requiredOption("--server <host[:port]>", "relay host and control port (default port 17001)")
      .option("--client-id <id>", "client id (default: UUID v5 of host name, machine id and user)")
      .option("--local-addr <addr>", "local address to expose", "127.0.0.1")
      .addOption(new Option("--local-port <port>", "local port to expose").argParser(parsePort).default(3000))
      .addOption(new Option("--proxy-port <port>", "relay proxy port (default: announced by the relay)").argParser(parsePort))
      .option("--tls", "connect with TLS (system CAs)")
      .option("--tls-ca <file>", "PEM CA for the relay's certificate (implies --tls)")
      .option("--tls-servername <name>", "TLS server name to verify"),
  ).action((f: ClientFlags) => runClient(ctx, f));
}
