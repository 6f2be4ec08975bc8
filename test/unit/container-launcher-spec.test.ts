/**
 * The pure parts of the launcher and the desktop: the engine's create request of a container with
 * the launcher (mounts, main process) and of a desktop container (environment, /dev/shm, the init's
 * mount, refused without a launcher); the desktop image's package list and mirror discovery; waiting
 * for the desktop's report (written as the container does: to a temporary name, then renamed).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { waitDesktopReady, type DesktopStatus } from "../../src/container/desktop.ts";
import { mirrorFromSources, parsePackageList } from "../../src/container/desktop-image.ts";
import { createOptions } from "../../src/container/spec.ts";
import type { ContainerSpec } from "../../src/container/types.ts";

const base: ContainerSpec = {
  image: "img",
  labels: { "openrunner.instance": "i1" },
  workspace: "/w",
  user: "1000:1000",
  limits: { memoryBytes: 64 * 1024 * 1024, nanoCpus: 1e9, pidsLimit: 64 },
};

test("a container with the launcher mounts its socket directory and program and runs it as the main process, with a fallback", () => {
  const o = createOptions({ ...base, launcher: { socketDir: "/data/ws/.launch/c1", script: "/repo/docker/launcher/openrunner-launcher.mjs" } });
  assert.deepEqual(o.HostConfig.Mounts.slice(1), [
    { Type: "bind", Source: "/data/ws/.launch/c1", Target: "/run/openrunner", ReadOnly: false },
    { Type: "bind", Source: "/repo/docker/launcher/openrunner-launcher.mjs", Target: "/opt/openrunner/launcher.mjs", ReadOnly: true },
  ]);
  assert.equal(o.Cmd[0], "/bin/sh");
  assert.match(o.Cmd[2]!, /^node .*\/opt\/openrunner\/launcher\.mjs \/run\/openrunner\/s \|\| \{ : > \/run\/openrunner\/none; exec sleep infinity; \}$/);
  assert.equal(o.HostConfig.Init, true, "tini stays PID 1");
  assert.equal(o.HostConfig.NetworkMode, "none", "the socket needs no network");
  assert.throws(() => createOptions({ ...base, cmd: ["x"], launcher: { socketDir: "/d", script: "/s" } }), /cmd/);
  assert.throws(() => createOptions({ ...base, launcher: { socketDir: "rel", script: "/s" } }), /absolute/);
  assert.deepEqual(createOptions(base).Cmd, ["sleep", "infinity"], "without a launcher nothing changes");
});

test("a desktop container starts the desktop next to the launcher, with DISPLAY and the input-method variables, and a larger /dev/shm", () => {
  const o = createOptions({ ...base, env: { EXTRA: "1" }, launcher: { socketDir: "/d", script: "/s" }, desktop: { init: "/repo/docker/desktop/desktop-init.mjs" } });
  assert.match(o.Cmd[2]!, /^node \/opt\/openrunner\/desktop-init\.mjs & node /);
  for (const v of ["DISPLAY=:1", "GTK_IM_MODULE=ibus", "XMODIFIERS=@im=ibus", "PULSE_SERVER=unix:/tmp/runtime-agent/pulse/native", "EXTRA=1"]) assert.ok(o.Env.includes(v), v);
  assert.deepEqual(o.HostConfig.Mounts.at(-1), { Type: "bind", Source: "/repo/docker/desktop/desktop-init.mjs", Target: "/opt/openrunner/desktop-init.mjs", ReadOnly: true });
  assert.equal(o.HostConfig.ShmSize, 256 * 1024 * 1024);
  assert.equal(o.HostConfig.ReadonlyRootfs, true);
  assert.throws(() => createOptions({ ...base, desktop: { init: "/x" } }), /launcher/, "the desktop reports through the launcher's directory");
});

test("the package list and the apt mirror", () => {
  assert.deepEqual(parsePackageList("# c\nxvfb\n\n  chromium  # browser\n"), ["xvfb", "chromium"]);
  const deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
  assert.equal(mirrorFromSources(["", deb822]), "http://deb.debian.org/debian");
  assert.equal(mirrorFromSources(["deb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n"]), "http://mirror.example/debian");
  assert.equal(mirrorFromSources(["Types: deb-src\nURIs: http://x/debian\n"]), undefined);
});

test("waiting for the desktop follows its report: ready once every service is, a failure names the service", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "orl-desk-"));
  try {
    const report = (services: Partial<DesktopStatus["services"]>, errors: Record<string, string> = {}) => {
      const st = { display: ":1", size: "1280x800", ports: { novnc: 6080, audio: 6081 }, services: { xvfb: "ready", wm: "ready", vnc: "starting", novnc: "starting", audio: "starting", ime: "starting", ...services }, errors, updated_at: new Date().toISOString() };
      writeFileSync(path.join(dir, "desktop.json.tmp"), JSON.stringify(st));
      renameSync(path.join(dir, "desktop.json.tmp"), path.join(dir, "desktop.json"));
    };
    report({});
    const waiting = waitDesktopReady(dir, 10_000);
    let settled = false;
    void waiting.then(() => (settled = true), () => (settled = true));
    report({ vnc: "ready", novnc: "ready" });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, "not ready while services are starting");
    report({ vnc: "ready", novnc: "ready", audio: "ready", ime: "ready" });
    assert.equal((await waiting).services.ime, "ready");

    report({ vnc: "failed" }, { vnc: "x11vnc exited (1): cannot open display" });
    await assert.rejects(waitDesktopReady(dir, 10_000), /vnc failed \(x11vnc exited \(1\): cannot open display\)/);
    rmSync(path.join(dir, "desktop.json"));
    await assert.rejects(waitDesktopReady(dir, 100), /did not report/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
