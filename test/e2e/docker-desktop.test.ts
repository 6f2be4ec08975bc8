/**
 * A desktop in the run's container end to end (issue 15): the real server, the real engine and the
 * desktop image (`openrunner image build --desktop`, built here when missing or out of date: its
 * content-hash label makes that a no-op once built, so the files that need it share one build).
 *
 * - A `shell` run with `metadata.desktop: true` sees DISPLAY and starts a white xterm on it; the
 *   screenshot endpoint returns a PNG whose pixels show the window (white inside, black desktop around).
 * - `GET /api/runs/:id/desktop` reports every service ready (vnc, novnc, audio, ime) and gives the
 *   noVNC preview link; a real browser (Debian's chromium via playwright-core) opens it through the
 *   port proxy and noVNC connects over the proxied WebSocket: its canvas has the desktop's size. The
 *   audio link streams WAV through the proxy.
 * - Without the owner's credentials the proxied VNC page and WebSocket answer 401; another user gets 404.
 * - After the run the container is gone and the desktop answers 409 `desktop_unavailable`.
 * - A project run with a desktop: the project's container is a desktop container and stays for the next run.
 *
 * Screenshots are kept in `$OPENRUNNER_SCREENSHOT_DIR` (default the OS temp folder): desktop-xterm.png
 * (from the endpoint) and desktop-novnc.png (the browser's view of noVNC).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { inflateSync } from "node:zlib";
import { buildDesktopImage, DESKTOP_IMAGE_TAG } from "../../src/container/desktop-image.ts";
import { LABEL } from "../../src/container/labels.ts";
import type { ContainerClient } from "../../src/container/types.ts";
import { launchBrowser } from "../browser/lib.ts";
import { connectDocker } from "../helpers/docker.ts";
import { allEvents, createRun, describeEvents, eventsUntil, writeConfig } from "../helpers/events.ts";
import { spawnServer, type TestServer } from "../helpers/spawn-server.ts";

const SKIP = process.env.OPENRUNNER_SKIP_DOCKER === "1";
const SHOTS = process.env.OPENRUNNER_SCREENSHOT_DIR ?? os.tmpdir();
const T = { timeout: 180_000 };
if (SKIP) console.warn("# docker desktop e2e tests SKIPPED: OPENRUNNER_SKIP_DOCKER=1");

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what scrot writes) into width, height and RGB(A) rows. */
function decodePng(png: Buffer): { width: number; height: number; pixel(x: number, y: number): [number, number, number] } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG signature");
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString("latin1", off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, "8 bits per channel");
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      assert.ok(channels, `colour type ${data[9]}`);
      assert.equal(data[12], 0, "not interlaced");
    } else if (type === "IDAT") idat.push(data);
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[y * stride + i - channels]! : 0;
      const b = y > 0 ? out[(y - 1) * stride + i]! : 0;
      const c = y > 0 && i >= channels ? out[(y - 1) * stride + i - channels]! : 0;
      const p = a + b - c;
      const pred = filter === 0 ? 0 : filter === 1 ? a : filter === 2 ? b : filter === 3 ? (a + b) >> 1 : Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      out[y * stride + i] = (line[i]! + pred) & 0xff;
    }
  }
  return { width, height, pixel: (x, y) => [out[y * stride + x * channels]!, out[y * stride + x * channels + 1]!, out[y * stride + x * channels + 2]!] };
}

describe("a desktop in the run's container", { skip: SKIP ? "OPENRUNNER_SKIP_DOCKER=1" : false }, () => {
  let client: ContainerClient;
  let s: TestServer;
  let token: string;
  let instance: string;

  before(async () => {
    client = await connectDocker();
    await buildDesktopImage({ client });
    s = await spawnServer({ env: { OPENRUNNER_CONFIG: writeConfig({ docker: { network: "bridge" } }), ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) } });
    token = await s.login();
    instance = readFileSync(path.join(s.dataDir, "instance-id"), "utf8").trim();
  }, { timeout: 900_000 });

  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
    if (client && instance) for (const c of await client.list({ [LABEL.instance]: instance }).catch(() => [])) await client.get(c.id).remove();
  });

  test("an xterm on DISPLAY shows in the screenshot; noVNC opens through the proxy in a real browser; credentials are required; the desktop goes with the run", T, async () => {
    const xterm = "xterm -fa Monospace -fs 14 -bg white -fg black -geometry 60x15+100+100 -e sh -c 'echo desktop-test; sleep 300'";
    const id = await createRun(s, token, `echo "display=$DISPLAY"; ${xterm} & xdotool search --sync --onlyvisible --class xterm >/dev/null && echo window-up; sleep 300`, { agent_type: "shell", isolation: "docker", desktop: true, timeout_secs: 170 });
    const seen = await eventsUntil(s, token, id, (e) => e.type === "log" && e.data.text === "window-up", 120_000);
    assert.ok(seen.some((e) => e.type === "log" && e.data.text === "display=:1"), `agents see DISPLAY\n${describeEvents(seen)}`);
    const created = seen.find((e) => e.type === "container.created")!;
    assert.equal((await client.get(created.data.container_id).inspect()).image, DESKTOP_IMAGE_TAG);

    // The screenshot shows the white xterm window at +100+100 on the black desktop.
    const shot = await s.api(`/api/runs/${id}/desktop/screenshot`, { method: "POST", token });
    assert.equal(shot.status, 200, await shot.clone().text());
    assert.equal(shot.headers.get("content-type"), "image/png");
    const png = Buffer.from(await shot.arrayBuffer());
    writeFileSync(path.join(SHOTS, "desktop-xterm.png"), png);
    const img = decodePng(png);
    assert.deepEqual([img.width, img.height], [1280, 800]);
    assert.deepEqual(img.pixel(20, 780), [0, 0, 0], "the desktop around the window is black");
    const [r, g, b] = img.pixel(200, 250);
    assert.ok(r > 240 && g > 240 && b > 240, `inside the xterm the background is white: ${[r, g, b]}`);

    // Readiness and the noVNC link.
    const dres = await s.api(`/api/runs/${id}/desktop`, { token });
    const desk = (await dres.json()) as Record<string, any>;
    assert.equal(dres.status, 200, JSON.stringify(desk));
    assert.equal(desk.ready, true, JSON.stringify(desk));
    for (const k of ["vnc", "novnc", "audio", "ime"]) assert.equal(desk.services[k], "ready", k);
    assert.match(desk.url, new RegExp(`/api/runs/${id}/proxy/6080/vnc\\.html\\?`));

    // Without credentials nothing of the desktop answers; another user's request is 404.
    const bare = new URL(desk.url);
    bare.searchParams.delete("openrunner_preview");
    assert.equal((await fetch(bare)).status, 401, "the noVNC page needs the owner's credentials");
    const wsStatus = await new Promise<number>((resolve) => {
      const req = http.request(`${s.url}/api/runs/${id}/proxy/6080/websockify`, { headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" } });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("upgrade", (res, sock) => {
        sock.destroy();
        resolve(res.statusCode ?? 101);
      });
      req.on("error", () => resolve(-1));
      req.end();
    });
    assert.equal(wsStatus, 401, "the VNC WebSocket needs the owner's credentials");
    assert.equal((await s.api("/api/users", { method: "POST", token, json: { username: "eve", password: "eve-password-123" } })).status, 201);
    const eve = await s.login("eve", "eve-password-123");
    assert.equal((await s.api(`/api/runs/${id}/desktop`, { token: eve })).status, 404);

    // The audio stream flows through the proxy: a WAV header, then PCM.
    // A preview link is redeemed for a cookie on the proxy path (302), as a browser does.
    const redeem = await fetch(desk.audio_url, { redirect: "manual" });
    assert.equal(redeem.status, 302);
    const cookie = redeem.headers.get("set-cookie")!.split(";")[0]!;
    const audio = await fetch(new URL(redeem.headers.get("location")!, s.url), { headers: { cookie } });
    assert.equal(audio.status, 200);
    assert.equal(audio.headers.get("content-type"), "audio/wav");
    const reader = audio.body!.getReader();
    const first = await reader.read();
    assert.equal(Buffer.from(first.value!).toString("latin1", 0, 4), "RIFF");
    await reader.cancel();
    // Other containers on the run's network reach port 6081 without the proxy: it answers nothing without the desktop's key.
    const keyless = new URL(redeem.headers.get("location")!, s.url);
    assert.ok(keyless.searchParams.has("key"), "the owner's audio link carries the desktop's key");
    keyless.searchParams.delete("key");
    assert.equal((await fetch(keyless, { headers: { cookie } })).status, 403, "the audio stream needs the desktop's key");
    assert.match(desk.url, /[?&]password=/, "the owner's noVNC link carries the VNC password (x11vnc runs with it, not -nopw)");

    // A real browser opens the link (cookie, redirect) and noVNC connects over the proxied WebSocket.
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(desk.url);
      // The canvas has the desktop's size and shows the white xterm where the screenshot has it.
      await page.waitForFunction(() => {
        const c = document.querySelector("canvas");
        if (!c || c.width !== 1280 || c.height !== 800) return false;
        const [r, g, b] = c.getContext("2d")!.getImageData(200, 250, 1, 1).data;
        return r! > 240 && g! > 240 && b! > 240;
      }, undefined, { timeout: 60_000 });
      await page.screenshot({ path: path.join(SHOTS, "desktop-novnc.png") });
      const status = await page.evaluate(() => document.querySelector("#noVNC_status")?.textContent ?? "");
      assert.match(status, /^Connected/, "noVNC's own status: connected over the proxied WebSocket");
    } finally {
      await browser.close();
    }

    // The desktop ends with the run.
    assert.equal((await s.api(`/api/runs/${id}/cancel`, { method: "POST", token })).status, 202);
    const evs = await allEvents(s, token, id, 60_000);
    assert.equal(evs.at(-1)!.type, "run.cancelled", describeEvents(evs));
    assert.deepEqual(await client.list({ [LABEL.runId]: id }), [], "the desktop container is removed");
    const gone = await s.api(`/api/runs/${id}/desktop`, { token });
    assert.equal(gone.status, 409);
    assert.equal(((await gone.json()) as { error: { code: string } }).error.code, "desktop_unavailable");
    const after = await s.api(`/api/runs/${id}/proxy/6080/vnc.html`, { token });
    assert.equal(after.status, 409, "the proxy leads nowhere once the container is gone (proxy_unavailable)");
  });

  test("a project run with a desktop: the project's container is a desktop container, kept for the project's next run", T, async () => {
    // The agent reaches the input method too: it switches ibus to a Cyrillic layout engine.
    const first = await createRun(s, token, 'echo "display=$DISPLAY"; xdotool getdisplaygeometry; ibus engine xkb:ru::rus 2>/dev/null && ibus engine', { agent_type: "shell", project_id: "desk", desktop: true });
    const e1 = await allEvents(s, token, first, 120_000);
    assert.equal(e1.at(-1)!.type, "run.completed", describeEvents(e1));
    const out1 = e1.filter((e) => e.type === "log" && e.data.stream === "stdout").map((e) => e.data.text);
    assert.deepEqual(out1, ["display=:1", "1280 800", "xkb:ru::rus"], describeEvents(e1));
    const cid = e1.find((e) => e.type === "run.started")!.data.container_id as string;
    assert.equal((await client.get(cid).inspect()).image, DESKTOP_IMAGE_TAG);
    // The next run finds the desktop running (its report is read while the run is live).
    const second = await createRun(s, token, "echo again; sleep 60", { agent_type: "shell", project_id: "desk", desktop: true });
    await eventsUntil(s, token, second, (e) => e.type === "log" && e.data.text === "again", 60_000);
    const desk = (await (await s.api(`/api/runs/${second}/desktop`, { token })).json()) as Record<string, any>;
    assert.equal(desk.ready, true, JSON.stringify(desk));
    await s.api(`/api/runs/${second}/cancel`, { method: "POST", token });
    const e2 = await allEvents(s, token, second, 60_000);
    assert.equal(e2.find((e) => e.type === "run.started")!.data.container_id, cid, "the same container");
    // A plain run of the project now asks for another image.
    const plain = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "true" }, metadata: { agent_type: "shell", project_id: "desk" } } });
    const plainId = ((await plain.json()) as { run_id: string }).run_id;
    const e3 = await allEvents(s, token, plainId, 60_000);
    assert.equal(e3.at(-1)!.data.error?.code, "project_image_mismatch", describeEvents(e3));
    assert.equal((await s.api("/api/projects/desk/container", { method: "DELETE", token })).status, 204);
  });

  test("a run without metadata.desktop has no desktop (409); metadata.desktop on a host run is refused (400)", T, async () => {
    const id = await createRun(s, token, "sleep 60", { agent_type: "shell", isolation: "docker" });
    await eventsUntil(s, token, id, (e) => e.type === "run.started");
    const r = await s.api(`/api/runs/${id}/desktop`, { token });
    assert.equal(r.status, 409);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, "desktop_unavailable");
    await s.api(`/api/runs/${id}/cancel`, { method: "POST", token });
    await allEvents(s, token, id, 60_000);
    const host = await s.api("/api/runs", { method: "POST", token, json: { input: { text: "true" }, metadata: { agent_type: "shell", desktop: true } } });
    assert.equal(host.status, 400);
  });
});
