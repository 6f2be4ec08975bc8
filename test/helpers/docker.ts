/**
 * Shared set-up of the tests that need the real Docker engine: reaching it
 * (a clear failure naming how to start one or skip), probing an image in a
 * throw-away container, the bridge gateway address, and a TCP relay that lets
 * containers on the bridge reach a loopback-only server of the test.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createDockerClient } from "../../src/container/client.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";

/** The engine at DOCKER_HOST (or the default socket), pinged. @throws naming scripts/ci-docker.sh and OPENRUNNER_SKIP_DOCKER when it does not answer */
export async function connectDocker(): Promise<ContainerClient> {
  const client = createDockerClient({ dockerHost: process.env.DOCKER_HOST });
  try {
    await client.ping({ timeoutMs: 5000 });
  } catch (err) {
    throw new Error(`Docker engine not reachable (${client.engine}): ${(err as Error).message}. Start one with scripts/ci-docker.sh, or set OPENRUNNER_SKIP_DOCKER=1.`);
  }
  return client;
}

/** Where {@link inProbe} runs: the image, the network, and the instance label (so leftovers are recognisable). */
export interface ProbeOptions {
  image: string;
  network: string;
  instance: string;
}

/** Runs `argv` in a throw-away container; returns its stdout and exit code. */
export async function inProbe(client: ContainerClient, argv: string[], o: ProbeOptions): Promise<{ exitCode: number | null; stdout: string }> {
  const ws = mkdtempSync(path.join(os.tmpdir(), "openrunner-probe-"));
  try {
    await using c = await client.create({
      image: o.image,
      labels: { [LABEL.instance]: o.instance },
      workspace: ws,
      user: "1000:1000",
      limits: { memoryBytes: 256 * 1024 * 1024, nanoCpus: 1_000_000_000, pidsLimit: 64 },
      network: o.network,
    });
    await c.start();
    return await c.execCollect({ argv });
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

/** The default gateway seen from a container on `o.network` (the host's address on the bridge), from /proc/net/route. */
export async function bridgeGateway(client: ContainerClient, o: ProbeOptions): Promise<string> {
  const { stdout } = await inProbe(client, ["cat", "/proc/net/route"], o);
  const row = stdout.split("\n").map((l) => l.trim().split(/\s+/)).find((f) => f[1] === "00000000");
  assert.ok(row?.[2], `no default route in a ${o.network} container:\n${stdout}`);
  // Little-endian hex: "010011AC" is 172.17.0.1.
  const hex = row[2]!;
  return [0, 1, 2, 3].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).reverse().join(".");
}

/** A TCP relay listening on `host` (port 0) to 127.0.0.1:`port`. */
export async function startRelay(host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(port, "127.0.0.1");
    for (const s of [down, up]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        down.destroy();
        up.destroy();
      });
    }
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const { port: relayPort } = server.address() as net.AddressInfo;
  return {
    url: `http://${host}:${relayPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
