/** Small formatters of the dashboard: times, durations, token counts, costs. */
import type { RunStatus } from "openrunner/client";

/** A timestamp (ISO 8601) in the reader's locale, or a dash. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Milliseconds as `1.2 s`, `3 min 4 s`, `512 ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A whole number with thousands separators. */
export const formatCount = (n: number): string => n.toLocaleString("en-US");

/** US dollars with 4 decimals (`$0.0123`). */
export const formatCost = (usd: number): string => `$${usd.toFixed(4)}`;

/** The statuses a run ends in. */
export const TERMINAL: readonly RunStatus[] = ["completed", "failed", "cancelled", "timed_out"];

/** True when the run has ended. */
export const isTerminal = (s: RunStatus): boolean => TERMINAL.includes(s);

/** The status as a label (`timed_out` -> `timed out`). */
export const statusLabel = (s: string): string => s.replace("_", " ");
