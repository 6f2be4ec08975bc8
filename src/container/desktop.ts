/**
 * The desktop of a run's container (docs/architecture.md#desktop, `metadata.desktop: true`): the
 * desktop image's services (`docker/desktop/desktop-init.mjs`: Xvfb on `:1`, openbox, x11vnc on the
 * container's loopback, noVNC + websockify on {@link NOVNC_PORT}, PulseAudio with an HTTP stream on
 * {@link AUDIO_PORT}, ibus) run as the container's user next to the launcher, and report each
 * service's state in `desktop.json` of the launcher's bind-mounted directory. This module waits for
 * that report (inotify, not polling), reads it, and takes screenshots (scrot on the display, through
 * the launcher or exec).
 */
import { watch } from "node:fs";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ContainerError } from "./errors.ts";
import type { ContainerHandle } from "./types.ts";

/** The desktop's init program on the host (mounted read-only into desktop containers, like the launcher). */
export const DESKTOP_INIT = fileURLToPath(new URL("../../docker/desktop/desktop-init.mjs", import.meta.url));
/** Where it is mounted inside the container. */
export const DESKTOP_INIT_IN_IMAGE = "/opt/openrunner/desktop-init.mjs";
/** The X display inside a desktop container. */
export const DESKTOP_DISPLAY = ":1";
/** noVNC (websockify, serving /usr/share/novnc) inside the container. */
export const NOVNC_PORT = 6080;
/** The HTTP audio stream (`/stream.wav`) inside the container. */
export const AUDIO_PORT = 6081;
/** The status file's name in the launcher directory. */
export const DESKTOP_STATUS_FILE = "desktop.json";
const RUNTIME = "/tmp/runtime-agent";

/** Environment of a desktop container (so agents and their GUI programs find the display, sound and input method). */
export const DESKTOP_ENV: Readonly<Record<string, string>> = {
  DISPLAY: DESKTOP_DISPLAY,
  XDG_RUNTIME_DIR: RUNTIME,
  PULSE_SERVER: `unix:${RUNTIME}/pulse/native`,
  DBUS_SESSION_BUS_ADDRESS: `unix:path=${RUNTIME}/bus`,
  IBUS_ADDRESS: `unix:path=${RUNTIME}/ibus`,
  GTK_IM_MODULE: "ibus",
  QT_IM_MODULE: "ibus",
  XMODIFIERS: "@im=ibus",
};

/** A service's state. */
export type DesktopServiceState = "starting" | "ready" | "failed";

/** What a desktop container reports about itself. */
export interface DesktopStatus {
  /**
   * The desktop's own secret, made by the container at start: the VNC password and the audio stream's `key`. Ports
   * 6080/6081 are reachable from other containers on the run's network, so they answer nothing without it.
   */
  secret?: string;
  display: string;
  /** `WIDTHxHEIGHT`. */
  size: string;
  ports: { novnc: number; audio: number };
  services: { xvfb: DesktopServiceState; wm: DesktopServiceState; vnc: DesktopServiceState; novnc: DesktopServiceState; audio: DesktopServiceState; ime: DesktopServiceState };
  /** Why a failed service failed (its output's tail). */
  errors: Record<string, string>;
  updated_at: string;
}

/** The desktop's status as last written, or undefined when there is none (not a desktop container, not started yet). */
export async function readDesktopStatus(socketDir: string): Promise<DesktopStatus | undefined> {
  // The container writes this folder: no symlink followed, no FIFO or device waited on, at most 64 KiB read.
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(path.join(socketDir, DESKTOP_STATUS_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile() || st.size > MAX_STATUS_BYTES) return undefined;
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return JSON.parse(buf.subarray(0, bytesRead).toString("utf8")) as DesktopStatus;
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** Most bytes of a desktop status file read. */
const MAX_STATUS_BYTES = 64 * 1024;

/** Every service ready, or one failed (no point waiting for the others). */
const settled = (st: DesktopStatus | undefined) => st !== undefined && (Object.values(st.services).every((v) => v === "ready") || Object.values(st.services).includes("failed"));

/**
 * Waits until every service of the desktop is ready (or one failed), each change seen through inotify on `socketDir`.
 * @returns the status once ready
 * @throws ContainerError `container_failed` naming the failed services (with their output), or when nothing is reported
 *   within `timeoutMs` (default 60000)
 */
export async function waitDesktopReady(socketDir: string, timeoutMs = 60_000): Promise<DesktopStatus> {
  const st = await new Promise<DesktopStatus | undefined>((resolve) => {
    let done = false;
    const finish = (v: DesktopStatus | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      w.close();
      resolve(v);
    };
    const check = () => void readDesktopStatus(socketDir).then((s) => settled(s) && finish(s));
    const timer = setTimeout(() => void readDesktopStatus(socketDir).then(finish), timeoutMs);
    const w = watch(socketDir, (_e, name) => {
      if (name === DESKTOP_STATUS_FILE) check();
    });
    w.on("error", () => finish(undefined));
    check();
  });
  if (!st) throw new ContainerError("container_failed", `the desktop did not report its state within ${timeoutMs} ms`);
  const failed = Object.entries(st.services).filter(([, v]) => v !== "ready");
  // A failure is named first; services still starting then are listed as such.
  failed.sort(([, a], [, b]) => (a === "failed" ? 0 : 1) - (b === "failed" ? 0 : 1));
  if (failed.length) throw new ContainerError("container_failed", `desktop services not ready: ${failed.map(([k, v]) => `${k} ${v}${st.errors[k] ? ` (${st.errors[k]})` : ""}`).join("; ")}`);
  return st;
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A PNG of the whole display, taken with scrot inside the container as its user.
 * @throws ContainerError `container_failed` when scrot fails or writes no PNG; the exec's own errors
 */
export async function takeScreenshot(handle: ContainerHandle, maxBytes = 32 * 1024 * 1024): Promise<Buffer> {
  const x = await handle.exec({
    argv: ["/bin/sh", "-c", 'f=$(mktemp /tmp/openrunner-shot-XXXXXX.png) && scrot -o -z "$f" && cat "$f"; s=$?; rm -f "$f"; exit $s'],
    env: { DISPLAY: DESKTOP_DISPLAY },
    cwd: "/",
  });
  const parts: Buffer[] = [];
  let n = 0;
  let err = "";
  x.stdout.on("data", (b: Buffer) => {
    n += b.length;
    if (n <= maxBytes) parts.push(b);
  });
  x.stderr.on("data", (b: Buffer) => (err = (err + b.toString("utf8")).slice(-500)));
  const exit = await x.exit;
  if (exit.error) throw exit.error;
  const png = Buffer.concat(parts);
  if (exit.exitCode !== 0 || n > maxBytes || !png.subarray(0, 8).equals(PNG_MAGIC)) throw new ContainerError("container_failed", `the screenshot failed (exit ${exit.exitCode}${n > maxBytes ? `, over ${maxBytes} bytes` : ""}): ${err.trim()}`);
  return png;
}
