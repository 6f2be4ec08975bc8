// OpenRunner's in-container launcher (docs/architecture.md#containers, "Launcher").
//
// Runs as the main process of pooled and project containers (under tini, as the container's
// unprivileged user) and starts a run's process when the server asks, instead of the engine's
// `exec` (about 120 ms per start). The server reaches it over a unix socket in a directory
// bind-mounted from the host; one connection per request.
//
//   node openrunner-launcher.mjs /run/openrunner/s
//
// Frames, both ways: 1 byte type, 4 bytes big-endian length, payload (at most 1 MiB).
//   1 control (JSON), 2 stdin (server -> launcher), 3 stdout, 4 stderr (launcher -> server).
// A connection's first control frame is its request:
//   {op:"ping"}                          -> {ok:true, pid, uid, gid, version, pings} (pings: how many it served, this one included)
//   {op:"oom"}                           -> {ok:true, oom_kill: N | null} (memory cgroup, v2 then v1)
//   {op:"kill", marker, signal}          -> {ok:true, n} (every process carrying OPENRUNNER_EXEC_ID=marker)
//   {op:"spawn", argv, env, cwd, stdin, marker}
//       -> {ev:"spawned", pid} | {ev:"error", code, message}, stdout/stderr frames,
//          {ev:"exit", code} when the process exits, {ev:"done", code} once its pipes closed too.
//       On that connection the server may send stdin frames, {op:"stdin_end"} and
//       {op:"signal", signal} (the process group and every process with the marker).
//       The connection closing before "done" SIGKILLs all of them: nothing outlives its caller.
// Exit codes follow the shell (128+n after signal n), as the engine reports an exec's.
import { spawn } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";

const VERSION = 1;
const MAX_FRAME = 1024 * 1024;
const T = { ctrl: 1, stdin: 2, stdout: 3, stderr: 4 };
const MARKER_ENV = "OPENRUNNER_EXEC_ID";
const SIGNALS = new Set(["TERM", "KILL", "INT", "HUP"]);
/** The run's processes are preferred OOM victims over the launcher (raising one's own score needs no privilege). */
const CHILD_OOM_SCORE_ADJ = "500";

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write("usage: openrunner-launcher.mjs SOCKET\n");
  process.exit(2);
}

function frame(type, payload) {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Calls onFrame(type, payload) for each complete frame of a byte stream; false on a malformed one. */
function frameReader(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (len > MAX_FRAME) return false;
      if (buf.length < 5 + len) break;
      const type = buf.readUInt8(0);
      const payload = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      onFrame(type, payload);
    }
    return true;
  };
}

function pidsWithMarker(marker) {
  const needle = Buffer.from(`${MARKER_ENV}=${marker}\0`);
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
    let env;
    try {
      env = readFileSync(`/proc/${name}/environ`);
    } catch {
      continue;
    }
    const at = env.indexOf(needle);
    if (at === 0 || (at > 0 && env[at - 1] === 0)) out.push(Number(name));
  }
  return out;
}

/** Signals the process group `pgid` (when given) and every process carrying the marker; how many were signalled. */
function killTree(marker, signal, pgid) {
  const sig = `SIG${signal}`;
  const pids = new Set(pidsWithMarker(marker));
  let n = 0;
  if (pgid) {
    try {
      process.kill(-pgid, sig);
      if (!pids.has(pgid)) n++;
    } catch {
      // the group is gone
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
      n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

function oomKills() {
  for (const [file, re] of [
    ["/sys/fs/cgroup/memory.events", /^oom_kill (\d+)$/m],
    ["/sys/fs/cgroup/memory/memory.oom_control", /^oom_kill (\d+)$/m],
  ]) {
    try {
      const m = re.exec(readFileSync(file, "utf8"));
      if (m) return Number(m[1]);
    } catch {
      // not this cgroup version
    }
  }
  return null;
}

const signalNumber = (name) => os.constants.signals[name] ?? 0;

function serveSpawn(sock, req) {
  const send = (type, payload) => {
    if (!sock.destroyed) return sock.write(frame(type, payload));
    return true;
  };
  const ctrl = (msg) => send(T.ctrl, JSON.stringify(msg));
  if (!Array.isArray(req.argv) || req.argv.length === 0 || typeof req.marker !== "string" || !req.marker) {
    ctrl({ ev: "error", code: "EINVAL", message: "spawn needs argv and marker" });
    ctrl({ ev: "done", code: 126 });
    sock.end();
    return undefined;
  }
  const env = { ...process.env, ...(req.env ?? {}), [MARKER_ENV]: req.marker };
  let child;
  try {
    child = spawn(req.argv[0], req.argv.slice(1), { cwd: req.cwd || "/workspace", env, detached: true, stdio: [req.stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  } catch (err) {
    ctrl({ ev: "error", code: err.code ?? "EINVAL", message: err.message });
    ctrl({ ev: "done", code: 126 });
    sock.end();
    return undefined;
  }
  let done = false;
  let failed = false;
  child.on("error", (err) => {
    // Not started (ENOENT: no such program or cwd; EACCES): the shell's 127/126.
    if (child.pid !== undefined && err.code !== "ENOENT" && err.code !== "EACCES") return;
    failed = true;
    ctrl({ ev: "error", code: err.code ?? "EINVAL", message: `${err.message}${req.cwd ? ` (cwd ${req.cwd})` : ""}` });
  });
  if (child.pid !== undefined) {
    try {
      writeFileSync(`/proc/${child.pid}/oom_score_adj`, CHILD_OOM_SCORE_ADJ);
    } catch {
      // gone already, or not allowed here: the launcher just is not preferred
    }
    ctrl({ ev: "spawned", pid: child.pid });
  }
  // Backpressure: a server that reads slowly stops the process's pipes, never an unbounded buffer.
  for (const [stream, type] of [
    [child.stdout, T.stdout],
    [child.stderr, T.stderr],
  ]) {
    stream.on("data", (b) => {
      if (!send(type, b)) {
        stream.pause();
        sock.once("drain", () => stream.resume());
      }
    });
  }
  const codeOf = (code, signal) => (code ?? 128 + signalNumber(signal));
  child.on("exit", (code, signal) => ctrl({ ev: "exit", code: codeOf(code, signal) }));
  child.on("close", (code, signal) => {
    done = true;
    ctrl({ ev: "done", code: failed ? (code === -2 || code === null ? 127 : code) : codeOf(code, signal) });
    sock.end();
  });
  child.stdin?.on("error", () => {}); // EPIPE after the process closed its stdin
  sock.on("close", () => {
    if (!done) killTree(req.marker, "KILL", child.pid);
  });
  return {
    onCtrl(msg) {
      if (msg.op === "stdin_end") child.stdin?.end();
      else if (msg.op === "signal" && SIGNALS.has(msg.signal)) ctrl({ ev: "signalled", n: killTree(req.marker, msg.signal, done ? undefined : child.pid) });
    },
    onStdin(b) {
      if (child.stdin && !child.stdin.destroyed) child.stdin.write(b);
    },
  };
}

let pings = 0;
const server = net.createServer((sock) => {
  let session;
  const reply = (msg) => sock.end(frame(T.ctrl, JSON.stringify(msg)));
  const read = frameReader((type, payload) => {
    if (type === T.stdin) return session?.onStdin(payload);
    if (type !== T.ctrl) return;
    let msg;
    try {
      msg = JSON.parse(payload.toString("utf8"));
    } catch {
      return sock.destroy();
    }
    if (session) return session.onCtrl(msg);
    switch (msg.op) {
      case "ping":
        return reply({ ok: true, pid: process.pid, uid: process.getuid(), gid: process.getgid(), version: VERSION, pings: ++pings });
      case "oom":
        return reply({ ok: true, oom_kill: oomKills() });
      case "kill":
        if (typeof msg.marker !== "string" || !msg.marker || !SIGNALS.has(msg.signal)) return reply({ ok: false, message: "kill needs marker and signal" });
        return reply({ ok: true, n: killTree(msg.marker, msg.signal) });
      case "spawn":
        session = serveSpawn(sock, msg);
        return;
      default:
        return reply({ ok: false, message: `unknown op ${JSON.stringify(msg.op)}` });
    }
  });
  sock.on("data", (chunk) => {
    if (!read(chunk)) sock.destroy();
  });
  sock.on("error", () => {});
});

// Bound and listening under a temporary name, then renamed into place: the socket's name appearing means it
// accepts connections (the server waits for that name with inotify rather than polling).
const bindPath = `${socketPath}.${process.pid}`;
try {
  unlinkSync(bindPath);
} catch {
  // none left from an earlier start
}
server.listen(bindPath, () => {
  // The host side may run as another uid than the container's user; the host directory above the socket is what guards it.
  chmodSync(bindPath, 0o666);
  renameSync(bindPath, socketPath);
});
process.on("SIGTERM", () => process.exit(143));
