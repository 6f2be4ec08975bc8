// The desktop of a desktop container (docs/architecture.md#desktop), started by the container's main
// process next to the launcher, as the container's unprivileged user:
//
//   Xvfb :1 (ready: it writes its display number to -displayfd), openbox, x11vnc on 127.0.0.1:5900
//   (ready: it prints PORT=5900), websockify + noVNC on :6080 (ready: "Listen on"), a D-Bus session and
//   ibus with XIM (ready: the bus name org.freedesktop.IBus appears, `gdbus wait`), PulseAudio with a
//   null sink (ready: its native socket appears) and an HTTP audio stream on :6081 (`GET /stream.wav`,
//   the sink's monitor as 16-bit PCM WAV, ready: listening).
//
// Each service's state ("starting", "ready", "failed") is written atomically to
// /run/openrunner/desktop.json (the bind-mounted directory the server watches), so readiness is
// reported, never slept for.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync, watch, writeFileSync, existsSync } from "node:fs";
import http from "node:http";
import path from "node:path";

const DISPLAY = ":1";
const STATUS = "/run/openrunner/desktop.json";
const RUNTIME = process.env.XDG_RUNTIME_DIR || "/tmp/runtime-agent";
const PULSE_SOCKET = path.join(RUNTIME, "pulse", "native");
const NOVNC_PORT = 6080;
const AUDIO_PORT = 6081;
const SIZE = process.env.OPENRUNNER_DESKTOP_SIZE || "1280x800";

// The desktop's own secret: the VNC password (VNC uses 8 characters) and the audio stream's key. Other containers on the
// run's network reach ports 6080/6081 directly, not through the authenticated proxy; without the secret they get
// nothing. It is published in the status file (in the launcher directory, which only this container and the server see)
// and put into the links the run's owner gets from GET /api/runs/:id/desktop.
const SECRET = randomBytes(6).toString("base64url");
const state = { secret: SECRET, display: DISPLAY, size: SIZE, ports: { novnc: NOVNC_PORT, audio: AUDIO_PORT }, services: { xvfb: "starting", wm: "starting", vnc: "starting", novnc: "starting", audio: "starting", ime: "starting" }, errors: {} };
function publish() {
  const tmp = `${STATUS}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ ...state, updated_at: new Date().toISOString() }));
  renameSync(tmp, STATUS);
}
function set(service, value, error) {
  if (state.services[service] === "failed") return;
  state.services[service] = value;
  if (error) state.errors[service] = String(error).slice(0, 500);
  publish();
}

mkdirSync(RUNTIME, { recursive: true, mode: 0o700 });
const env = { ...process.env, DISPLAY, XDG_RUNTIME_DIR: RUNTIME, PULSE_SERVER: `unix:${PULSE_SOCKET}` };

/** Spawns a service; `onLine` sees its output lines; an exit marks it failed. */
function service(name, cmd, args, { onLine, extraEnv, stdio } = {}) {
  const child = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: stdio ?? ["ignore", "pipe", "pipe"] });
  let tail = "";
  const read = (s) => {
    let buf = "";
    s?.setEncoding("utf8").on("data", (d) => {
      tail = (tail + d).slice(-500);
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine?.(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  };
  read(child.stdout);
  read(child.stderr);
  child.on("error", (err) => set(name, "failed", err.message));
  child.on("exit", (code, signal) => set(name, "failed", `${cmd} exited (${code ?? signal}): ${tail}`));
  return child;
}

publish();

// X server first: everything else draws on it.
const xvfb = service("xvfb", "Xvfb", [DISPLAY, "-screen", "0", `${SIZE}x24`, "-nolisten", "tcp", "-displayfd", "3"], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
await new Promise((resolve) => {
  xvfb.stdio[3].setEncoding("utf8").on("data", (d) => {
    if (/\d/.test(d)) resolve();
  });
  xvfb.on("exit", resolve);
});
if (state.services.xvfb !== "failed") set("xvfb", "ready");

service("wm", "openbox", ["--sm-disable"]);
// openbox has no readiness signal of its own; it is up once it runs on a ready display.
set("wm", "ready");

service("vnc", "x11vnc", ["-display", DISPLAY, "-rfbport", "5900", "-localhost", "-forever", "-shared", "-passwd", SECRET, "-noxdamage", "-quiet"], {
  onLine: (l) => {
    if (/^PORT=5900/.test(l)) set("vnc", "ready");
  },
});
service("novnc", "websockify", ["--web", "/usr/share/novnc", String(NOVNC_PORT), "127.0.0.1:5900"], {
  onLine: (l) => {
    if (/Listen on/i.test(l)) set("novnc", "ready");
  },
});

// D-Bus session, then ibus on it (ready when its bus name is owned).
let busUp = false;
service("ime", "dbus-daemon", ["--session", "--nofork", "--nopidfile", `--address=unix:path=${RUNTIME}/bus`, "--print-address=1"], {
  onLine: (l) => {
    // It prints its address once it accepts connections.
    if (!l.startsWith("unix:") || busUp) return;
    busUp = true;
    env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${RUNTIME}/bus`;
    // A fixed address (IBUS_ADDRESS in the container's environment): clients find it whatever their HOME (a project
    // run's HOME is not the daemon's, where ibus would otherwise publish its address).
    service("ime", "ibus-daemon", ["--xim", "--replace", "--panel=disable", `--address=unix:path=${RUNTIME}/ibus`]);
    const w = spawn("gdbus", ["wait", "--session", "--timeout", "60", "org.freedesktop.IBus"], { env, stdio: "ignore" });
    w.on("exit", (code) => (code === 0 ? set("ime", "ready") : set("ime", "failed", `org.freedesktop.IBus did not appear (gdbus wait ${code})`)));
  },
});

// PulseAudio with a null sink; ready when its socket appears.
mkdirSync(path.dirname(PULSE_SOCKET), { recursive: true, mode: 0o700 });
const pulseWatch = watch(path.dirname(PULSE_SOCKET), (_e, name) => {
  if (name === "native" && existsSync(PULSE_SOCKET)) audioReady();
});
service("audio", "pulseaudio", ["--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no", "--load=module-null-sink sink_name=desktop", `--load=module-native-protocol-unix socket=${PULSE_SOCKET} auth-anonymous=1`, "--load=module-always-sink"]);
let audioUp = 0;
function audioReady() {
  // Both the sound server and the HTTP stream must be up.
  if (++audioUp === 2) {
    pulseWatch.close();
    set("audio", "ready");
  }
}
if (existsSync(PULSE_SOCKET)) audioReady();

/** A WAV header for an endless 16-bit stereo stream at `rate`. */
function wavHeader(rate) {
  const h = Buffer.alloc(44);
  h.write("RIFF", 0);
  h.writeUInt32LE(0xffffffff, 4);
  h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(2, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 4, 28);
  h.writeUInt16LE(4, 32);
  h.writeUInt16LE(16, 34);
  h.write("data", 36);
  h.writeUInt32LE(0xffffffff, 40);
  return h;
}
http
  .createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://desktop");
    if (u.pathname !== "/stream.wav" && u.pathname !== "/") {
      res.writeHead(404).end();
      return;
    }
    if (u.searchParams.get("key") !== SECRET) {
      res.writeHead(403).end();
      return;
    }
    if (u.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(`<audio controls autoplay src="stream.wav?key=${SECRET}"></audio>`);
      return;
    }
    const rec = spawn("parec", ["-d", "desktop.monitor", "--format=s16le", "--rate=44100", "--channels=2", "--raw"], { env, stdio: ["ignore", "pipe", "ignore"] });
    res.writeHead(200, { "content-type": "audio/wav", "cache-control": "no-store" });
    res.write(wavHeader(44100));
    rec.stdout.pipe(res);
    const stop = () => rec.kill("SIGKILL");
    res.on("close", stop);
    rec.on("exit", () => res.end());
  })
  .listen(AUDIO_PORT, "0.0.0.0", audioReady);

process.on("SIGTERM", () => process.exit(0));
