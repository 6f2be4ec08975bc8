/**
 * The pure parts of the launcher and the desktop: the engine's create request of a container with
 * the launcher (mounts, main process) and of a desktop container (environment, /dev/shm, the init's
 * mount, refused without a launcher); the desktop image's package list and mirror discovery.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
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
