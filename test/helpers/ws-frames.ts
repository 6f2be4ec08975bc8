/**
 * Minimal WebSocket (RFC 6455) pieces for tests and benchmarks, without the
 * `ws` package: the server handshake, an echo server, and a client that
 * upgrades through a raw socket and sends/receives one text frame.
 */
import crypto from "node:crypto";
import type http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** `Sec-WebSocket-Accept` for a key. */
export function acceptKey(key: string): string {
  return crypto.createHash("sha1").update(key + GUID).digest("base64");
}

/** Encodes one frame (FIN, opcode), masked when `mask` (client to server). */
export function encodeFrame(payload: Buffer, opcode = 1, mask = false): Buffer {
  const len = payload.length;
  const head: number[] = [0x80 | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else throw new Error("frame too large for this helper");
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), key, body]);
}

/** Decodes the first complete frame in `buf`, or null when incomplete. */
export function decodeFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | null {
  if (buf.length < 2) return null;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) throw new Error("64-bit lengths not supported by this helper");
  const key = masked ? buf.subarray(off, off + 4) : null;
  if (masked) off += 4;
  if (buf.length < off + len) return null;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (key) for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i % 4]!;
  return { opcode, payload, size: off + len };
}

/** Handles an `upgrade` as a WebSocket echo server (text/binary echoed, close answered). */
export function acceptEchoUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, extraHeaders: string[] = []): void {
  const key = req.headers["sec-websocket-key"];
  if (typeof key !== "string") return void socket.destroy();
  socket.write(["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Accept: ${acceptKey(key)}`, ...extraHeaders, "", ""].join("\r\n"));
  let buf = head.length ? Buffer.from(head) : Buffer.alloc(0);
  const drain = () => {
    for (let f = decodeFrame(buf); f; f = decodeFrame(buf)) {
      buf = buf.subarray(f.size);
      if (f.opcode === 8) return void socket.end(encodeFrame(Buffer.alloc(0), 8));
      if (f.opcode === 1 || f.opcode === 2) socket.write(encodeFrame(f.payload, f.opcode));
    }
  };
  socket.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    drain();
  });
  socket.on("error", () => socket.destroy());
  socket.on("end", () => socket.end());
  drain();
}

/** A client WebSocket over a raw TCP socket. */
export interface WsClient {
  /** The status line and headers of the handshake response. */
  response: { status: number; headers: string };
  socket: net.Socket;
  /** Sends a text frame and resolves with the next text frame's payload. */
  roundTrip(text: string): Promise<string>;
  close(): void;
}

/**
 * Opens `path` on `port` with an upgrade request; resolves once the response
 * head arrived (101 or not).
 */
export function openWs(port: number, path: string, headers: Record<string, string> = {}): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.setNoDelay(true);
    const key = crypto.randomBytes(16).toString("base64");
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
    let buf = Buffer.alloc(0);
    let waiter: ((s: string) => void) | null = null;
    let headDone = false;
    socket.on("error", reject);
    socket.on("close", () => {
      if (!headDone) reject(new Error(`closed before a response: ${buf.toString()}`));
    });
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!headDone) {
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        headDone = true;
        const head = buf.subarray(0, end).toString();
        buf = buf.subarray(end + 4);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        resolve({
          response: { status, headers: head },
          socket,
          roundTrip(text) {
            return new Promise((res) => {
              waiter = res;
              socket.write(encodeFrame(Buffer.from(text), 1, true));
              pump();
            });
          },
          close() {
            socket.destroy();
          },
        });
      }
      pump();
    });
    function pump() {
      const f = decodeFrame(buf);
      if (f && waiter) {
        buf = buf.subarray(f.size);
        const w = waiter;
        waiter = null;
        w(f.payload.toString());
      }
    }
  });
}

/** Checks the handshake response's accept value. */
export function checkAccept(headers: string, key: string): boolean {
  return headers.includes(acceptKey(key));
}
