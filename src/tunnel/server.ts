/**
 * The tunnel relay (`openrunner tunnel server`). Three listeners:
 *
 * - control port: a client sends `Register` (authenticated by the shared secret
 *   or its token, constant-time), gets `RegisterResult`, then exchanges
 *   heartbeats and receives `RequestNewProxyConn`;
 * - proxy port: the client opens one connection per `RequestNewProxyConn`,
 *   starting with `NewProxyConn` carrying that random, single-use, expiring id
 *   (a forged, reused or expired id closes the connection);
 * - public port: HTTP, routed to a client by `?token=`, a header or the Host
 *   subdomain (see routing.ts); plus one dedicated raw-TCP port per client
 *   listed in `tcpPorts`.
 *
 * Control and proxy ports may use TLS (`tls: {cert, key}`). All sizes are bytes,
 * all durations ms.
 */
import { createHash } from "node:crypto";
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import tls from "node:tls";
import { createSilentLogger, type Log } from "../log.ts";
import { checkClientSecret, safeEqual, type TunnelAuth } from "./auth.ts";
import { typedPublisher, type TunnelPublish, type TypedTunnelPublish } from "./events.ts";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, type TunnelMessage } from "./frame.ts";
import { adoptWithReader, DEFAULT_SOCKET_BUFFER_BYTES, remoteOf, tuneSocket, type UserBufferReader } from "./pipe.ts";
import { findHeadEnd, MAX_HEAD_BYTES, routeHttpHead } from "./routing.ts";
import { ClientSession, rejectPublic, type SessionContext } from "./session.ts";

/** Relay options. Ports may be 0 (read the bound ones from {@link TunnelServer.ports}). */
export interface TunnelServerOptions {
  /** Address to bind every listener to. Default `0.0.0.0`. */
  host?: string;
  controlPort: number;
  proxyPort: number;
  publicPort: number;
  auth: TunnelAuth;
  /** Idle proxy connections kept ready per client. Default 1. */
  poolSize?: number;
  /** Maximum frame JSON length, bytes. Default 65536. */
  maxFrameBytes?: number;
  /** Heartbeat interval, ms. Default 5000. */
  heartbeatMs?: number;
  /** A peer silent this long is dead, ms. Default 15000. */
  deadAfterMs?: number;
  /** Lifetime of a pending proxy-connection id and of a waiting public connection, ms. Default 5000. */
  pairingTimeoutMs?: number;
  /** Time a new control or proxy connection has to send its first frame, and a public HTTP connection its head, ms. Default 5000. */
  handshakeTimeoutMs?: number;
  /** Public connections that may wait per client. Default 256. */
  maxWaiting?: number;
  /** Header routing HTTP to a client id. Default `x-openrunner-client`. */
  routeHeader?: string;
  /** Base domain of Host routing (`<client-id>.<domain>`); off when unset. */
  domain?: string;
  /** Dedicated raw-TCP public port per client id (0 = any free port). */
  tcpPorts?: Record<string, number>;
  /** TLS for the control and proxy ports: PEM certificate chain and key. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Stream buffer (read and write high-water mark) of each plain-TCP socket, bytes. Default 256 KiB. */
  socketBufferBytes?: number;
  log?: Log;
  publish?: TunnelPublish;
}

/** The bound ports. */
export interface TunnelServerPorts {
  control: number;
  proxy: number;
  public: number;
  /** Dedicated raw-TCP port per client id. */
  tcp: Record<string, number>;
}

interface Pending {
  session: ClientSession;
  timer: NodeJS.Timeout;
}

/** The relay. Build with {@link startTunnelServer}. */
export class TunnelServer {
  readonly #opts: Required<Omit<TunnelServerOptions, "domain" | "tls" | "log" | "publish" | "tcpPorts">> & TunnelServerOptions;
  readonly #log: Log;
  readonly #publish: TypedTunnelPublish;
  readonly #sessions = new Map<string, ClientSession>();
  readonly #pending = new Map<string, Pending>();
  readonly #sockets = new Set<Socket>();
  readonly #servers: Server[] = [];
  #ports: TunnelServerPorts | undefined;
  #closing: Promise<void> | undefined;
  readonly #sessionCtx: SessionContext;

  constructor(opts: TunnelServerOptions) {
    this.#opts = {
      host: "0.0.0.0",
      poolSize: 1,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      heartbeatMs: 5000,
      deadAfterMs: 15000,
      pairingTimeoutMs: 5000,
      handshakeTimeoutMs: 5000,
      maxWaiting: 256,
      socketBufferBytes: DEFAULT_SOCKET_BUFFER_BYTES,
      routeHeader: "x-openrunner-client",
      ...opts,
    };
    this.#log = opts.log ?? createSilentLogger();
    this.#publish = typedPublisher(opts.publish);
    const o = this.#opts;
    this.#sessionCtx = {
      poolSize: o.poolSize,
      heartbeatMs: o.heartbeatMs,
      deadAfterMs: o.deadAfterMs,
      pairingTimeoutMs: o.pairingTimeoutMs,
      maxWaiting: o.maxWaiting,
      maxFrameBytes: o.maxFrameBytes,
      log: this.#log,
      publish: this.#publish,
      addPending: (connId, session) => {
        const timer = setTimeout(() => {
          if (this.#pending.get(connId)?.session !== session) return;
          this.#pending.delete(connId);
          session.pendingExpired();
        }, o.pairingTimeoutMs);
        this.#pending.set(connId, { session, timer });
      },
      dropPending: (session) => {
        for (const [id, p] of this.#pending) {
          if (p.session !== session) continue;
          clearTimeout(p.timer);
          this.#pending.delete(id);
        }
      },
      onClosed: (session, reason) => {
        if (this.#sessions.get(session.clientId) === session) this.#sessions.delete(session.clientId);
        this.#log.info("tunnel client disconnected", { client_id: session.clientId, reason });
        this.#publish("tunnel.disconnected", { role: "relay", client_id: session.clientId, reason });
      },
    };
  }

  /** The bound ports. @throws Error before {@link listen} resolved. */
  get ports(): TunnelServerPorts {
    if (!this.#ports) throw new Error("tunnel server is not listening");
    return this.#ports;
  }

  /** Registered client ids and their pool figures. */
  clients(): Array<{ client_id: string; idle: number; requested: number; waiting: number; active: number }> {
    return [...this.#sessions.values()].map((s) => ({ client_id: s.clientId, ...s.stats() }));
  }

  /** Number of pending proxy-connection ids (for tests). */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Ends a client's session (its control connection); the client reconnects. Returns false when not registered. */
  kick(clientId: string): boolean {
    const s = this.#sessions.get(clientId);
    s?.close("kicked");
    return s !== undefined;
  }

  /** Binds every listener. @throws the listen error (EADDRINUSE …), after closing what was bound. */
  async listen(): Promise<TunnelServerPorts> {
    const o = this.#opts;
    /** `userBuffer`: plain-TCP public sockets read through a UserBufferReader (bulk copies cost about half the CPU). */
    const make = (secure: boolean, onConn: (s: Socket, reader?: UserBufferReader) => void, userBuffer = false): Server => {
      const track = (accepted: Socket) => {
        const adopted = userBuffer ? adoptWithReader(accepted, o.socketBufferBytes) : undefined;
        const s = adopted?.socket ?? accepted;
        this.#sockets.add(s);
        s.once("close", () => this.#sockets.delete(s));
        s.on("error", () => s.destroy());
        tuneSocket(s);
        onConn(s, adopted?.reader);
      };
      const server =
        secure && o.tls
          ? tls.createServer({ cert: o.tls.cert, key: o.tls.key, allowHalfOpen: true }, track)
          : net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: o.socketBufferBytes, pauseOnConnect: userBuffer }, track);
      server.on("error", (err) => this.#log.warn("tunnel listener error", { err: String(err) }));
      this.#servers.push(server);
      return server;
    };
    const bind = (server: Server, port: number) =>
      new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, o.host, () => {
          server.removeListener("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    try {
      const control = await bind(make(true, (s) => this.#onControl(s)), o.controlPort);
      const proxy = await bind(make(true, (s) => this.#onProxy(s)), o.proxyPort);
      const pub = await bind(make(false, (s, reader) => this.#onPublicHttp(s, reader), true), o.publicPort);
      const tcp: Record<string, number> = {};
      for (const [clientId, port] of Object.entries(o.tcpPorts ?? {})) {
        tcp[clientId] = await bind(make(false, (s, reader) => this.#onPublicTcp(s, clientId, reader), true), port);
      }
      this.#ports = { control, proxy, public: pub, tcp };
    } catch (err) {
      await this.close();
      throw err;
    }
    this.#log.info("tunnel relay listening", { ...this.#ports });
    return this.#ports;
  }

  /** Reads the first frame of a new connection, within the handshake timeout. */
  #firstFrame(s: Socket, onFrame: (msg: TunnelMessage, decoder: FrameDecoder) => void): void {
    const decoder = new FrameDecoder(this.#opts.maxFrameBytes);
    const timer = setTimeout(() => s.destroy(), this.#opts.handshakeTimeoutMs);
    const onData = (chunk: Buffer) => {
      let msgs: TunnelMessage[];
      try {
        msgs = decoder.push(chunk, 1);
      } catch (err) {
        this.#log.warn("tunnel frame rejected", { remote: remoteOf(s), err: String(err) });
        cleanup();
        s.destroy();
        return;
      }
      const msg = msgs[0];
      if (!msg) return;
      cleanup();
      s.pause();
      onFrame(msg, decoder);
    };
    const onEnd = () => s.destroy();
    const cleanup = () => {
      clearTimeout(timer);
      s.removeListener("data", onData);
      s.removeListener("end", onEnd);
    };
    s.once("close", () => clearTimeout(timer));
    s.once("end", onEnd);
    s.on("data", onData);
  }

  #onControl(s: Socket): void {
    this.#firstFrame(s, (msg, decoder) => {
      const refuse = (error: string) => {
        this.#log.warn("tunnel registration refused", { remote: remoteOf(s), error, client_id: msg.type === "Register" ? msg.client_id : undefined });
        s.end(encodeFrame({ type: "RegisterResult", ok: false, error }));
        setTimeout(() => s.destroy(), 1000).unref();
      };
      if (msg.type !== "Register") return refuse("bad_request");
      if (!checkClientSecret(this.#opts.auth, msg.client_id, msg.secret)) return refuse("unauthorized");
      const proof = createHash("sha256").update(`${msg.secret}\u0000${msg.client_key}`).digest("hex");
      const live = this.#sessions.get(msg.client_id);
      if (live && !live.closed) {
        if (!safeEqual(live.proof, proof)) return refuse("client_id_in_use");
        live.close("replaced");
      }
      s.write(encodeFrame({ type: "RegisterResult", ok: true, proxy_port: this.#ports?.proxy ?? 0, heartbeat_ms: this.#opts.heartbeatMs }));
      const session = new ClientSession(msg.client_id, proof, s, this.#sessionCtx, decoder.takeRest());
      this.#sessions.set(msg.client_id, session);
      s.resume();
      this.#log.info("tunnel client registered", { client_id: msg.client_id, remote: remoteOf(s) });
      this.#publish("tunnel.connected", { role: "relay", client_id: msg.client_id, remote: remoteOf(s) });
    });
  }

  #onProxy(s: Socket): void {
    this.#firstFrame(s, (msg, decoder) => {
      const p = msg.type === "NewProxyConn" ? this.#pending.get(msg.conn_id) : undefined;
      if (msg.type !== "NewProxyConn" || !p || p.session.clientId !== msg.client_id || p.session.closed) {
        this.#log.warn("tunnel proxy connection refused (unknown, expired or forged id)", { remote: remoteOf(s) });
        s.destroy();
        return;
      }
      this.#pending.delete(msg.conn_id);
      clearTimeout(p.timer);
      p.session.acceptProxy(s, decoder, msg.conn_id);
      s.resume();
    });
  }

  /** Reads a request head (through `reader` when the socket was adopted), routes it, hands the socket to the client's session. */
  #onPublicHttp(s: Socket, reader?: UserBufferReader): void {
    let buf: Buffer = Buffer.alloc(0);
    const detach = () => {
      if (reader) reader.handler = () => true; // whatever follows is drained or forwarded elsewhere
      else s.removeListener("data", onData);
    };
    const timer = setTimeout(() => {
      detach();
      rejectPublic(s, true, 400, "request head not received in time");
    }, this.#opts.handshakeTimeoutMs);
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const end = findHeadEnd(buf);
      if (end < 0 && buf.length <= MAX_HEAD_BYTES) return;
      clearTimeout(timer);
      detach();
      s.pause();
      if (end < 0) return rejectPublic(s, true, 431, "request head too large");
      const route = routeHttpHead(buf, end, { header: this.#opts.routeHeader.toLowerCase(), ...(this.#opts.domain ? { domain: this.#opts.domain } : {}) });
      if ("status" in route) return rejectPublic(s, true, route.status, route.reason);
      const session = this.#sessions.get(route.clientId);
      if (!session) return rejectPublic(s, true, 502, "tunnel client not connected");
      session.dispatch(s, route.head, true, reader);
    };
    s.once("close", () => clearTimeout(timer));
    if (reader) {
      // The reader's buffer is reused: keep a copy of what the head needs.
      reader.handler = (chunk) => (onData(Buffer.from(chunk)), true);
      s.resume();
    } else s.on("data", onData);
  }


  #onPublicTcp(s: Socket, clientId: string, reader: UserBufferReader | undefined): void {
    s.pause();
    const session = this.#sessions.get(clientId);
    if (!session) {
      s.destroy();
      return;
    }
    session.dispatch(s, Buffer.alloc(0), false, reader);
  }

  /** Stops listening and closes every session and connection. Idempotent: a second call returns the first promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const s of [...this.#sessions.values()]) s.close("shutdown");
      for (const p of this.#pending.values()) clearTimeout(p.timer);
      this.#pending.clear();
      const closed = this.#servers.map((srv) => new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve())));
      for (const s of this.#sockets) s.destroy();
      await Promise.all(closed);
    })();
    return this.#closing;
  }
}

/**
 * Creates a relay and binds its ports.
 * @throws the listen error (EADDRINUSE, EACCES …).
 * @example
 * const relay = await startTunnelServer({ controlPort: 17001, proxyPort: 17002, publicPort: 17003, auth: { kind: "secret", secret } });
 */
export async function startTunnelServer(opts: TunnelServerOptions): Promise<TunnelServer> {
  const server = new TunnelServer(opts);
  await server.listen();
  return server;
}

