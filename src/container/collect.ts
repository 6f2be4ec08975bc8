/**
 * Collects a process's output stream into a string, keeping at most `maxBytes`
 * bytes (the rest is read and dropped, so the process never blocks on a full pipe).
 */

/**
 * Starts collecting `stream`; the returned function gives what was kept so far,
 * decoded as UTF-8 (a character cut at the cap becomes U+FFFD).
 * @param maxBytes most bytes kept
 */
export function collectCapped(stream: NodeJS.ReadableStream, maxBytes: number): () => string {
  const parts: Buffer[] = [];
  let n = 0;
  stream.on("data", (b: Buffer) => {
    if (n < maxBytes) parts.push(b.subarray(0, maxBytes - n));
    n += b.length;
  });
  return () => Buffer.concat(parts).toString("utf8");
}
