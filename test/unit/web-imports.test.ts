/**
 * The dashboard depends on the client only (docs/architecture.md#layers):
 * every import of `web/src/` is another file of `web/src/`, `openrunner/client`
 * (the API client and the protocol types), or an npm package it bundles;
 * never a file of `src/` by path, and never a Node module (the page runs in a browser).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const WEB_SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../web/src");
const PACKAGES = new Set(["react", "react-dom", "react-dom/client", "react/jsx-runtime", "@tanstack/react-virtual", "diff", "openrunner/client"]);

test("web/src imports only itself, openrunner/client and the bundled packages", () => {
  const files = (readdirSync(WEB_SRC, { recursive: true }) as string[]).filter((f) => /\.(ts|tsx)$/.test(f));
  assert.ok(files.length >= 10, `only ${files.length} files found`);
  const bad: string[] = [];
  let clientImports = 0;
  for (const rel of files) {
    const file = path.join(WEB_SRC, rel);
    for (const ref of ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles) {
      const spec = ref.fileName;
      if (spec === "openrunner/client") clientImports++;
      if (spec.startsWith(".")) {
        const target = path.resolve(path.dirname(file), spec);
        if (!target.startsWith(WEB_SRC + path.sep)) bad.push(`${rel}: ${spec}`);
      } else if (!PACKAGES.has(spec)) bad.push(`${rel}: ${spec}`);
    }
  }
  assert.deepEqual(bad, [], "imports outside the dashboard's allowed set");
  assert.ok(clientImports >= 5, "the pages use openrunner/client");
});
