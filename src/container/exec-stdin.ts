/** The stdin side of an exec whose connection the engine upgraded (hijacked) for an ACP agent. */
import { Writable, type Readable } from "node:stream";

/** The engine's upgraded exec connection (a `net.Socket`). */
export type HijackedSocket = Readable & { write(chunk: Buffer, cb: (err?: Error | null) => void): boolean; end(cb?: () => void): void; destroy(): void; writable: boolean };

/**
 * The writable stdin of a hijacked exec connection: writes go to the socket; `end()` half-closes
 * it (the engine then closes the process's stdin, its output keeps flowing); destroying this
 * stream does not destroy the socket. Writes after the connection is gone fail with EPIPE.
 */
export function stdinOf(socket: HijackedSocket): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!socket.writable) return cb(Object.assign(new Error("the exec's stdin is closed"), { code: "EPIPE" }));
      socket.write(chunk, (err) => cb(err ?? null));
    },
    final(cb) {
      if (!socket.writable) return cb();
      socket.end(() => cb());
    },
  });
}
