/**
 * The procfs readers of the stall watchdog (`src/run/stall-proc.ts`): the parsers on kernel-format lines,
 * and the readers on this machine's real /proc (a child process of this test, a loopback TCP connection
 * this test opens, a busy child's CPU ticks).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { once } from "node:events";
import { isAlive, listDescendants, openConnections, parseProcStat, parseTcpTable, readProcStat, socketInodes, TCP_ESTABLISHED } from "../../src/run/stall-proc.ts";
import { resolvePeers } from "../../src/run/stall.ts";
import { until } from "../helpers/processes.ts";

test("parseProcStat reads state, ppid and utime+stime after a comm with spaces and parentheses", () => {
  const line = "4242 (my (odd) cmd) S 17 4242 4242 0 -1 4194560 120 0 0 0 33 9 0 0 20 0 1 0 5120 1000 200 18446744073709551615";
  assert.deepEqual(parseProcStat(line), { pid: 4242, comm: "my (odd) cmd", state: "S", ppid: 17, cpuTicks: 42 });
  assert.equal(parseProcStat("garbage"), undefined);
  assert.equal(parseProcStat("12 (x) S"), undefined);
});

test("parseTcpTable decodes IPv4, IPv6 and IPv4-mapped addresses, ports, state and inode", () => {
  const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
  const v4 = "   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 20 4 30 10 -1";
  const listen = "   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0";
  assert.deepEqual(parseTcpTable([header, v4, listen].join("\n")), [
    { localAddress: "127.0.0.1", localPort: 40000, remoteAddress: "127.0.0.1", remotePort: 8080, state: 1, inode: "12345" },
    { localAddress: "0.0.0.0", localPort: 22, remoteAddress: "0.0.0.0", remotePort: 0, state: 10, inode: "999" },
  ]);
  const v6 = "   0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:0050 01 00000000:00000000 00:00000000 00000000  1000        0 777 1";
  const mapped = "   1: 0000000000000000FFFF00000100007F:C351 0000000000000000FFFF00000100007F:01BB 02 00000000:00000000 00:00000000 00000000  1000        0 778 1";
  const rows = parseTcpTable([header, v6, mapped].join("\n"));
  assert.deepEqual(rows.map((r) => [r.localAddress, r.remoteAddress, r.remotePort, r.state, r.inode]), [
    ["::1", "::1", 80, 1, "777"],
    ["127.0.0.1", "127.0.0.1", 443, 2, "778"],
  ]);
});

test("resolvePeers: IP literals, localhost as both loopbacks, default ports by scheme, junk left out", async () => {
  assert.deepEqual(await resolvePeers(["http://127.0.0.1:8080/v1", "https://[::1]/x", "http://localhost", "not a url"]), [
    { address: "127.0.0.1", port: 8080 },
    { address: "::1", port: 443 },
    { address: "127.0.0.1", port: 80 },
    { address: "::1", port: 80 },
  ]);
});

test("readProcStat, isAlive and listDescendants on a real child and grandchild", async (t) => {
  const child: ChildProcess = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" });
  t.after(() => child.kill("SIGKILL"));
  const pid = child.pid!;
  const grandchild = await until(async () => (await listDescendants(pid)).find((p) => p.comm === "sleep"), 10_000, "the sleep grandchild");
  assert.equal(grandchild.ppid, pid);
  const mine = await listDescendants(process.pid);
  assert.ok(mine.some((p) => p.pid === pid) && mine.some((p) => p.pid === grandchild.pid), "descendants of this test reach the grandchild");
  assert.equal((await readProcStat(pid))?.ppid, process.pid);
  assert.equal(await isAlive(pid), true);
  process.kill(grandchild.pid, "SIGKILL");
  await once(child, "exit");
  await until(async () => ((await isAlive(grandchild.pid)) ? undefined : true), 10_000, "the grandchild gone");
  assert.equal(await isAlive(pid), false);
  assert.deepEqual(await listDescendants(pid), []);
});

test("a busy child's CPU ticks grow", async (t) => {
  const busy = spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" });
  t.after(() => busy.kill("SIGKILL"));
  const first = await until(() => readProcStat(busy.pid!), 10_000, "the busy child");
  await until(async () => ((await readProcStat(busy.pid!))!.cpuTicks > first.cpuTicks ? true : undefined), 20_000, "CPU ticks growing");
});

test("socketInodes and openConnections find this process's loopback connection to a given peer only", async (t) => {
  const server = net.createServer((sock) => sock.on("error", () => {}));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const sock = net.connect(port, "127.0.0.1");
  await once(sock, "connect");
  t.after(() => {
    sock.destroy();
    server.close();
  });
  assert.ok((await socketInodes(process.pid)).size > 0);
  const found = await openConnections([process.pid], [{ address: "127.0.0.1", port }]);
  assert.equal(found.length, 1, "exactly the client side (the accepted side has the server's port as local port)");
  assert.equal(found[0]!.state, TCP_ESTABLISHED);
  assert.equal(found[0]!.localPort, sock.localPort);
  assert.deepEqual(await openConnections([process.pid], [{ address: "127.0.0.1", port: port === 1 ? 2 : 1 }]), []);
  const any = await openConnections([process.pid], []);
  assert.ok(any.some((e) => e.remotePort === port), "with no peers given, any established connection counts");
  assert.deepEqual(await openConnections([], [{ address: "127.0.0.1", port }]), []);
});
