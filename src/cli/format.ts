/**
 * Small pure text helpers shared by the CLI renderer and tables: ANSI styling,
 * durations, token counts, one-line summaries of tool input and output.
 */

/** ANSI styles the CLI uses. */
export type Style = "dim" | "bold" | "red" | "green" | "yellow" | "cyan" | "gray";

const ANSI: Record<Style, [number, number]> = {
  dim: [2, 22],
  bold: [1, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  gray: [90, 39],
};

/** A function that styles text, or returns it unchanged when colour is off. */
export type Paint = (style: Style, text: string) => string;

/**
 * Creates a {@link Paint} function.
 * @example createPaint(true)("red", "x") === "\u001b[31mx\u001b[39m"
 */
export function createPaint(color: boolean): Paint {
  if (!color) return (_style, text) => text;
  return (style, text) => (text === "" ? "" : `\u001b[${ANSI[style][0]}m${text}\u001b[${ANSI[style][1]}m`);
}

/**
 * Formats a duration in milliseconds for people: `850ms`, `12.3s`, `2m 05s`, `1h 02m`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalS = Math.round(ms / 1000);
  if (totalS < 3600) return `${Math.floor(totalS / 60)}m ${String(totalS % 60).padStart(2, "0")}s`;
  const totalM = Math.floor(totalS / 60);
  return `${Math.floor(totalM / 60)}h ${String(totalM % 60).padStart(2, "0")}m`;
}

/** Formats an integer with thousands separators, independent of the locale: `12,345`. */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Collapses whitespace to single spaces and cuts to `max` characters with `…`. */
export function truncateLine(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, Math.max(0, max - 1))}…` : one;
}

const INPUT_KEYS = ["command", "cmd", "file_path", "filePath", "path", "pattern", "url", "query", "description", "prompt"];

/**
 * Summarizes a tool's input on one line: the most telling field (command,
 * file path, pattern, url …) when there is one, otherwise compact JSON.
 * @example summarizeToolInput({ command: ["ls", "-la"] }) === "ls -la"
 */
export function summarizeToolInput(input: unknown, max = 80): string {
  if (input === undefined || input === null) return "";
  if (typeof input === "string") return truncateLine(input, max);
  if (typeof input === "object" && !Array.isArray(input)) {
    const obj = input as Record<string, unknown>;
    for (const key of INPUT_KEYS) {
      const v = obj[key];
      if (typeof v === "string" && v.trim() !== "") return truncateLine(v, max);
      if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string")) return truncateLine(v.join(" "), max);
    }
  }
  return truncateLine(safeJson(input), max);
}

/** Extracts the readable text of a tool output: a string, `{output|stdout|content|text|result}`, or content blocks. */
export function extractOutputText(output: unknown, depth = 0): string {
  if (output === undefined || output === null) return "";
  if (typeof output === "string") return output;
  if (typeof output === "number" || typeof output === "boolean") return String(output);
  if (depth < 3 && Array.isArray(output)) {
    const texts = output.map((b) => extractOutputText(b, depth + 1)).filter((t) => t !== "");
    if (texts.length > 0) return texts.join("\n");
  }
  if (depth < 3 && typeof output === "object" && !Array.isArray(output)) {
    const obj = output as Record<string, unknown>;
    for (const key of ["output", "stdout", "content", "text", "result", "stderr", "error", "message"]) {
      const t = extractOutputText(obj[key], depth + 1);
      if (t !== "") return t;
    }
  }
  return safeJson(output);
}

/**
 * Summarizes a tool's output: its first non-empty line, cut to `max`, and
 * `(+N lines)` when there is more.
 * @example summarizeToolOutput("a\nb\nc") === "a (+2 lines)"
 */
export function summarizeToolOutput(output: unknown, max = 100): string {
  const lines = extractOutputText(output)
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");
  const first = lines[0];
  if (first === undefined) return "";
  const more = lines.length > 1 ? ` (+${lines.length - 1} line${lines.length > 2 ? "s" : ""})` : "";
  return truncateLine(first, max) + more;
}

/** Formats an ISO timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), or `-` when absent. */
export function formatTimestamp(iso: string | null | undefined): string {
  if (!iso) return "-";
  return iso.replace("T", " ").slice(0, 19);
}

/**
 * Lays out rows as a left-aligned, space-separated table with a header row.
 * @example formatTable(["A", "B"], [["x", "yy"]]) === "A  B\nx  yy"
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
