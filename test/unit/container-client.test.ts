/**
 * The pure parts of the container client: DOCKER_HOST parsing, the create
 * request built from a spec (the lock-down that must never regress), spec
 * validation, and the mapping of dockerode errors to ContainerError codes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createOptions, parseDockerHost } from "../../src/container/client.ts";
import { ContainerError, toContainerError } from "../../src/container/errors.ts";
import { containerLabels } from "../../src/container/labels.ts";
import type { ContainerSpec } from "../../src/container/types.ts";
import { ConfigError, ValidationError } from "../../src/errors.ts";

const MIB = 1024 * 1024;
const base: ContainerSpec = {
  image: "openrunner-agent:latest",
  labels: containerLabels({ instance: "inst1", kind: "run", runId: "run_1", userId: "usr_1" }),
  workspace: "/data/workspaces/run_1",
  user: "1000:1000",
  limits: { memoryBytes: 512 * MIB, nanoCpus: 2_000_000_000, pidsLimit: 256 },
};

test("parseDockerHost: default socket, unix://, tcp://; anything else is a ConfigError naming DOCKER_HOST", () => {
  assert.deepEqual(parseDockerHost(undefined).options, { socketPath: "/var/run/docker.sock" });
  assert.deepEqual(parseDockerHost("").options, { socketPath: "/var/run/docker.sock" });
  assert.deepEqual(parseDockerHost("unix:///run/user/1000/docker.sock").options, { socketPath: "/run/user/1000/docker.sock" });
  assert.deepEqual(parseDockerHost("tcp://127.0.0.1:2375").options, { host: "127.0.0.1", port: 2375, protocol: "http" });
  for (const bad of ["ssh://me@host", "tcp://host:2376", "http://x", "/var/run/docker.sock"]) {
    assert.throws(() => parseDockerHost(bad), (err: unknown) => err instanceof ConfigError && err.setting === "DOCKER_HOST", bad);
  }
});

test("createOptions locks the container down", () => {
  const o = createOptions(base);
  const hc = o.HostConfig!;
  assert.equal(o.User, "1000:1000");
  assert.deepEqual(o.Cmd, ["sleep", "infinity"]);
  assert.equal(o.Labels!["openrunner.instance"], "inst1");
  assert.equal(o.Labels!["openrunner.run-id"], "run_1");
  assert.equal(hc.Privileged, false);
  assert.deepEqual(hc.CapDrop, ["ALL"]);
  assert.deepEqual(hc.SecurityOpt, ["no-new-privileges:true"]);
  assert.equal(hc.NetworkMode, "none");
  assert.equal(hc.ReadonlyRootfs, true);
  assert.equal(hc.Init, true);
  assert.equal(hc.Memory, 512 * MIB);
  assert.equal(hc.MemorySwap, 512 * MIB);
  assert.equal(hc.NanoCpus, 2_000_000_000);
  assert.equal(hc.PidsLimit, 256);
  assert.deepEqual(hc.Mounts, [{ Type: "bind", Source: "/data/workspaces/run_1", Target: "/workspace", ReadOnly: false }]);
  assert.equal(hc.Binds, undefined);
  assert.deepEqual(Object.keys(hc.Tmpfs!).sort(), ["/home/agent", "/tmp"]);
  assert.match(hc.Tmpfs!["/home/agent"]!, /uid=1000,gid=1000/);
  assert.equal(createOptions({ ...base, network: "openrunner-models" }).HostConfig!.NetworkMode, "openrunner-models");
  const ro = createOptions({ ...base, readOnlyMounts: [{ source: "/etc/openrunner/claude", target: "/home/agent/.claude" }] }).HostConfig!.Mounts!;
  assert.deepEqual(ro[1], { Type: "bind", Source: "/etc/openrunner/claude", Target: "/home/agent/.claude", ReadOnly: true });
  const withHome = createOptions({ ...base, homeSource: "/data/homes/run_1" }).HostConfig!;
  assert.deepEqual(withHome.Mounts![1], { Type: "bind", Source: "/data/homes/run_1", Target: "/home/agent", ReadOnly: false });
  assert.deepEqual(Object.keys(withHome.Tmpfs!), ["/tmp"], "a mounted home replaces the tmpfs home");
});

test("specs that would weaken isolation are refused with the field named", () => {
  const bad: Array<[Partial<ContainerSpec>, RegExp]> = [
    [{ user: "0" }, /user/],
    [{ user: "0:0" }, /user/],
    [{ user: "1000:0" }, /user/],
    [{ user: "root" }, /user/],
    [{ user: "agent" }, /user/],
    [{ workspace: "relative/dir" }, /workspace/],
    [{ homeSource: "rel/home" }, /homeSource/],
    [{ network: "host" }, /network/],
    [{ labels: {} }, /labels/],
    [{ limits: { ...base.limits, memoryBytes: 1024 } }, /memoryBytes/],
    [{ limits: { ...base.limits, pidsLimit: 0 } }, /pidsLimit/],
    [{ limits: { ...base.limits, nanoCpus: 0.5 } }, /nanoCpus/],
    [{ readOnlyMounts: [{ source: "/etc", target: "/workspace/etc" }] }, /readOnlyMounts/],
  ];
  for (const [over, field] of bad) {
    assert.throws(() => createOptions({ ...base, ...over }), (err: unknown) => err instanceof ValidationError && field.test(err.message), JSON.stringify(over));
  }
});

test("toContainerError maps engine and socket errors onto the closed set", () => {
  const http = (statusCode: number, message: string) => Object.assign(new Error(`(HTTP code ${statusCode}) - ${message}`), { statusCode, json: { message } });
  const cases: Array<[unknown, Parameters<typeof toContainerError>[1], string, number]> = [
    [Object.assign(new Error("connect ENOENT /var/run/docker.sock"), { code: "ENOENT" }), { op: "ping" }, "engine_unavailable", 503],
    [Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), { op: "create" }, "engine_unavailable", 503],
    [http(404, "No such image: nope:latest"), { op: "create", image: "nope:latest" }, "image_not_found", 503],
    [http(404, "No such container: abc"), { op: "inspect", containerId: "abc" }, "container_not_found", 404],
    [http(409, "Container abc is not running"), { op: "exec", containerId: "abc" }, "container_conflict", 409],
    [http(500, "OCI runtime exec failed: exec failed: unable to start container process"), { op: "exec" }, "exec_failed", 500],
    [http(500, "driver failed"), { op: "start" }, "container_failed", 500],
  ];
  for (const [err, ctx, code, status] of cases) {
    const e = toContainerError(err, ctx);
    assert.ok(e instanceof ContainerError);
    assert.equal(e.code, code, (err as Error).message);
    assert.equal(e.status, status);
    assert.equal(e.cause, err);
  }
  const same = new ContainerError("oom_killed", "x");
  assert.equal(toContainerError(same, { op: "exec" }), same);
  assert.equal(new ContainerError("engine_unavailable", "m").expose, true);
  assert.equal(new ContainerError("container_failed", "m").expose, false);
});
