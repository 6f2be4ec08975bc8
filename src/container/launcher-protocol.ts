/**
 * The wire format between the server and the in-container launcher
 * (`docker/launcher/openrunner-launcher.mjs`, which keeps its own copy of
 * these few lines: it runs on the image's node without this project's code).
 * Pure: no I/O.
 *
 * A frame is 1 byte type, a 4-byte big-endian payload length, the payload
 * (at most {@link MAX_FRAME_BYTES}). Types: {@link FRAME}.
 */

/** Frame types. */
export const FRAME = { ctrl: 1, stdin: 2, stdout: 3, stderr: 4 } as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

/** Largest payload of one frame, bytes (stdin is split into frames of this size). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Where the launcher listens inside the container (a directory bind-mounted from the host). */
export const LAUNCHER_SOCKET_DIR = "/run/openrunner";
/** The socket's name in that directory (short: a unix socket path is at most 107 bytes on the host too). */
export const LAUNCHER_SOCKET_NAME = "s";
/** A file the container's main process creates in that directory when the launcher could not run (no node in the image). */
export const LAUNCHER_ABSENT_NAME = "none";
/** Where the launcher program is mounted (read-only) inside the container. */
export const LAUNCHER_SCRIPT_TARGET = "/opt/openrunner/launcher.mjs";

/** What the launcher says on a spawn connection. */
export type LauncherEvent =
  | { ev: "spawned"; pid: number }
  | { ev: "error"; code: string; message: string }
  | { ev: "exit"; code: number }
  | { ev: "done"; code: number }
  | { ev: "signalled"; n: number };

/** The answer to a one-shot request (`ping`, `oom`, `kill`). */
export type LauncherReply = { ok: true; [k: string]: unknown } | { ok: false; message: string };

/**
 * One frame.
 * @throws RangeError for a payload over {@link MAX_FRAME_BYTES}
 */
export function encodeFrame(type: FrameType, payload: Buffer | string): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  if (body.length > MAX_FRAME_BYTES) throw new RangeError(`launcher frame of ${body.length} bytes exceeds ${MAX_FRAME_BYTES}`);
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** A control frame carrying `msg` as JSON. */
export const encodeControl = (msg: object): Buffer => encodeFrame(FRAME.ctrl, JSON.stringify(msg));

/**
 * A reader of a byte stream of frames: feed it chunks as they come; it calls `onFrame` once per
 * complete frame, in order. Returns false (and reads no further) on a frame announcing more than
 * {@link MAX_FRAME_BYTES}: the peer is not a launcher.
 * @example
 * const feed = createFrameReader((type, payload) => …);
 * socket.on("data", (b) => feed(b) || socket.destroy());
 */
export function createFrameReader(onFrame: (type: number, payload: Buffer) => void): (chunk: Buffer) => boolean {
  let buf: Buffer = Buffer.alloc(0);
  let broken = false;
  return (chunk) => {
    if (broken) return false;
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (len > MAX_FRAME_BYTES) {
        broken = true;
        return false;
      }
      if (buf.length < 5 + len) break;
      const type = buf.readUInt8(0);
      const payload = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      onFrame(type, payload);
    }
    return true;
  };
}
