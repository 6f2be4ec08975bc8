/**
 * The tunnel's wire format (docs/architecture.md#reverse-tunnel).
 *
 * A frame is a 4-byte unsigned big-endian length `L` followed by `L` bytes of
 * UTF-8 JSON: one {@link TunnelMessage} object with a `type` field. `L` counts
 * the JSON bytes only (not the 4 header bytes) and must be in
 * `1..maxFrameBytes`; a longer or empty frame, invalid JSON or an unknown
 * message makes {@link FrameDecoder.push} throw {@link FrameError}, and the
 * owner of the connection closes that connection only.
 *
 * Frames are used on the control connection for its whole life, and on a
 * proxy connection until the relay's `NewProxyConn` "go" frame: after that the
 * connection carries raw bytes.
 */

/** Default and hard upper bound of one frame's JSON length, in bytes. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
/** Length of the frame header, in bytes. */
export const FRAME_HEADER_BYTES = 4;

/** Client -> relay, first frame on the control connection. */
export interface RegisterMessage {
  type: "Register";
  client_id: string;
  /** The shared secret or this client's token. */
  secret: string;
  /**
   * A random per-installation (or per-process) key. A live client id is bound
   * to `secret` + `client_key`; a second registration of that id must present
   * both, or it is refused with `client_id_in_use`.
   */
  client_key: string;
  version: number;
}

/** Relay -> client, the answer to `Register`. */
export interface RegisterResultMessage {
  type: "RegisterResult";
  ok: boolean;
  /** `unauthorized`, `client_id_in_use`, `bad_request` when not ok. */
  error?: string;
  /** The relay's proxy port (the client may override it, e.g. behind port mapping). */
  proxy_port?: number;
  /** The relay's heartbeat interval, ms. */
  heartbeat_ms?: number;
}

/** Relay -> client on the control connection: open one proxy connection carrying `conn_id`. */
export interface RequestNewProxyConnMessage {
  type: "RequestNewProxyConn";
  conn_id: string;
}

/**
 * Client -> relay, first frame on a proxy connection (`conn_id` from
 * `RequestNewProxyConn`, single use). Relay -> client on that proxy connection
 * with the same `conn_id`: "paired, raw bytes follow".
 */
export interface NewProxyConnMessage {
  type: "NewProxyConn";
  conn_id: string;
  client_id: string;
}

/** Heartbeat, both ways; `ts` is the sender's clock in ms, echoed in `Pong`. */
export interface PingMessage {
  type: "Ping";
  ts: number;
}

/** The answer to `Ping`, echoing its `ts`. */
export interface PongMessage {
  type: "Pong";
  ts: number;
}

/** Every message of the protocol. */
export type TunnelMessage = RegisterMessage | RegisterResultMessage | RequestNewProxyConnMessage | NewProxyConnMessage | PingMessage | PongMessage;

/** Protocol version carried by `Register`. */
export const PROTOCOL_VERSION = 1;

/** A malformed or oversized frame; the connection it came from must be closed. */
export class FrameError extends Error {
  constructor(
    readonly code: "frame_too_large" | "frame_empty" | "bad_json" | "bad_message",
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
  }
}

/**
 * Encodes one message as a frame.
 * @throws FrameError `frame_too_large` when the JSON exceeds `maxFrameBytes`.
 */
export function encodeFrame(msg: TunnelMessage, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const json = JSON.stringify(msg);
  const len = Buffer.byteLength(json);
  if (len > maxFrameBytes) throw new FrameError("frame_too_large", `frame of ${len} bytes exceeds ${maxFrameBytes}`);
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  buf.writeUInt32BE(len, 0);
  buf.write(json, FRAME_HEADER_BYTES, "utf8");
  return buf;
}

const isStr = (v: unknown, max = 512): v is string => typeof v === "string" && v.length <= max;
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Checks that a parsed JSON value is a well-formed {@link TunnelMessage}.
 * @throws FrameError `bad_message` otherwise.
 */
export function validateMessage(v: unknown): TunnelMessage {
  const m = v as Record<string, unknown> | null;
  if (m === null || typeof m !== "object" || Array.isArray(m)) throw new FrameError("bad_message", "frame is not a JSON object");
  switch (m.type) {
    case "Register":
      if (isStr(m.client_id, 128) && m.client_id.length > 0 && isStr(m.secret, 4096) && isStr(m.client_key, 512) && isNum(m.version)) return m as unknown as RegisterMessage;
      break;
    case "RegisterResult":
      if (typeof m.ok === "boolean" && (m.error === undefined || isStr(m.error))) return m as unknown as RegisterResultMessage;
      break;
    case "RequestNewProxyConn":
      if (isStr(m.conn_id, 128)) return m as unknown as RequestNewProxyConnMessage;
      break;
    case "NewProxyConn":
      if (isStr(m.conn_id, 128) && isStr(m.client_id, 128)) return m as unknown as NewProxyConnMessage;
      break;
    case "Ping":
    case "Pong":
      if (isNum(m.ts)) return m as unknown as PingMessage | PongMessage;
      break;
  }
  throw new FrameError("bad_message", `malformed or unknown message ${JSON.stringify(String(m.type)).slice(0, 64)}`);
}

/**
 * A streaming decoder: feed it chunks as they arrive (a frame may be split
 * across chunks, or many frames packed into one) and get whole messages back.
 * Buffers at most one partial frame (≤ 4 + maxFrameBytes bytes).
 *
 * @example
 * const dec = new FrameDecoder(64 * 1024);
 * socket.on("data", (chunk) => { for (const msg of dec.push(chunk)) handle(msg); });
 */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);
  constructor(readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /**
   * Appends `chunk` and returns every complete message. With `limit`, stops
   * after that many messages and keeps the rest buffered (see {@link takeRest}).
   * @throws FrameError on an empty or oversized frame, bad JSON or an unknown message
   *   (checked from the header alone, before the body is buffered).
   */
  push(chunk: Buffer, limit = Number.POSITIVE_INFINITY): TunnelMessage[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: TunnelMessage[] = [];
    let off = 0;
    while (out.length < limit && this.#buf.length - off >= FRAME_HEADER_BYTES) {
      const len = this.#buf.readUInt32BE(off);
      if (len === 0) throw new FrameError("frame_empty", "empty frame");
      if (len > this.maxFrameBytes) throw new FrameError("frame_too_large", `frame of ${len} bytes exceeds ${this.maxFrameBytes}`);
      if (this.#buf.length - off < FRAME_HEADER_BYTES + len) break;
      const json = this.#buf.toString("utf8", off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
      off += FRAME_HEADER_BYTES + len;
      let parsed: unknown;
      try {
        parsed = JSON.parse(json);
      } catch {
        throw new FrameError("bad_json", "frame is not valid JSON");
      }
      out.push(validateMessage(parsed));
    }
    this.#buf = off === 0 ? this.#buf : this.#buf.subarray(off);
    return out;
  }

  /** Number of buffered bytes not yet decoded. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** Returns and clears the undecoded bytes (raw data following the last frame). */
  takeRest(): Buffer {
    const rest = this.#buf;
    this.#buf = Buffer.alloc(0);
    return rest;
  }
}
