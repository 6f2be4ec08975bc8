/**
 * Socket plumbing shared by relay and client: tuning and a two-way pipe that
 * respects backpressure (`stream.pipe`), forwards half-close (one side's FIN
 * becomes `end()` on the other; sockets are created with `allowHalfOpen`), and
 * destroys both sides when either fails or is torn down.
 */
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";

/**
 * Default stream buffer of a tunnel socket, bytes: Node's 16 KiB write
 * high-water mark pauses the source after every 64 KiB read; 256 KiB keeps
 * bulk copies streaming while bounding memory per connection (about 4x this).
 */
export const DEFAULT_SOCKET_BUFFER_BYTES = 256 * 1024;

/** TCP_NODELAY and keep-alive on a TCP or TLS socket. */
export function tuneSocket(s: Socket): void {
  s.setNoDelay(true);
  s.setKeepAlive(true, 30_000);
}

/**
 * Pipes `a` and `b` into each other. `head` bytes (already read from `a`) are
 * written to `b` first. Calls `onClose` once, when both sides are closed.
 */
export function pipeBoth(a: Duplex, b: Duplex, opts: { head?: Buffer; onClose?: () => void } = {}): void {
  if (opts.head && opts.head.length > 0) b.write(opts.head);
  a.pipe(b);
  b.pipe(a);
  let closed = 0;
  const onError = () => {
    a.destroy();
    b.destroy();
  };
  const whenClosed = (other: Duplex) => () => {
    // The other side survives only when both its directions are done (it is flushing).
    if (!other.readableEnded || !other.writableEnded) other.destroy();
    closed += 1;
    if (closed === 2) opts.onClose?.();
  };
  a.on("error", onError);
  b.on("error", onError);
  a.once("close", whenClosed(b));
  b.once("close", whenClosed(a));
}

/** `host:port` of a socket's peer, for logs and events. */
export function remoteOf(s: Socket): string {
  return `${s.remoteAddress ?? "?"}:${s.remotePort ?? "?"}`;
}
