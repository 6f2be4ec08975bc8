/**
 * Prints the hottest functions of a V8 `.cpuprofile` (from `npm run bench --
 * --profile`): self time and total (inclusive) time, by function and location.
 *
 *   node --import tsx bench/profile-top.ts bench/results/profiles/pipeline/CPU.*.cpuprofile [--top 25] [--after-fn append]
 *
 * `--after-fn NAME` skips the samples before the first one whose stack holds
 * NAME (e.g. `append`: leave out boot and module loading).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  options: { top: { type: "string", default: "25" }, "after-fn": { type: "string" } },
  allowPositionals: true,
});
for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  // --after-fn NAME: skip samples (boot, module loading) before the first one whose stack contains NAME
  let counting = values["after-fn"] === undefined;
  const stackHas = (id: number, name: string) => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) if (byId.get(cur)!.callFrame.functionName === name) return true;
    return false;
  };
  p.samples.forEach((id, i) => {
    if (!counting && stackHas(id, values["after-fn"]!)) counting = true;
    if (counting) selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const label = (n: ProfileNode) => {
    const f = n.callFrame;
    const where = f.url ? `${f.url.replace(/^file:\/\/.*?\/(src|node_modules|bench)\//, "$1/")}:${f.lineNumber + 1}` : "";
    return `${f.functionName || "(anonymous)"} ${where}`.trim();
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    self.set(label(n), (self.get(label(n)) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + us);
    }
  }
  const all = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs].filter(([id]) => byId.get(id)!.callFrame.functionName === "(idle)").reduce((a, [, us]) => a + us, 0);
  const top = Number(values.top);
  const pct = (us: number) => `${((us / all) * 100).toFixed(1).padStart(5)}%`;
  console.log(`\n${file}: ${(all / 1000).toFixed(0)} ms sampled, ${(idle / 1000).toFixed(0)} ms idle`);
  console.log("  self:");
  for (const [l, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)} ${(us / 1000).toFixed(0).padStart(6)} ms  ${l}`);
  console.log("  total (inclusive):");
  for (const [l, us] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)} ${(us / 1000).toFixed(0).padStart(6)} ms  ${l}`);
}
