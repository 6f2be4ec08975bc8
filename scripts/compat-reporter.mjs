/**
 * A `node:test` reporter for `scripts/compat.ts`: one JSON line per finished test (suites and
 * tests skipped by the name pattern left out): `{"name", "status": "pass"|"fail", "error"?,
 * "duration_ms"}`. `error` is the failure's first line (the assertion's message).
 * Event shapes: Node's test runner reporter API (`test:pass`, `test:fail` with `data.details`).
 * Plain JavaScript: Node loads reporters before `--import tsx` applies.
 *
 * @param {AsyncIterable<{type: string, data: {name: string, skip?: unknown, todo?: unknown, details?: {type?: string, duration_ms?: number, error?: {message?: string, cause?: {message?: string}}}}}>} source
 * @returns {AsyncGenerator<string>}
 */
export default async function* compatReporter(source) {
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const d = event.data;
    if (d.details?.type === "suite" || d.skip || d.todo) continue;
    const line = { name: d.name, status: event.type === "test:pass" ? "pass" : "fail", duration_ms: Math.round(d.details?.duration_ms ?? 0) };
    if (event.type === "test:fail") {
      const err = d.details?.error;
      const message = err?.cause?.message ?? err?.message ?? "failed";
      line.error = message.split("\n").find((l) => l.trim() !== "")?.trim().slice(0, 300) ?? "failed";
    }
    yield `${JSON.stringify(line)}\n`;
  }
}
