/**
 * One registered client on the relay: its control connection, heartbeats, and
 * its pool of proxy connections.
 *
 * Pool: `target` idle proxy connections are kept ready. A public connection
 * takes an idle one at once (fast path); otherwise it waits, with a deadline,
 * for one requested now (slow path). Requests in flight count towards the
 * pool, so the relay asks for `target + waiting - idle - requested` more.
 * Idle connections are health-checked with `Ping`; one that does not answer
 * within `deadAfterMs` is dropped and replaced. Pairing sends `NewProxyConn`
 * down the proxy connection ("go"), then both sides carry raw bytes.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { Log } from "../log.ts";
import type { TypedTunnelPublish } from "./events.ts";
import { encodeFrame, FrameDecoder, FrameError, type TunnelMessage } from "./frame.ts";
import { pipeBoth, type UserBufferReader } from "./pipe.ts";
import { httpErrorResponse } from "./routing.ts";

/** Delay of a pool refill while idle connections remain, ms (see {@link ClientSession.dispatch}). */
export const REFILL_DELAY_MS = 5;

/** What a session needs from its relay. */
export interface SessionContext {
  poolSize: number;
  heartbeatMs: number;
  deadAfterMs: number;
  pairingTimeoutMs: number;
  maxWaiting: number;
  maxFrameBytes: number;
  log: Log;
  publish: TypedTunnelPublish;
  /** Registers a pending proxy-connection id (single use, expires) for this session. */
  addPending(connId: string, session: ClientSession): void;
  /** Drops this session's pending ids. */
  dropPending(session: ClientSession): void;
  /** Called once when the session ends. */
  onClosed(session: ClientSession, reason: string): void;
}

/** A proxy connection waiting in the pool. */
interface IdleConn {
  socket: Socket;
  decoder: FrameDecoder;
  connId: string;
  /** A Ping sent and not yet answered (at most one). */
  pingAt: number | undefined;
  onData: (chunk: Buffer) => void;
  onEnd: () => void;
}

/** A public connection waiting for a proxy connection. */
interface Waiter {
  socket: Socket;
  head: Buffer;
  reader: UserBufferReader | undefined;
  http: boolean;
  timer: NodeJS.Timeout;
  onClose: () => void;
}

/** A registered client. Created by the relay after a successful `Register`. */
export class ClientSession {
  readonly #idle: IdleConn[] = [];
  readonly #waiting: Waiter[] = [];
  #requested = 0;
  #active = 0;
  #lastSeen = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #refillTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #decoder: FrameDecoder;

  constructor(
    readonly clientId: string,
    /** SHA-256 of secret + client key: what a re-registration must match. */
    readonly proof: string,
    readonly control: Socket,
    private readonly ctx: SessionContext,
    rest: Buffer,
  ) {
    this.#decoder = new FrameDecoder(ctx.maxFrameBytes);
    control.on("data", (chunk: Buffer) => this.#onControlData(chunk));
    control.on("close", () => this.close("closed"));
    control.on("end", () => this.close("closed"));
    control.on("error", () => this.close("error"));
    this.#timer = setInterval(() => this.#tick(), ctx.heartbeatMs);
    if (rest.length > 0) this.#onControlData(rest);
    this.#refill();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Pool figures for events and status. */
  stats(): { idle: number; requested: number; waiting: number; active: number; target: number } {
    return { idle: this.#idle.length, requested: this.#requested, waiting: this.#waiting.length, active: this.#active, target: this.ctx.poolSize };
  }

  #send(msg: TunnelMessage): void {
    if (!this.control.destroyed) this.control.write(encodeFrame(msg, this.ctx.maxFrameBytes));
  }

  #onControlData(chunk: Buffer): void {
    let msgs: TunnelMessage[];
    try {
      msgs = this.#decoder.push(chunk);
    } catch (err) {
      this.ctx.log.warn("control frame rejected", { client_id: this.clientId, err: (err as FrameError).message });
      this.close("frame_error");
      return;
    }
    this.#lastSeen = Date.now();
    for (const m of msgs) {
      if (m.type === "Ping") this.#send({ type: "Pong", ts: m.ts });
      else if (m.type !== "Pong") {
        this.ctx.log.warn("unexpected control message", { client_id: this.clientId, type: m.type });
        this.close("protocol_error");
        return;
      }
    }
  }

  #tick(): void {
    const now = Date.now();
    if (now - this.#lastSeen > this.ctx.deadAfterMs) {
      this.close("dead_peer");
      return;
    }
    this.#send({ type: "Ping", ts: now });
    for (const c of [...this.#idle]) {
      if (c.pingAt !== undefined) {
        if (now - c.pingAt > this.ctx.deadAfterMs) c.socket.destroy();
      } else if (!c.socket.destroyed) {
        c.pingAt = now;
        c.socket.write(encodeFrame({ type: "Ping", ts: now }));
      }
    }
  }

  #publishPool(): void {
    this.ctx.publish("tunnel.pool", { client_id: this.clientId, ...this.stats() });
  }

  /** Asks for as many proxy connections as the pool and the waiters need. */
  #refill(): void {
    if (this.#closed) return;
    const cap = this.ctx.poolSize + this.ctx.maxWaiting;
    let need = this.ctx.poolSize + this.#waiting.length - this.#idle.length - this.#requested;
    while (need > 0 && this.#requested < cap) {
      const connId = randomBytes(18).toString("base64url");
      this.ctx.addPending(connId, this);
      this.#requested += 1;
      need -= 1;
      this.#send({ type: "RequestNewProxyConn", conn_id: connId });
    }
    this.#publishPool();
  }

  /** {@link #refill} after {@link REFILL_DELAY_MS}, coalesced; cancelled by close. */
  #refillSoon(): void {
    if (this.#refillTimer !== undefined || this.#closed) return;
    this.#refillTimer = setTimeout(() => {
      this.#refillTimer = undefined;
      this.#refill();
    }, REFILL_DELAY_MS);
  }

  /** A pending id expired unanswered. */
  pendingExpired(): void {
    this.#requested = Math.max(0, this.#requested - 1);
    this.#refill();
  }

  /**
   * A proxy connection arrived with a valid pending id: pair it with the
   * oldest waiter, or keep it idle. `decoder` holds what followed its first frame.
   */
  acceptProxy(socket: Socket, decoder: FrameDecoder, connId: string): void {
    this.#requested = Math.max(0, this.#requested - 1);
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const conn: IdleConn = { socket, decoder, connId, pingAt: undefined, onData: () => {}, onEnd: () => {} };
    const waiter = this.#waiting.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.socket.removeListener("close", waiter.onClose);
      this.#pair(conn, waiter.socket, waiter.head, waiter.reader);
    } else {
      conn.onData = (chunk: Buffer) => this.#onIdleData(conn, chunk);
      conn.onEnd = () => socket.destroy(); // the client dropped it while idle
      socket.on("data", conn.onData);
      socket.once("end", conn.onEnd);
      socket.once("close", () => {
        const i = this.#idle.indexOf(conn);
        if (i >= 0) {
          this.#idle.splice(i, 1);
          this.#refill();
        }
      });
      this.#idle.push(conn);
      if (decoder.buffered > 0) conn.onData(Buffer.alloc(0));
    }
    this.#refill();
  }

  #onIdleData(conn: IdleConn, chunk: Buffer): void {
    let msgs: TunnelMessage[];
    try {
      msgs = conn.decoder.push(chunk);
    } catch {
      conn.socket.destroy();
      return;
    }
    for (const m of msgs) {
      if (m.type === "Pong") conn.pingAt = undefined;
      else conn.socket.destroy(); // raw bytes or anything else before "go": not a proxy connection
    }
  }

  /**
   * Hands a public connection to this client: paired at once with an idle proxy
   * connection, or queued until one arrives or `pairingTimeoutMs` passes.
   * `head` holds bytes already read from it; `http` selects 50x answers on failure;
   * `reader`: the socket is read through it (see `adoptWithReader`).
   */
  dispatch(socket: Socket, head: Buffer, http: boolean, reader?: UserBufferReader): void {
    if (this.#closed) return rejectPublic(socket, http, 502, "tunnel client disconnected");
    const conn = this.#idle.shift();
    if (conn) {
      this.#pair(conn, socket, head, reader);
      // Pool not empty: refill after this connection's first bytes went through, so the
      // new proxy connection (a frame to the client, its connect, its handshake here) does
      // not compete with them for the CPU. Empty: at once.
      if (this.#idle.length > 0) this.#refillSoon();
      else this.#refill();
      return;
    }
    if (this.#waiting.length >= this.ctx.maxWaiting) return rejectPublic(socket, http, 503, "tunnel busy");
    const waiter: Waiter = {
      socket,
      head,
      reader,
      http,
      timer: setTimeout(() => {
        this.#removeWaiter(waiter);
        rejectPublic(socket, http, 504, "tunnel client did not open a connection in time");
      }, this.ctx.pairingTimeoutMs),
      onClose: () => this.#removeWaiter(waiter),
    };
    socket.once("close", waiter.onClose);
    this.#waiting.push(waiter);
    this.#refill();
  }

  #removeWaiter(w: Waiter): void {
    clearTimeout(w.timer);
    w.socket.removeListener("close", w.onClose);
    const i = this.#waiting.indexOf(w);
    if (i >= 0) this.#waiting.splice(i, 1);
    this.#publishPool();
  }

  /** Sends "go" down `conn`, skips Pongs still in flight, then pipes raw bytes both ways. */
  #pair(conn: IdleConn, pub: Socket, head: Buffer, reader: UserBufferReader | undefined): void {
    const proxy = conn.socket;
    proxy.pause();
    proxy.removeListener("data", conn.onData);
    proxy.removeListener("end", conn.onEnd);
    if (proxy.destroyed || pub.destroyed) {
      proxy.destroy();
      pub.destroy();
      return;
    }
    this.#active += 1;
    const immediate = conn.pingAt === undefined && conn.decoder.buffered === 0;
    // "go" and the bytes already read from the public side (HTTP head) leave in one write.
    if (immediate) proxy.cork();
    proxy.write(encodeFrame({ type: "NewProxyConn", conn_id: conn.connId, client_id: this.clientId }));
    const start = () => {
      const rest = conn.decoder.takeRest();
      if (rest.length > 0) pub.write(rest);
      pipeBoth(pub, proxy, {
        head,
        readers: { a: reader },
        onClose: () => {
          this.#active -= 1;
          this.#publishPool();
        },
      });
    };
    if (immediate) {
      start(); // writes the head
      proxy.uncork();
      return;
    }
    // The client answers every Ping it read before "go"; consume that Pong first.
    let pending = conn.pingAt === undefined ? 0 : 1;
    const onData = (chunk: Buffer) => {
      try {
        pending -= conn.decoder.push(chunk, pending).filter((m) => m.type === "Pong").length;
      } catch {
        proxy.destroy();
        pub.destroy();
        return;
      }
      if (pending <= 0) {
        proxy.pause();
        proxy.removeListener("data", onData);
        start();
      }
    };
    proxy.on("data", onData);
    proxy.once("close", () => {
      if (pending > 0) pub.destroy();
    });
    onData(Buffer.alloc(0));
    proxy.resume();
  }

  /** Ends the session (idempotent): control closed, idle closed, waiters answered 502. Active pipes keep running. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#refillTimer);
    this.#timer = this.#refillTimer = undefined;
    this.control.destroy();
    for (const c of this.#idle.splice(0)) c.socket.destroy();
    for (const w of this.#waiting.splice(0)) {
      clearTimeout(w.timer);
      w.socket.removeListener("close", w.onClose);
      rejectPublic(w.socket, w.http, 502, "tunnel client disconnected");
    }
    this.ctx.dropPending(this);
    this.#requested = 0;
    this.ctx.onClosed(this, reason);
  }
}

/** Answers a public connection that cannot be served: an HTTP error, or a reset for raw TCP. */
export function rejectPublic(socket: Socket, http: boolean, status: number, reason: string): void {
  if (!http || socket.destroyed) {
    socket.destroy();
    return;
  }
  socket.end(httpErrorResponse(status, reason));
  socket.resume(); // drain what the peer still sends, so end() completes
  setTimeout(() => socket.destroy(), 1000).unref();
}
