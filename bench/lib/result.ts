/**
 * The shape every benchmark returns and writes to `bench/results/<name>.json`,
 * and the one table bench/run.ts prints.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { bestAndSpread, round } from "./stats.ts";

/** One reported figure: best of the repetitions, their spread, and its target. */
export interface Figure {
  metric: string;
  unit: string;
  better: "higher" | "lower";
  /** One value per repetition. */
  values: number[];
  best: number;
  min: number;
  max: number;
  /** Target as text (e.g. ">= 100000"), or undefined when informational. */
  target?: string;
  pass?: boolean;
}

/** What a benchmark returns. */
export interface BenchResult {
  name: string;
  startedAt: string;
  quick: boolean;
  repeats: number;
  figures: Figure[];
  /** Per-repetition raw measurements and notes. */
  details: unknown;
}

/** Builds a figure from per-repetition values; `target` compares the best value. */
export function figure(metric: string, unit: string, better: "higher" | "lower", values: number[], target?: { op: ">=" | "<"; value: number }): Figure {
  const s = bestAndSpread(values, better);
  const f: Figure = { metric, unit, better, values: values.map((v) => round(v, 3)), best: round(s.best, 3), min: round(s.min, 3), max: round(s.max, 3) };
  if (target) {
    f.target = `${target.op} ${target.value}`;
    f.pass = target.op === ">=" ? s.best >= target.value : s.best < target.value;
  }
  return f;
}

/** Writes `bench/results/<name>.json`. */
export function writeResult(dir: string, result: BenchResult): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.name}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

const fmt = (n: number) => (Math.abs(n) >= 1000 ? Math.round(n).toLocaleString("en-US") : String(round(n, 2)));

/** One table of every figure of every benchmark. */
export function formatTable(results: BenchResult[]): string {
  const rows: string[][] = [["benchmark", "metric", "best", "spread (min..max)", "unit", "target", "ok"]];
  for (const r of results) {
    for (const f of r.figures) {
      rows.push([r.name, f.metric, fmt(f.best), `${fmt(f.min)}..${fmt(f.max)}`, f.unit, f.target ?? "-", f.pass === undefined ? "" : f.pass ? "PASS" : "MISS"]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => (c >= 2 && c <= 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join("  ");
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}
