/**
 * Demultiplexes Docker's attach/exec stream (no TTY): frames of an 8-byte
 * header — stream type (1 stdout, 2 stderr), 3 zero bytes, a 4-byte big-endian
 * length — followed by that many bytes.
 *
 * docker-modem's `demuxStream` does the same but writes into its targets
 * without looking at their return value (unbounded buffering when a reader is
 * slow) and concatenates its whole buffer on every chunk. This one keeps a list
 * of pending chunks, pauses the source while either output is over its
 * high-water mark and resumes on `drain`, so memory stays bounded by the
 * outputs' buffers plus one frame header.
 *
 * When the engine cannot start an exec'd process (command not found, bad
 * working directory) it writes `OCI runtime exec failed: …` on the process's
 * stdout and reports exit code 126 or 127. With `holdPrefix`, stdout that
 * starts with that prefix is held back (at most 64 KiB) until the caller,
 * knowing the exit code, calls `releaseHeld(true)` (it was program output
 * after all) or `releaseHeld(false)` (drop it: it was the engine's error).
 */
import { PassThrough, type Readable } from "node:stream";

/** The two outputs of {@link demuxDockerStream}. */
export interface Demuxed {
  /** Ends when the source ends or fails, unless output is held (see {@link releaseHeld}). */
  stdout: Readable;
  /** Ends when the source ends or fails. */
  stderr: Readable;
  /** Resolves when the source has ended (or failed: then with the error). */
  done: Promise<Error | undefined>;
  /** The held stdout text (empty when nothing was held). */
  held: () => string;
  /** Ends stdout, first writing the held text when `keep`. Idempotent. */
  releaseHeld: (keep: boolean) => void;
}

const HEADER = 8;
const HOLD_MAX = 64 * 1024;

/**
 * Splits a multiplexed Docker stream into stdout and stderr.
 * @example
 * const { stdout, stderr, done } = demuxDockerStream(hijackedSocket);
 * stdout.setEncoding("utf8").on("data", (s) => process.stdout.write(s));
 */
export function demuxDockerStream(source: Readable, opts: { highWaterMark?: number; holdPrefix?: string } = {}): Demuxed {
  const hwm = opts.highWaterMark ?? 64 * 1024;
  const prefix = opts.holdPrefix ? Buffer.from(opts.holdPrefix) : null;
  const stdout = new PassThrough({ highWaterMark: hwm });
  const stderr = new PassThrough({ highWaterMark: hwm });
  const chunks: Buffer[] = [];
  let buffered = 0;
  /** Remaining payload bytes of the current frame and its target (null: reading a header). */
  let remaining = 0;
  let target: PassThrough | null = null;
  let paused = false;
  let finished = false;
  /** Set once a non-multiplexed stream is detected: everything goes to stdout as it is. */
  let rawMode = false;
  /** stdout sniffing: `pending` while the first bytes may still be the prefix, `held` once they are. */
  let sniff: "off" | "pending" | "held" = prefix ? "pending" : "off";
  let sniffed: Buffer[] = [];
  let sniffedLen = 0;
  let released = false;
  let resolveDone!: (e: Error | undefined) => void;
  const done = new Promise<Error | undefined>((r) => (resolveDone = r));

  const take = (n: number): Buffer => {
    // Removes and returns the first n buffered bytes (n <= buffered).
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = chunks[0]!;
      if (head.length <= need) {
        parts.push(head);
        chunks.shift();
        need -= head.length;
      } else {
        parts.push(head.subarray(0, need));
        chunks[0] = head.subarray(need);
        need = 0;
      }
    }
    buffered -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  };

  const write = (t: PassThrough, data: Buffer) => {
    if (!t.write(data) && !paused) {
      paused = true;
      source.pause();
      t.once("drain", () => {
        paused = false;
        if (!finished) source.resume();
      });
    }
  };

  const writeStdout = (data: Buffer) => {
    if (sniff === "off") return write(stdout, data);
    if (sniff === "held") {
      if (sniffedLen < HOLD_MAX) sniffed.push(data.subarray(0, HOLD_MAX - sniffedLen));
      sniffedLen += data.length;
      return;
    }
    sniffed.push(data);
    sniffedLen += data.length;
    const head = Buffer.concat(sniffed);
    const n = Math.min(head.length, prefix!.length);
    if (head.subarray(0, n).equals(prefix!.subarray(0, n))) {
      if (head.length >= prefix!.length) sniff = "held";
      return;
    }
    sniff = "off";
    sniffed = [];
    write(stdout, head);
  };

  const pump = () => {
    for (;;) {
      if (target === null) {
        if (buffered < HEADER) return;
        const header = take(HEADER);
        const type = header[0];
        // 0 would be stdin (never sent back); anything else means the stream is not multiplexed: it is all stdout.
        if (type !== 1 && type !== 2) {
          rawMode = true;
          writeStdout(header);
          if (buffered > 0) writeStdout(take(buffered));
          return;
        }
        remaining = header.readUInt32BE(4);
        target = remaining === 0 ? null : type === 2 ? stderr : stdout;
        continue;
      }
      if (buffered === 0) return;
      const n = Math.min(remaining, buffered);
      const payload = take(n);
      remaining -= n;
      const t = target;
      if (remaining === 0) target = null;
      if (t === stdout) writeStdout(payload);
      else write(t, payload);
    }
  };

  const releaseHeld = (keep: boolean) => {
    if (released) return;
    released = true;
    if (keep && sniffed.length) stdout.write(Buffer.concat(sniffed));
    sniffed = [];
    stdout.end();
  };

  const finish = (err?: Error) => {
    if (finished) return;
    finished = true;
    stderr.end();
    // A short output that only ever matched the beginning of the prefix is program output.
    if (sniff === "pending") {
      sniff = "off";
      if (sniffed.length) stdout.write(Buffer.concat(sniffed));
      sniffed = [];
    }
    if (sniff !== "held") {
      released = true;
      stdout.end();
    }
    resolveDone(err);
  };

  source.on("data", (chunk: Buffer | string) => {
    const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (rawMode) return writeStdout(buf);
    chunks.push(buf);
    buffered += buf.length;
    pump();
  });
  source.once("end", () => finish());
  source.once("close", () => finish());
  source.once("error", (err: Error) => finish(err));
  return { stdout, stderr, done, held: () => (sniff === "held" ? Buffer.concat(sniffed).toString("utf8") : ""), releaseHeld };
}
