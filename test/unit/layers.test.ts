/**
 * Dependencies point one way (docs/architecture.md#layers, issue 17): every relative
 * import in `src/` goes from a higher layer to a strictly lower one. A file's
 * layer is the first folder under `src/` (`src/run/manager.ts` is `run`); a
 * top-level file is its own layer (`src/errors.ts` is `errors`). Layers of one
 * rank are peers and import nothing of each other. `protocol` (the event and
 * API contract) is rank 0: it imports nothing of the project.
 *
 * Imports are read with TypeScript's own pre-processor (`ts.preProcessFile`):
 * static `import … from`, `export … from`, side-effect `import "…"` and
 * `import("…")`, type-only ones included, comments and strings ignored.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SRC = path.join(ROOT, "src");

/** The rank of each layer, bottom first; a layer may import only layers of a lower rank. */
const RANK: Record<string, number> = {
  protocol: 0, // the RunEvent union and its schemas, failure codes, the SSE frames, the API request/response schemas
  errors: 1, // the closed set of application errors
  log: 1, // the logger
  client: 1, // the typed API client (openrunner/client): imports only protocol; runs in a browser too
  "errors-http": 2, // error -> HTTP status/body, shared by api/ and proxy/
  config: 2,
  store: 3,
  bus: 3,
  container: 4,
  agent: 5,
  run: 6,
  auth: 7,
  tunnel: 7,
  webhooks: 7,
  telemetry: 7, // OpenTelemetry spans of runs: subscribes to the bus and reads the store (as webhooks do); mounted by engine.ts and server.ts
  "cluster-node": 7, // which store a process opens (SQLite or PostgreSQL) and what its distributed role runs (reaper, worker loop); used by engine.ts
  proxy: 8, // uses auth (bearer/API key) and container addresses
  engine: 8, // composition of store, bus, agents, run manager, containers and webhooks, without HTTP
  api: 9,
  mcp: 9.5, // the MCP server (src/mcp/): above api (its ajv validation, route-module shape, artifact listing), below the roots that mount it (server.ts: /mcp) and run it (cli/: `openrunner mcp`)
  cli: 10,
  server: 10, // composition root of `openrunner serve`: the engine plus auth, the API and the proxy
  embed: 10, // createOpenRunner(): the engine as a library, without HTTP
  main: 11, // the entry point: the CLI commands and the server
};

/**
 * Upward (or sideways) imports that remain, each with its reason. An entry
 * that no longer occurs fails the test too, so the list only shrinks.
 */
const ALLOWED: ReadonlyArray<{ from: string; to: string; reason: string }> = [
  { from: "container/build-output.ts", to: "agent/line-splitter.ts", reason: "a generic stream-to-lines helper that lives in agent/; belongs in a utility layer below both" },
  { from: "container/run-container.ts", to: "agent/safe-fs.ts", reason: "the symlink-safe fs primitives (chownTree) live in agent/; belong in a utility layer below both" },
  { from: "container/disk-full.ts", to: "agent/types.ts", reason: "rewrites an AgentOutcome (type only) when a container's disk filled up" },
];

/** Every `.ts` file under `dir`, as paths relative to `src/` with `/` separators. */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith(".ts")) out.push(path.relative(SRC, p).split(path.sep).join("/"));
  }
  return out;
}

/** The layer of a path relative to `src/`: its first folder, or the file's name without `.ts` at the top. */
function layerOf(rel: string): string {
  const [first, ...rest] = rel.split("/");
  return rest.length === 0 ? first!.replace(/\.ts$/, "") : first!;
}

/** The relative import specifiers of one source text (static, re-export, side-effect and dynamic). */
function relativeImports(text: string): string[] {
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((s) => s.startsWith("./") || s.startsWith("../"));
}

interface Edge {
  from: string;
  to: string;
}

/** Every relative import between two different layers, as paths relative to `src/`. */
function crossLayerEdges(): { edges: Edge[]; total: number } {
  const edges: Edge[] = [];
  let total = 0;
  for (const rel of sourceFiles(SRC)) {
    for (const spec of relativeImports(readFileSync(path.join(SRC, rel), "utf8"))) {
      total++;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec));
      assert.ok(!target.startsWith("../"), `src/${rel} imports ${spec}, outside src/`);
      if (layerOf(rel) !== layerOf(target)) edges.push({ from: rel, to: target });
    }
  }
  return { edges, total };
}

/** True when `e` breaks the rank order (and is not allow-listed). */
function isUpward(e: Edge): boolean {
  return RANK[layerOf(e.from)]! <= RANK[layerOf(e.to)]!;
}

test("the import extractor sees static, re-export, side-effect and dynamic imports, not comments", () => {
  const text = [
    'import { a } from "./a.ts";',
    "import type {\n  B,\n  C,\n} from '../b.ts';",
    'export { d } from "./d.ts";',
    'export * from "./e.ts";',
    'import "./f.ts";',
    'const g = await import("../g.ts");',
    '// import { h } from "./h.ts";',
    '/** @example import { i } from "./i.ts" */',
    'const s = "import { j } from \'./j.ts\'";',
    'import { Type } from "@sinclair/typebox";',
    'import fs from "node:fs";',
  ].join("\n");
  assert.deepEqual(relativeImports(text).sort(), ["../b.ts", "../g.ts", "./a.ts", "./d.ts", "./e.ts", "./f.ts"]);
});

test("every src/ layer has a rank", () => {
  const layers = new Set(sourceFiles(SRC).map(layerOf));
  const missing = [...layers].filter((l) => RANK[l] === undefined);
  assert.deepEqual(missing, [], "add the new layer to RANK in test/unit/layers.test.ts (docs/architecture.md#layers)");
});

test("no import points from a lower layer to a higher one (or to a peer)", () => {
  const { edges, total } = crossLayerEdges();
  assert.ok(total > 200 && edges.length > 100, `the extractor found only ${total} imports, ${edges.length} across layers`);
  const allowed = new Set(ALLOWED.map((a) => `${a.from} -> ${a.to}`));
  const upward = edges.filter(isUpward).map((e) => `src/${e.from} (${layerOf(e.from)}, rank ${RANK[layerOf(e.from)]}) -> src/${e.to} (${layerOf(e.to)}, rank ${RANK[layerOf(e.to)]})`);
  const unexpected = edges.filter((e) => isUpward(e) && !allowed.has(`${e.from} -> ${e.to}`));
  assert.deepEqual(
    unexpected.map((e) => `src/${e.from} -> src/${e.to}`),
    [],
    `imports against the layer order (docs/architecture.md#layers); move the shared piece down a layer instead:\n  ${upward.join("\n  ")}`,
  );
});

test("the allow-list names only upward imports that still exist", () => {
  const present = new Set(crossLayerEdges().edges.filter(isUpward).map((e) => `${e.from} -> ${e.to}`));
  const stale = ALLOWED.filter((a) => !present.has(`${a.from} -> ${a.to}`)).map((a) => `${a.from} -> ${a.to}`);
  assert.deepEqual(stale, [], "remove these entries from ALLOWED: the import is gone or no longer upward");
});

test("src/protocol/ imports only node builtins and npm packages", () => {
  for (const rel of sourceFiles(SRC).filter((r) => layerOf(r) === "protocol")) {
    for (const spec of relativeImports(readFileSync(path.join(SRC, rel), "utf8"))) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec));
      assert.equal(layerOf(target), "protocol", `src/${rel} imports ${spec}`);
    }
  }
});

test("src/client/ imports only protocol/ and browser-safe packages (no node: builtins)", () => {
  const packages = new Set(["eventsource-parser", "@sinclair/typebox"]);
  const files = sourceFiles(SRC).filter((r) => layerOf(r) === "client" || layerOf(r) === "protocol");
  assert.ok(files.some((r) => layerOf(r) === "client"), "src/client/ exists");
  for (const rel of files) {
    for (const f of ts.preProcessFile(readFileSync(path.join(SRC, rel), "utf8"), true, true).importedFiles) {
      const spec = f.fileName;
      if (spec.startsWith("./") || spec.startsWith("../")) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), spec));
        assert.ok(["client", "protocol"].includes(layerOf(target)), `src/${rel} imports ${spec}: the client may import only protocol/`);
      } else {
        assert.ok(packages.has(spec), `src/${rel} imports ${spec}: the client bundle must run in a browser (allowed: ${[...packages].join(", ")})`);
      }
    }
  }
});
