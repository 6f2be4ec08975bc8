/**
 * The native agent's tools (`src/agent/native/tools/`) on a real temporary workspace: file tools
 * confined to it (ranges, create, exact edit with its diff, listing, symlinks refused), glob and
 * grep, bash (exit code, output cap, timeout, abort, cwd outside), plan, the tool runner
 * (unknown tool, invalid input, permission allow / deny / cancelled, events) and the registry's
 * schemas (what `GET /api/tools` serves).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TerminalSet } from "../../src/agent/acp/terminal.ts";
import type { PermissionAsk, PermissionGate } from "../../src/agent/permissions.ts";
import type { PlanEntry } from "../../src/agent/native/plan.ts";
import { createShellRunner, type ShellRunner } from "../../src/agent/native/shell.ts";
import { createToolRunner } from "../../src/agent/native/tool-runner.ts";
import { createNativeTools, nativeToolSchemas, NATIVE_TOOLS } from "../../src/agent/native/tools/index.ts";
import type { ToolContext, ToolResult } from "../../src/agent/native/tools/types.ts";
import { createWorkspaceFs } from "../../src/agent/native/workspace-fs.ts";
import type { RunEventInput } from "../../src/protocol/events.ts";

let tmp: string;
let root: string;
let shell: ShellRunner;
let plans: PlanEntry[][];
let ctx: ToolContext;
const tools = createNativeTools({ timeoutMs: 5000, maxTimeoutMs: 10_000, maxOutputBytes: 2048 });
const tool = (name: string) => tools.find((t) => t.name === name)!;
const call = (name: string, input: unknown, c: Partial<ToolContext> = {}): Promise<ToolResult> => tool(name).run(input as never, { ...ctx, ...c });

before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "native-tools-"));
  root = path.join(tmp, "ws");
  mkdirSync(root);
  writeFileSync(path.join(tmp, "secret.txt"), "outside\n");
  shell = createShellRunner(new TerminalSet({ root, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmp } }));
  plans = [];
  ctx = { fs: createWorkspaceFs({ root }), shell, setPlan: (e) => plans.push(e), signal: new AbortController().signal };
});

after(async () => {
  await shell.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe("file tools", () => {
  test("write_file creates folders and the file; read_file reads it whole or a range", async () => {
    const w = await call("write_file", { path: "a/b/c.txt", content: "one\ntwo\nthree\nfour\n" });
    assert.equal(w.is_error, false, w.output);
    assert.match(w.output, /^Created .*a\/b\/c\.txt \(19 bytes\)\.$/);
    assert.equal(readFileSync(path.join(root, "a/b/c.txt"), "utf8"), "one\ntwo\nthree\nfour\n");
    assert.equal((await call("read_file", { path: "a/b/c.txt" })).output, "one\ntwo\nthree\nfour\n");
    assert.equal((await call("read_file", { path: "a/b/c.txt", offset: 2, limit: 2 })).output, "two\nthree");
    assert.match((await call("write_file", { path: "a/b/c.txt", content: "x" })).output, /^Replaced/);
  });

  test("paths outside the workspace, through a symlink too, are refused as errors", async () => {
    symlinkSync(path.join(tmp, "secret.txt"), path.join(root, "link.txt"));
    for (const p of ["../secret.txt", path.join(tmp, "secret.txt"), "link.txt"]) {
      const r = await call("read_file", { path: p });
      assert.equal(r.is_error, true, p);
      assert.match(r.output, /outside the run's workspace|symlink/, r.output);
    }
    const w = await call("write_file", { path: "../evil.txt", content: "x" });
    assert.equal(w.is_error, true);
    assert.match((await call("read_file", { path: "nope.txt" })).output, /^nope\.txt: no such file or folder$/);
  });

  test("edit_file replaces exactly once, refuses no match and ambiguity, replace_all replaces all, result carries the diff", async () => {
    writeFileSync(path.join(root, "e.txt"), "a\nfoo\nb\nfoo\nc\n");
    assert.match((await call("edit_file", { path: "e.txt", old_string: "zzz", new_string: "y" })).output, /not found/);
    const amb = await call("edit_file", { path: "e.txt", old_string: "foo", new_string: "bar" });
    assert.equal(amb.is_error, true);
    assert.match(amb.output, /occurs 2 times/);
    const one = await call("edit_file", { path: "e.txt", old_string: "a\nfoo", new_string: "a\nFOO" });
    assert.equal(one.is_error, false, one.output);
    assert.equal(readFileSync(path.join(root, "e.txt"), "utf8"), "a\nFOO\nb\nfoo\nc\n");
    assert.equal(one.detail!.diff, "--- a/e.txt\n+++ b/e.txt\n@@ -1,5 +1,5 @@\n a\n-foo\n+FOO\n b\n foo\n c\n");
    const all = await call("edit_file", { path: "e.txt", old_string: "o", new_string: "0", replace_all: true });
    assert.equal(all.detail!.replacements, 2);
    assert.equal(readFileSync(path.join(root, "e.txt"), "utf8"), "a\nFOO\nb\nf00\nc\n");
  });

  test("list_dir marks folders and symlinks; glob and grep search without following links", async () => {
    mkdirSync(path.join(root, "src/deep"), { recursive: true });
    writeFileSync(path.join(root, "src/x.ts"), "export const Answer = 42;\n");
    writeFileSync(path.join(root, "src/deep/y.ts"), "const answer = 41;\n");
    writeFileSync(path.join(root, "src/deep/z.md"), "answer\n");
    mkdirSync(path.join(root, "node_modules/pkg"), { recursive: true });
    writeFileSync(path.join(root, "node_modules/pkg/i.ts"), "answer\n");
    symlinkSync(tmp, path.join(root, "up"));
    const ls = (await call("list_dir", {})).output.split("\n");
    assert.ok(ls.includes("src/") && ls.includes("up -> (link)") && ls.includes("e.txt"), ls.join(","));
    assert.equal((await call("glob", { pattern: "**/*.ts" })).output, "src/deep/y.ts\nsrc/x.ts");
    assert.equal((await call("glob", { pattern: "*.md" })).output, "src/deep/z.md");
    assert.equal((await call("glob", { pattern: "*.{ts,md}", path: "src/deep" })).output, "src/deep/y.ts\nsrc/deep/z.md");
    assert.equal((await call("grep", { pattern: "answer", ignore_case: true, glob: "*.ts" })).output, "src/deep/y.ts:1: const answer = 41;\nsrc/x.ts:1: export const Answer = 42;");
    assert.equal((await call("grep", { pattern: "41", path: "src/deep/y.ts" })).output, "src/deep/y.ts:1: const answer = 41;");
    assert.equal((await call("grep", { pattern: "outside" })).output, "No matches.", "the link to the parent is not followed");
    assert.match((await call("grep", { pattern: "(" })).output, /invalid regular expression/);
  });

  test("a pattern that backtracks exponentially ends as a tool error within the matching budget, not a stalled server", async () => {
    writeFileSync(path.join(root, "redos.txt"), `${"a".repeat(48)}!\n`);
    // Unbounded, this match would run for hours: the test's own timeout is the check that it ends.
    const r = await call("grep", { pattern: "^(a+)+$", path: "redos.txt" });
    assert.equal(r.is_error, true, r.output);
    assert.equal((r.detail as { reason?: string }).reason, "pattern_too_slow");
    assert.match(r.output, /took more than 1000 ms/);
    assert.equal((await call("grep", { pattern: "^a+!$", path: "redos.txt" })).output, `redos.txt:1: ${"a".repeat(48)}!`);
  });
});

describe("bash", () => {
  test("exit code and output; a non-zero exit is an error result", async () => {
    const ok = await call("bash", { command: "echo hi; echo err >&2" });
    assert.equal(ok.is_error, false);
    assert.equal(ok.output, "exit code 0\nhi\nerr");
    const bad = await call("bash", { command: "exit 7" });
    assert.equal(bad.is_error, true);
    assert.equal(bad.detail!.exit_code, 7);
  });

  test("runs in the workspace or a folder inside; a cwd outside is refused", async () => {
    assert.equal((await call("bash", { command: "pwd" })).output, `exit code 0\n${root}`);
    assert.equal((await call("bash", { command: "pwd", cwd: "src" })).output, `exit code 0\n${path.join(root, "src")}`);
    const out = await call("bash", { command: "pwd", cwd: ".." });
    assert.equal(out.is_error, true);
    assert.match(out.output, /outside/);
  });

  test("output past the byte cap keeps the tail", async () => {
    const r = await call("bash", { command: "for i in $(seq 1 2000); do echo line$i; done" });
    assert.equal(r.detail!.truncated, true);
    assert.ok(r.output.endsWith("line2000"));
    assert.ok(Buffer.byteLength(r.output) < 2048 + 200);
  });

  test("a command past its timeout is killed with its children", async () => {
    const r = await call("bash", { command: "sleep 30 & sleep 30", timeout_ms: 300 }); // ends long before 30 s only if killed
    assert.equal(r.is_error, true);
    assert.equal(r.detail!.timed_out, true);
    assert.match(r.output, /killed after the timeout of 300 ms/);
  });

  test("the run's abort kills a running command at once", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const r = await call("bash", { command: "sleep 30" }, { signal: ac.signal });
    assert.match(r.output, /the run is stopping/);
  });
});

describe("plan and the registry", () => {
  test("plan records the whole list", async () => {
    const entries = [{ content: "a", status: "completed" }, { content: "b", status: "pending" }];
    const r = await call("plan", { entries });
    assert.equal(r.output, "Plan recorded: 2 steps, 1 completed.");
    assert.deepEqual(plans.at(-1), entries);
  });

  test("nativeToolSchemas: names in offer order, plain JSON schemas, mutating flags", () => {
    const schemas = nativeToolSchemas();
    assert.deepEqual(schemas.map((t) => t.name), ["read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "bash", "plan"]);
    assert.deepEqual(schemas.filter((t) => t.mutating).map((t) => t.name), ["write_file", "edit_file", "bash"]);
    for (const t of schemas) {
      assert.equal(t.input_schema.type, "object", t.name);
      assert.equal(Object.getOwnPropertySymbols(t.input_schema).length, 0);
      assert.ok(t.description.length > 20);
    }
    assert.deepEqual((schemas[0]!.input_schema as { required: string[] }).required, ["path"]);
    assert.equal(NATIVE_TOOLS.length, 8);
  });
});

describe("tool runner", () => {
  const gate = (decide: (req: PermissionAsk) => "allow" | "reject" | "cancelled", asked: PermissionAsk[] = []): PermissionGate => ({
    ask: async (req) => {
      asked.push(req);
      const d = decide(req);
      return d === "cancelled" ? { outcome: "cancelled" } : { outcome: "selected", option_id: d };
    },
  });

  test("emits tool.call then tool.result; unknown tools and invalid inputs are error results", async () => {
    const events: RunEventInput[] = [];
    const runner = createToolRunner({ tools, emit: (e) => events.push(e) });
    const unknown = await runner.run({ id: "c1", name: "rm_rf", input: {} }, ctx);
    assert.equal(unknown.is_error, true);
    assert.match(unknown.output, /unknown tool "rm_rf"; the tools are: read_file, /);
    const invalid = await runner.run({ id: "c2", name: "read_file", input: { path: 3 } }, ctx);
    assert.match(invalid.output, /invalid input for read_file: \/path must be string/);
    const extra = await runner.run({ id: "c3", name: "list_dir", input: { path: ".", recursive: true } }, ctx);
    assert.match(extra.output, /must NOT have additional properties/);
    assert.deepEqual(events.map((e) => `${e.type}:${(e.data as { call_id: string }).call_id}`), ["tool.call:c1", "tool.result:c1", "tool.call:c2", "tool.result:c2", "tool.call:c3", "tool.result:c3"]);
  });

  test("mutating tools ask the gate; allow runs, reject and cancelled do not; reading tools never ask", async () => {
    const asked: PermissionAsk[] = [];
    let answer: "allow" | "reject" | "cancelled" = "reject";
    const runner = createToolRunner({ tools, emit: () => {}, permissions: gate(() => answer, asked) });
    const denied = await runner.run({ id: "w1", name: "write_file", input: { path: "perm.txt", content: "x" } }, ctx);
    assert.equal(denied.is_error, true);
    assert.match(denied.output, /permission denied/);
    answer = "cancelled";
    assert.match((await runner.run({ id: "w2", name: "bash", input: { command: "touch perm.txt" } }, ctx)).output, /the run is ending/);
    assert.throws(() => readFileSync(path.join(root, "perm.txt")));
    answer = "allow";
    assert.equal((await runner.run({ id: "w3", name: "write_file", input: { path: "perm.txt", content: "x" } }, ctx)).is_error, false);
    assert.equal(readFileSync(path.join(root, "perm.txt"), "utf8"), "x");
    await runner.run({ id: "r1", name: "read_file", input: { path: "perm.txt" } }, ctx);
    assert.deepEqual(asked.map((a) => [a.call_id, a.name]), [["w1", "write_file"], ["w2", "bash"], ["w3", "write_file"]]);
    assert.deepEqual(asked[0]!.options.map((o) => o.kind), ["allow_once", "reject_once"]);
  });
});
