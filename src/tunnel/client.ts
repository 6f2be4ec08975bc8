/**
 * The tunnel client (`openrunner tunnel client`): keeps one control connection
 * to the relay, registered under a stable client id, and opens a proxy
 * connection for every `RequestNewProxyConn`. A proxy connection stays framed
 * (answering the relay's health-check Pings) until the relay's `NewProxyConn`
 * "go" frame; then the client connects to `localAddr:localPort` and pipes raw
 * bytes both ways.
 *
 * Heartbeats: a Ping every `heartbeatMs`; a relay silent for `deadAfterMs` (at
 * least three of the relay's announced heartbeat intervals) is dead. On any
 * loss the client reconnects after a jittered exponential backoff (between half
 * and all of `min(backoffMaxMs, backoffBaseMs * 2^attempt)`) and registers
 * again. Durations are ms.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import net, { type Socket } from "node:net";
import tls from "node:tls";
import { createSilentLogger, type Log } from "../log.ts";
import { defaultClientId } from "./client-id.ts";
import { typedPublisher, type TunnelPublish, type TypedTunnelPublish } from "./events.ts";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, PROTOCOL_VERSION, type TunnelMessage } from "./frame.ts";
import { DEFAULT_SOCKET_BUFFER_BYTES, pipeBoth, tuneSocket, UserBufferReader } from "./pipe.ts";

/** Client options. */
export interface TunnelClientOptions {
  /** Relay host. */
  host: string;
  /** Relay control port. Default 17001. */
  controlPort?: number;
  /** Relay proxy port; default: the one the relay announces in `RegisterResult`. */
  proxyPort?: number;
  /** Default: {@link defaultClientId} (UUID v5 of host name, machine id, user). */
  clientId?: string;
  /** Shared secret or this client's token. */
  secret: string;
  /** Key binding the client id while registered; default random per process. */
  clientKey?: string;
  localAddr?: string;
  localPort: number;
  /** TLS to the relay: `true` for the system CAs, or node:tls options (`ca`, `servername`, `rejectUnauthorized`). */
  tls?: boolean | tls.ConnectionOptions;
  /** Default 5000. */
  heartbeatMs?: number;
  /** Default 15000. */
  deadAfterMs?: number;
  /** Time to connect and get `RegisterResult`. Default 10000. */
  connectTimeoutMs?: number;
  /** Default 250. */
  backoffBaseMs?: number;
  /** Default 10000. */
  backoffMaxMs?: number;
  maxFrameBytes?: number;
  /** Stream buffer (read and write high-water mark) of each plain-TCP socket, bytes. Default 256 KiB. */
  socketBufferBytes?: number;
  log?: Log;
  publish?: TunnelPublish;
}

/** Client states. */
export type TunnelClientState = "idle" | "connecting" | "registered" | "backoff" | "closed";

/** Thrown (as the `fatal` event) when the relay refuses the credentials: retrying would not help. */
export class TunnelAuthError extends Error {
  constructor(readonly code: string) {
    super(`tunnel relay refused registration: ${code}`);
    this.name = "TunnelAuthError";
  }
}

/**
 * Events: `registered` (), `disconnected` (reason: string), `refused` (code:
 * string; retried), `fatal` (TunnelAuthError; the client stopped).
 */
export class TunnelClient extends EventEmitter {
  readonly clientId: string;
  readonly #o: Required<Omit<TunnelClientOptions, "proxyPort" | "tls" | "log" | "publish" | "clientId" | "clientKey">> & TunnelClientOptions;
  readonly #clientKey: string;
  readonly #log: Log;
  readonly #publish: TypedTunnelPublish;
  #state: TunnelClientState = "idle";
  #control: Socket | undefined;
  #proxyPort = 0;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #beatTimer: NodeJS.Timeout | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #lastSeen = 0;
  #deadAfterMs: number;
  /** Proxy connections not yet paired ("go" not received). */
  readonly #idle = new Map<Socket, { lastSeen: number }>();
  /** Every socket this client owns (control, proxy, local). */
  readonly #sockets = new Set<Socket>();
  #closing: Promise<void> | undefined;
  /** Completed reconnects (for tests and status). */
  registrations = 0;

  constructor(opts: TunnelClientOptions) {
    super();
    this.#o = { controlPort: 17001, localAddr: "127.0.0.1", heartbeatMs: 5000, deadAfterMs: 15000, connectTimeoutMs: 10000, backoffBaseMs: 250, backoffMaxMs: 10000, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, socketBufferBytes: DEFAULT_SOCKET_BUFFER_BYTES, ...opts };
    this.clientId = opts.clientId ?? defaultClientId();
    this.#clientKey = opts.clientKey ?? randomBytes(24).toString("base64url");
    this.#deadAfterMs = this.#o.deadAfterMs;
    this.#log = opts.log ?? createSilentLogger();
    this.#publish = typedPublisher(opts.publish);
  }

  get state(): TunnelClientState {
    return this.#state;
  }

  /** Starts connecting (idempotent). */
  start(): this {
    if (this.#state === "idle") this.#connect();
    return this;
  }

  /** Resolves at the next (or current) registration; rejects on `fatal`, close or after `timeoutMs`. */
  waitRegistered(timeoutMs = 10_000): Promise<void> {
    if (this.#state === "registered") return Promise.resolve();
    if (this.#state === "closed") return Promise.reject(new Error("tunnel client is closed"));
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.off("registered", onOk);
        this.off("fatal", onFatal);
        if (err) reject(err);
        else resolve();
      };
      const onOk = () => done();
      const onFatal = (err: Error) => done(err);
      const timer = setTimeout(() => done(new Error(`tunnel client not registered within ${timeoutMs} ms`)), timeoutMs);
      this.on("registered", onOk);
      this.on("fatal", onFatal);
    });
  }

  /** Connects to the relay; `allowHalfOpen` for proxy connections (they carry half-closes later). `reader`: plain TCP only. */
  #dial(port: number, allowHalfOpen: boolean, reader?: UserBufferReader): Socket {
    const t = this.#o.tls;
    const s = t
      ? tls.connect({ ...(t === true ? {} : t), host: this.#o.host, port, allowHalfOpen } as tls.ConnectionOptions)
      : net.connect({ host: this.#o.host, port, allowHalfOpen, highWaterMark: this.#o.socketBufferBytes, ...(reader ? { onread: reader.onread } : {}) } as net.NetConnectOpts); // highWaterMark: Node >= 18.17, not in @types/node 20
    this.#track(s);
    return s;
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.once("close", () => this.#sockets.delete(s));
    s.on("error", () => s.destroy());
    tuneSocket(s);
  }

  #send(msg: TunnelMessage): void {
    if (this.#control && !this.#control.destroyed) this.#control.write(encodeFrame(msg, this.#o.maxFrameBytes));
  }

  #connect(): void {
    this.#state = "connecting";
    const s = this.#dial(this.#o.controlPort, false);
    this.#control = s;
    const decoder = new FrameDecoder(this.#o.maxFrameBytes);
    this.#connectTimer = setTimeout(() => s.destroy(), this.#o.connectTimeoutMs);
    s.once(s instanceof tls.TLSSocket ? "secureConnect" : "connect", () => {
      s.write(encodeFrame({ type: "Register", client_id: this.clientId, secret: this.#o.secret, client_key: this.#clientKey, version: PROTOCOL_VERSION }));
    });
    s.on("data", (chunk: Buffer) => {
      let msgs: TunnelMessage[];
      try {
        msgs = decoder.push(chunk);
      } catch (err) {
        this.#log.warn("relay frame rejected", { err: String(err) });
        s.destroy();
        return;
      }
      this.#lastSeen = Date.now();
      for (const m of msgs) this.#onControlMessage(s, m);
    });
    s.once("close", () => this.#onControlClosed(s));
  }

  #onControlMessage(s: Socket, m: TunnelMessage): void {
    if (s !== this.#control) return;
    switch (m.type) {
      case "RegisterResult":
        clearTimeout(this.#connectTimer);
        this.#connectTimer = undefined;
        if (!m.ok) {
          const code = m.error ?? "refused";
          if (code === "unauthorized") {
            this.#log.error("tunnel relay refused the credentials", { client_id: this.clientId });
            this.emit("fatal", new TunnelAuthError(code));
            void this.close();
          } else {
            this.#log.warn("tunnel registration refused; retrying", { client_id: this.clientId, code });
            this.emit("refused", code);
            s.destroy();
          }
          return;
        }
        this.#proxyPort = this.#o.proxyPort ?? m.proxy_port ?? 0;
        // Never call the relay dead sooner than three of its own heartbeat intervals.
        this.#deadAfterMs = Math.max(this.#o.deadAfterMs, 3 * (m.heartbeat_ms ?? 0));
        this.#state = "registered";
        this.#attempt = 0;
        this.registrations += 1;
        this.#beatTimer = setInterval(() => this.#tick(), this.#o.heartbeatMs);
        this.#log.info("tunnel client registered", { client_id: this.clientId });
        this.#publish("tunnel.connected", { role: "client", client_id: this.clientId, remote: `${this.#o.host}:${this.#o.controlPort}` });
        this.emit("registered");
        return;
      case "Ping":
        this.#send({ type: "Pong", ts: m.ts });
        return;
      case "RequestNewProxyConn":
        // One event-loop turn later: bytes of connections already paired go first.
        setImmediate(() => {
          if (this.#state === "registered" && this.#control === s) this.#openProxy(m.conn_id);
        });
        return;
      default:
        return;
    }
  }

  #tick(): void {
    const now = Date.now();
    if (now - this.#lastSeen > this.#deadAfterMs) {
      this.#log.warn("tunnel relay silent; reconnecting", { client_id: this.clientId, silent_ms: now - this.#lastSeen });
      this.#control?.destroy();
      return;
    }
    this.#send({ type: "Ping", ts: now });
    for (const [sock, info] of this.#idle) if (now - info.lastSeen > this.#deadAfterMs) sock.destroy();
  }

  #onControlClosed(s: Socket): void {
    if (s !== this.#control) return;
    this.#control = undefined;
    clearTimeout(this.#connectTimer);
    clearInterval(this.#beatTimer);
    this.#connectTimer = this.#beatTimer = undefined;
    // Idle proxy connections belong to the relay's session, which is gone too.
    for (const sock of this.#idle.keys()) sock.destroy();
    const wasRegistered = this.#state === "registered";
    if (wasRegistered) {
      this.#publish("tunnel.disconnected", { role: "client", client_id: this.clientId, reason: "closed" });
      this.emit("disconnected", "closed");
    }
    if (this.#state === "closed") return;
    const exp = Math.min(this.#o.backoffMaxMs, this.#o.backoffBaseMs * 2 ** Math.min(this.#attempt, 30));
    const delay = exp / 2 + Math.random() * (exp / 2);
    this.#attempt += 1;
    this.#state = "backoff";
    this.#log.debug("tunnel reconnect scheduled", { client_id: this.clientId, delay_ms: Math.round(delay) });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#state === "backoff") this.#connect();
    }, delay);
  }

  #openProxy(connId: string): void {
    const reader = this.#o.tls ? undefined : new UserBufferReader(this.#o.socketBufferBytes);
    const s = this.#dial(this.#proxyPort, true, reader);
    const info = { lastSeen: Date.now() };
    this.#idle.set(s, info);
    const decoder = new FrameDecoder(this.#o.maxFrameBytes);
    s.once(s instanceof tls.TLSSocket ? "secureConnect" : "connect", () => {
      s.write(encodeFrame({ type: "NewProxyConn", conn_id: connId, client_id: this.clientId }));
    });
    const onData = (chunk: Buffer) => {
      info.lastSeen = Date.now();
      let msgs: TunnelMessage[];
      try {
        msgs = decoder.push(chunk, 1);
        while (msgs.length > 0) {
          const m = msgs[0]!;
          if (m.type === "Ping") s.write(encodeFrame({ type: "Pong", ts: m.ts }));
          else if (m.type === "NewProxyConn" && m.conn_id === connId) {
            if (reader) reader.handler = () => true;
            else s.removeListener("data", onData);
            s.removeListener("end", onEnd);
            s.pause();
            this.#idle.delete(s);
            this.#startLocal(s, decoder.takeRest(), reader);
            return;
          } else throw new Error(`unexpected ${m.type} on a proxy connection`);
          msgs = decoder.push(Buffer.alloc(0), 1);
        }
      } catch (err) {
        this.#log.warn("proxy connection frame rejected", { err: String(err) });
        s.destroy();
      }
    };
    const onEnd = () => s.destroy(); // the relay dropped it before "go"
    // The reader's buffer is reused: the decoder gets a copy (frames are small and rare).
    if (reader) reader.handler = (chunk) => (onData(Buffer.from(chunk)), true);
    else s.on("data", onData);
    s.once("end", onEnd);
    s.once("close", () => this.#idle.delete(s));
  }

  /** "go": connects to the local service and pipes; `head` holds raw bytes that came with the go frame. */
  #startLocal(proxy: Socket, head: Buffer, proxyReader: UserBufferReader | undefined): void {
    const size = this.#o.socketBufferBytes;
    const localReader = new UserBufferReader(size, size);
    const local = net.connect({ host: this.#o.localAddr, port: this.#o.localPort, allowHalfOpen: true, highWaterMark: size, onread: localReader.onread } as net.NetConnectOpts);
    this.#track(local);
    // Piped at once: what the relay sends is queued by the connecting socket and goes out
    // with the connect, one event-loop turn sooner than waiting for "connect" to pipe.
    pipeBoth(proxy, local, { head, readers: { a: proxyReader, b: localReader } });
    local.once("error", (err) => {
      this.#log.warn("local service unreachable", { local: `${this.#o.localAddr}:${this.#o.localPort}`, err: String(err) });
      proxy.destroy();
    });
    proxy.once("close", () => {
      if (local.connecting) local.destroy();
    });
  }

  /** Stops for good: closes the control connection, every proxy and local connection and every timer. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const wasRegistered = this.#state === "registered";
      this.#state = "closed";
      clearTimeout(this.#retryTimer);
      clearTimeout(this.#connectTimer);
      clearInterval(this.#beatTimer);
      this.#retryTimer = this.#connectTimer = this.#beatTimer = undefined;
      const all = [...this.#sockets];
      // A socket leaves #sockets on "close", so each one here still has that event to come.
      await Promise.all(
        all.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.once("close", () => resolve());
              s.destroy();
            }),
        ),
      );
      this.#idle.clear();
      if (wasRegistered) this.#log.info("tunnel client closed", { client_id: this.clientId });
    })();
    return this.#closing;
  }
}

/**
 * Creates a client and starts it.
 * @example
 * const client = startTunnelClient({ host: "relay.example.com", secret, localPort: 3000 });
 * await client.waitRegistered();
 */
export function startTunnelClient(opts: TunnelClientOptions): TunnelClient {
  return new TunnelClient(opts).start();
}
