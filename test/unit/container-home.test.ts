/**
 * The run's home for containers: the path check before it is mounted, the
 * server's writes into a home a container user could have changed (symlinks
 * are replaced, never followed), what is copied into a project container, and
 * the opencode command inside a container.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, lstatSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { listHomeEntries, provideRunHome } from "../../src/agent/container-home.ts";
import type { ContainerHandle } from "../../src/container/types.ts";
import { toContainerExec } from "../../src/agent/container-exec.ts";
import { ensureHomeDir, writeHomeFile } from "../../src/agent/cli-support.ts";
import { createOpencodeAdapter } from "../../src/agent/opencode/adapter.ts";
import { checkRunHome } from "../../src/container/run-container.ts";
import { ContainerError } from "../../src/errors.ts";

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openrunner-home-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("checkRunHome accepts only a plain directory directly under the homes root", async (t) => {
  const base = tmp(t);
  const root = path.join(base, "homes");
  mkdirSync(path.join(root, "run_1"), { recursive: true });
  assert.equal(await checkRunHome({ dir: path.join(root, "run_1"), root }), "run_1");
  mkdirSync(path.join(root, "run_2", "deeper"), { recursive: true });
  mkdirSync(path.join(base, "elsewhere"));
  symlinkSync(path.join(base, "elsewhere"), path.join(root, "run_link"));
  for (const dir of [
    path.join(root, "run_link"), // a symlink out of the root
    path.join(root, "run_2", "deeper"), // not directly under it
    path.join(base, "elsewhere"), // outside
    path.join(root, "run_1", "..", "..", "elsewhere"), // escapes through ..
    root, // the root itself
    path.join(root, "missing"),
    "relative/run_1",
  ]) {
    await assert.rejects(checkRunHome({ dir, root }), (err: unknown) => err instanceof ContainerError && err.code === "container_failed", dir);
  }
});

test("writeHomeFile replaces a symlink (file or directory) instead of writing through it", async (t) => {
  const base = tmp(t);
  const home = path.join(base, "home");
  const outside = path.join(base, "outside");
  mkdirSync(home);
  mkdirSync(outside);
  writeFileSync(path.join(outside, "victim"), "keep");
  // A container user left links in the home: the config file and a config directory pointing out of it.
  mkdirSync(path.join(home, ".codex"));
  symlinkSync(path.join(outside, "victim"), path.join(home, ".codex", "config.toml"));
  symlinkSync(outside, path.join(home, ".gemini"));
  const a = await writeHomeFile(home, ".codex/config.toml", "model = 1\n");
  const b = await writeHomeFile(home, ".gemini/settings.json", "{}\n");
  assert.equal(readFileSync(path.join(outside, "victim"), "utf8"), "keep", "nothing written outside the home");
  assert.equal(readFileSync(a, "utf8"), "model = 1\n");
  assert.equal(readFileSync(b, "utf8"), "{}\n");
  assert.ok(lstatSync(path.join(home, ".gemini")).isDirectory(), "the link became a real directory");
  assert.ok(!lstatSync(a).isSymbolicLink());
  assert.equal(lstatSync(a).mode & 0o777, 0o600);
  // A file where a directory belongs is replaced too; `..` is refused.
  writeFileSync(path.join(home, ".cache"), "x");
  assert.ok(lstatSync(await ensureHomeDir(home, ".cache/sub")).isDirectory());
  await assert.rejects(ensureHomeDir(home, "../outside"), /inside the home/);
});

test("listHomeEntries copies directories and regular files, not links, not tmp/, and refuses a huge home", async (t) => {
  const home = tmp(t);
  mkdirSync(path.join(home, ".codex", "sessions"), { recursive: true });
  writeFileSync(path.join(home, ".codex", "config.toml"), "x = 1\n");
  mkdirSync(path.join(home, "tmp"));
  writeFileSync(path.join(home, "tmp", "bun.so"), "big");
  symlinkSync("/etc/passwd", path.join(home, "link"));
  const { entries, bytes } = await listHomeEntries(home);
  assert.deepEqual(entries.map((e) => `${e.type}:${e.path}`), ["dir:.codex", "file:.codex/config.toml", "dir:.codex/sessions"]);
  assert.equal(bytes, 6);
  const big = path.join(home, "big.bin");
  writeFileSync(big, "");
  truncateSync(big, 17 * 1024 * 1024); // sparse
  await assert.rejects(listHomeEntries(home), (err: unknown) => err instanceof ContainerError && /more than 16 MiB/.test(err.message));
});

test("opencode in a container: the image's sh and opencode, the prompt file in the container's HOME", async (t) => {
  const base = tmp(t);
  const home = path.join(base, "homes", "run_1");
  const cwd = path.join(base, "ws", "run_1");
  mkdirSync(home, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  const ctx = { run_id: "run_1", text: "hi there", cwd, home, server_env: { PATH: "/nonexistent" }, in_container: true };
  const cmd = await createOpencodeAdapter({ base_url: "http://10.0.0.1:1/v1", model: "m" }).command(ctx);
  assert.equal(cmd.container_native, true);
  const spec = toContainerExec(cmd, ctx, { workdir: "/workspace", home: "/home/agent", command: "ignored-for-native" });
  assert.deepEqual(spec.argv.slice(0, 6), ["/bin/sh", "-c", 'f="$1"; shift; exec "$@" < "$f"', "sh", "/home/agent/prompt-run_1.txt", "opencode"]);
  assert.equal(spec.env!.XDG_CONFIG_HOME, "/home/agent/.config");
  assert.equal(spec.env!.HOME, "/home/agent");
  assert.equal(readFileSync(path.join(home, "prompt-run_1.txt"), "utf8"), "hi there");
  const withCmd = await createOpencodeAdapter({ base_url: "http://10.0.0.1:1/v1", model: "m", container_command: "/opt/oc/opencode" }).command(ctx);
  assert.equal(withCmd.argv[5], "/opt/oc/opencode");
});

test("provideRunHome for a project container: a home without files is created by the agent's own exec; one with files is copied first", async (t) => {
  const home = tmp(t);
  mkdirSync(path.join(home, "tmp"));
  const execs: string[][] = [];
  const handle = {
    id: "c0ffee000000",
    execCollect: async (spec: { argv: string[] }) => {
      execs.push(spec.argv);
      return { exitCode: 0, stdout: "", stderr: "" };
    },
  } as unknown as ContainerHandle;
  const c = { handle, home: "/home/agent/runs/run_1", homeFrom: "copy" as const, user: "1000:1000" };
  const spec = { argv: ["sh", "-c", "echo hi"], env: { HOME: "/home/agent/runs/run_1" }, cwd: "/workspace" };
  const adjusted = (await provideRunHome(c, home, false))(spec);
  assert.equal(execs.length, 0, "no separate copy exec for an empty home");
  assert.deepEqual(adjusted.argv, ["/bin/sh", "-c", 'mkdir -p -m 700 "$HOME" && exec "$@"', "sh", "sh", "-c", "echo hi"]);
  assert.deepEqual([adjusted.env, adjusted.cwd], [spec.env, spec.cwd]);
  writeFileSync(path.join(home, "config.json"), "{}");
  const same = (await provideRunHome(c, home, false))(spec);
  assert.equal(execs.length, 1, "a home with a file is copied in");
  assert.equal(same, spec);
});
