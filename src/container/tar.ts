/**
 * A minimal streaming ustar writer for Docker build contexts. The engine's
 * build API takes the context as a tar stream; writing it here means the
 * context can map host files (node, its libraries, busybox) to paths inside
 * the image without copying them to a staging directory first, and needs no
 * tar package. Supports regular files (from a host path, read lazily, or from
 * memory), directories and symbolic links; paths up to 255 bytes (ustar
 * name + prefix). Owners are 0:0; the Dockerfile sets ownership where needed.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";

/** One entry of the archive. `path` is relative (no leading `/`), `/`-separated. */
export type TarEntry =
  | { type: "file"; path: string; mode?: number; source: string }
  | { type: "file"; path: string; mode?: number; content: string | Uint8Array }
  | { type: "dir"; path: string; mode?: number }
  | { type: "symlink"; path: string; target: string };

const BLOCK = 512;
const MTIME = Math.floor(Date.UTC(2026, 0, 1) / 1000); // fixed, so identical inputs give identical contexts (build cache)

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  const s = value.toString(8);
  if (s.length > width - 1) throw new RangeError(`tar: value ${value} does not fit in ${width - 1} octal digits`);
  return s.padStart(width - 1, "0") + "\0";
}

function splitName(path: string): { name: string; prefix: string } {
  if (Buffer.byteLength(path) <= 100) return { name: path, prefix: "" };
  for (let i = path.lastIndexOf("/"); i > 0; i = path.lastIndexOf("/", i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(name) <= 100 && Buffer.byteLength(prefix) <= 155) return { name, prefix };
  }
  throw new RangeError(`tar: path too long for ustar (max 255 bytes, split at a /): ${path}`);
}

/** The 512-byte ustar header of one entry. Exported for tests. */
export function tarHeader(h: { path: string; type: "0" | "2" | "5"; mode: number; size: number; linkname?: string }): Buffer {
  if (h.path.startsWith("/") || h.path.split("/").includes("..")) throw new RangeError(`tar: path must be relative and stay inside the archive: ${h.path}`);
  const buf = Buffer.alloc(BLOCK, 0);
  const { name, prefix } = splitName(h.path);
  const put = (s: string, off: number, len: number) => {
    if (Buffer.byteLength(s) > len) throw new RangeError(`tar: field too long: ${s}`);
    buf.write(s, off, len, "utf8");
  };
  put(name, 0, 100);
  put(octal(h.mode & 0o7777, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(h.size, 12), 124, 12);
  put(octal(MTIME, 12), 136, 12);
  buf.fill(0x20, 148, 156); // checksum field counts as spaces
  put(h.type, 156, 1);
  put(h.linkname ?? "", 157, 100);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  put("root", 265, 32);
  put("root", 297, 32);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of buf) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return buf;
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK, 0);

async function* generate(entries: readonly TarEntry[]): AsyncGenerator<Buffer> {
  const seen = new Set<string>();
  for (const e of entries) {
    const path = e.type === "dir" ? e.path.replace(/\/+$/, "") + "/" : e.path;
    if (seen.has(path)) throw new Error(`tar: duplicate entry ${path}`);
    seen.add(path);
    if (e.type === "dir") {
      yield tarHeader({ path, type: "5", mode: e.mode ?? 0o755, size: 0 });
    } else if (e.type === "symlink") {
      yield tarHeader({ path, type: "2", mode: 0o777, size: 0, linkname: e.target });
    } else if ("content" in e) {
      const data = typeof e.content === "string" ? Buffer.from(e.content) : Buffer.from(e.content);
      yield tarHeader({ path, type: "0", mode: e.mode ?? 0o644, size: data.length });
      yield data;
      yield padding(data.length);
    } else {
      const st = await stat(e.source); // follows links: the archive holds the content
      if (!st.isFile()) throw new Error(`tar: ${e.source} is not a regular file`);
      yield tarHeader({ path, type: "0", mode: e.mode ?? st.mode, size: st.size });
      let written = 0;
      if (st.size > 0) {
        for await (const chunk of createReadStream(e.source, { start: 0, end: st.size - 1 })) {
          const b = chunk as Buffer;
          written += b.length;
          yield b;
        }
      }
      if (written !== st.size) throw new Error(`tar: ${e.source} changed size while being read (${st.size} -> ${written})`);
      yield padding(st.size);
    }
  }
  yield Buffer.alloc(BLOCK * 2, 0);
}

/**
 * A readable tar stream of `entries`, in order. Host files are read when the stream reaches them.
 * @example
 * const ctx = createTarStream([{ type: "file", path: "Dockerfile", content: "FROM scratch\n" }]);
 */
export function createTarStream(entries: readonly TarEntry[]): Readable {
  return Readable.from(generate(entries), { objectMode: false });
}
