/**
 * Reads the Docker engine's image-build output: newline-delimited JSON
 * messages (`{stream}`, `{status}`, `{error, errorDetail}`; format of the
 * engine's `POST /build` endpoint). Progress text goes to `onProgress`; error
 * messages are collected and returned.
 */
import { createLineSplitter } from "../agent/line-splitter.ts";

/** Consumes `out` until it ends; resolves with the build's error messages (empty: success). Rejects on a stream error. */
export function collectBuildOutput(out: NodeJS.ReadableStream, onProgress?: (line: string) => void): Promise<string[]> {
  const errors: string[] = [];
  const onLine = (line: string) => {
    if (!line.trim()) return;
    let msg: { stream?: string; status?: string; error?: string; errorDetail?: { message?: string } };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      return onProgress?.(line);
    }
    if (msg.error || msg.errorDetail) errors.push(msg.errorDetail?.message ?? msg.error ?? "unknown build error");
    const text = (msg.stream ?? msg.status ?? msg.error ?? "").replace(/\n$/, "");
    if (text) onProgress?.(text);
  };
  const lines = createLineSplitter(onLine);
  return new Promise<string[]>((resolve, reject) => {
    out.on("data", (chunk: Buffer | string) => lines.push(chunk.toString()));
    out.once("end", () => {
      lines.end();
      resolve(errors);
    });
    out.once("error", reject);
  });
}
