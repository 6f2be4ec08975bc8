/**
 * Benchmark `web`: the dashboard in Debian's chromium (playwright-core,
 * headless) against the real server, three measures per repetition.
 *
 * 1. First event: N `shell` runs, each started by a `POST /api/runs` made in
 *    the page; the clock starts before the POST. In the same page and the
 *    same run, a bare SSE reader (`fetch` of the events route, reading until
 *    the frame of event 1) and the dashboard (navigated to the run's page the
 *    moment the POST answers) race: "bare" is when event 1 arrives at the
 *    reader, "painted" the first animation frame after the row of event 1 is
 *    in the DOM. The ratio painted / bare of the medians has a target ≤ 1.5.
 * 2. Streaming: a run printing 10 lines every 10 ms (1,000 events/s) for D
 *    seconds, its page open; every `requestAnimationFrame` delta and every
 *    long task (PerformanceObserver) while it streams. Target: no frame over 50 ms.
 * 3. 100,000 events: a finished run of 100,000 log lines opened in the page:
 *    the time until all are folded and shown (the event count reads 100,000),
 *    the longest frame meanwhile, and the longest frame while the virtualized
 *    list is scrolled top, middle, bottom and back.
 */
import type { Page } from "playwright-core";
import { launchBrowser, openPage, signIn } from "../test/browser/lib.ts";
import { ADMIN_PASSWORD } from "../test/helpers/spawn-server.ts";
import { createShellRun, requestJson } from "./lib/http.ts";
import { figure, type BenchResult } from "./lib/result.ts";
import { startBenchServer } from "./lib/server.ts";
import { round, summarize } from "./lib/stats.ts";

export interface WebBenchOptions {
  /** Runs of the first-event measure (30). */
  runs: number;
  /** Seconds of the 1,000 events/s stream (5). */
  streamSecs: number;
  /** Events of the big run (100,000). */
  bigEvents: number;
  repeats: number;
  quick: boolean;
  cpuProfDir?: string;
}

/** In the page: POST a run, then race a bare SSE reader and the dashboard to event 1. Times in ms from before the POST. */
function firstEventInPage(page: Page, command: string): Promise<{ painted: number; bare: number }> {
  return page.evaluate(async (cmd) => {
    const token = sessionStorage.getItem("openrunner.token")!;
    const t0 = performance.now();
    const res = await fetch("/api/runs", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ input: { text: cmd }, metadata: { agent_type: "shell" } }),
    });
    const { run_id } = (await res.json()) as { run_id: string };
    const bare = (async () => {
      const sse = await fetch(`/api/runs/${run_id}/events`, { headers: { accept: "text/event-stream", authorization: `Bearer ${token}` } });
      const reader = sse.body!.getReader();
      const dec = new TextDecoder();
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new Error("stream ended before event 1");
        text += dec.decode(value, { stream: true });
        if (/(^|\n)id: 1\n[\s\S]*?\n\n/.test(text)) break;
      }
      const at = performance.now() - t0;
      void reader.cancel();
      return at;
    })();
    const painted = new Promise<number>((resolve) => {
      const found = () => document.querySelector('[data-ev-id="1"]') !== null;
      const done = () => requestAnimationFrame(() => resolve(performance.now() - t0));
      const mo = new MutationObserver(() => {
        if (found()) {
          mo.disconnect();
          done();
        }
      });
      mo.observe(document.body, { childList: true, subtree: true });
      history.pushState(null, "", `/runs/${run_id}`);
      dispatchEvent(new PopStateEvent("popstate"));
    });
    return { painted: await painted, bare: await bare };
  }, command);
}

/** Back to the runs list (outside any run page), in place. */
async function leaveRunPage(page: Page): Promise<void> {
  await page.evaluate(() => {
    history.pushState(null, "", "/runs");
    dispatchEvent(new PopStateEvent("popstate"));
  });
  await page.getByRole("heading", { name: /^Runs/ }).waitFor();
}

/** Opens a run's page in place and records frame deltas and long tasks until `until` holds in the page; ms. */
function framesWhileOpen(page: Page, runId: string, until: { count?: number; status?: string }): Promise<{ elapsed: number; frames: number[]; longTasks: number[]; slow: string[] }> {
  return page.evaluate(
    async ({ id, count, status }) => {
      const frames: number[] = [];
      const longTasks: number[] = [];
      const slow: string[] = [];
      const po = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) longTasks.push(e.duration);
      });
      po.observe({ type: "longtask", buffered: false });
      const t0 = performance.now();
      history.pushState(null, "", `/runs/${id}`);
      dispatchEvent(new PopStateEvent("popstate"));
      const reached = () => {
        const el = document.querySelector('[data-testid="event-count"]');
        if (count !== undefined && Number(el?.getAttribute("data-count")) < count) return false;
        if (status !== undefined && document.querySelector('[data-testid="run-status"]')?.textContent !== status) return false;
        return true;
      };
      return new Promise<{ elapsed: number; frames: number[]; longTasks: number[]; slow: string[] }>((resolve) => {
        let last = performance.now();
        const tick = (now: number) => {
          frames.push(now - last);
          // Where the slow frames fall: ms since the page opened, the frame, the events shown by then.
          if (now - last > 50) slow.push(`${Math.round(now - t0)}ms:${Math.round(now - last)}ms@${document.querySelector('[data-testid="event-count"]')?.getAttribute("data-count") ?? "-"}`);
          last = now;
          if (reached()) {
            po.disconnect();
            resolve({ elapsed: performance.now() - t0, frames, longTasks, slow });
          } else requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      });
    },
    { id: runId, ...until },
  );
}

/** Scrolls the open run's event list top, middle, bottom, middle, top, one step per frame (20 rounds); frame deltas in ms. */
function framesWhileScrolling(page: Page): Promise<number[]> {
  return page.evaluate(async () => {
    const el = document.querySelector<HTMLElement>(".events")!;
    const stops = [0, 0.5, 1, 0.5, 0];
    const frames: number[] = [];
    let last = performance.now();
    for (let i = 0; i < stops.length * 20; i++) {
      el.scrollTop = stops[i % stops.length]! * (el.scrollHeight - el.clientHeight);
      await new Promise<void>((r) =>
        requestAnimationFrame((now) => {
          frames.push(now - last);
          last = now;
          r();
        }),
      );
    }
    return frames;
  });
}

/** Waits (polling the API) until the run has ended. */
async function waitEnded(base: string, token: string, runId: string): Promise<string> {
  for (let i = 0; i < 1200; i++) {
    const r = await requestJson<{ status: string }>(base, "GET", `/api/runs/${runId}`, undefined, token);
    if (["completed", "failed", "cancelled", "timed_out"].includes(r.body.status)) return r.body.status;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`run ${runId} did not end`);
}

/** A node one-liner printing `per` lines every 10 ms for `secs` seconds (drift-free). */
function pacedCommand(secs: number, per: number): string {
  const ticks = Math.round(secs * 100);
  const script = `const n=${ticks},t0=performance.now();let i=0;const tick=()=>{let s='';for(let k=0;k<${per};k++)s+='ev '+(i*${per}+k)+'\\n';process.stdout.write(s);i++;if(i<n)setTimeout(tick,Math.max(0,t0+i*10-performance.now()));};tick();`;
  return `'${process.execPath}' -e "${script}"`;
}

async function measureOnce(opts: WebBenchOptions, cpuProfDir?: string): Promise<Record<string, unknown>> {
  const [server, browser] = await Promise.all([startBenchServer(cpuProfDir ? { cpuProfDir, env: { OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "8" } } : { env: { OPENRUNNER_MAX_CONCURRENT_RUNS_PER_USER: "8" } }), launchBrowser()]);
  try {
    const w = await openPage(browser, server.url, { width: 1280, height: 900 });
    const { page } = w;
    // tsx compiles the page functions below with esbuild's keepNames, which calls a `__name` helper that only exists in Node.
    await w.context.addInitScript("globalThis.__name = (fn) => fn;");
    await signIn(page, "admin", ADMIN_PASSWORD);

    // 1. POST -> first event, painted vs bare SSE.
    const painted: number[] = [];
    const bare: number[] = [];
    await firstEventInPage(page, "true"); // warm-up: first run's page code paths and connections
    await leaveRunPage(page);
    for (let i = 0; i < opts.runs; i++) {
      const r = await firstEventInPage(page, "true");
      painted.push(r.painted);
      bare.push(r.bare);
      await leaveRunPage(page);
    }
    const p = summarize(painted);
    const b = summarize(bare);
    const ratios = painted.map((v, i) => v / bare[i]!);

    // 2. Frame times while a run streams 1,000 events/s.
    const streamId = await createShellRun(server.url, server.token, pacedCommand(opts.streamSecs, 10));
    const stream = await framesWhileOpen(page, streamId, { status: "completed" });
    const streamFrames = stream.frames.slice(1);
    const sf = summarize(streamFrames);
    await leaveRunPage(page);

    // 3. A 100,000-event run.
    const bigId = await createShellRun(server.url, server.token, `seq 1 ${opts.bigEvents} | sed 's/^/line /'`);
    const status = await waitEnded(server.url, server.token, bigId);
    const row = await requestJson<{ last_event_id: number }>(server.url, "GET", `/api/runs/${bigId}`, undefined, server.token);
    const big = await framesWhileOpen(page, bigId, { count: row.body.last_event_id, status: "completed" });
    const scroll = await framesWhileScrolling(page);
    const bf = summarize(big.frames.slice(1));
    const sc = summarize(scroll.slice(1));
    w.assertClean(server.token);
    return {
      runs: opts.runs,
      painted_p50_ms: round(p.p50, 2),
      painted_p99_ms: round(p.p99, 2),
      bare_p50_ms: round(b.p50, 2),
      bare_p99_ms: round(b.p99, 2),
      ratio_of_p50: round(p.p50 / b.p50, 3),
      ratio_median_per_run: round(summarize(ratios).p50, 3),
      stream_secs: opts.streamSecs,
      stream_elapsed_ms: round(stream.elapsed, 1),
      stream_frames: streamFrames.length,
      stream_frame_p50_ms: round(sf.p50, 2),
      stream_frame_p99_ms: round(sf.p99, 2),
      stream_frame_max_ms: round(sf.max, 2),
      stream_frames_over_50ms: streamFrames.filter((f) => f > 50).length,
      stream_long_tasks: stream.longTasks.length,
      stream_long_task_max_ms: round(Math.max(0, ...stream.longTasks), 1),
      stream_slow_frames: stream.slow.join(" "),
      big_status: status,
      big_events: row.body.last_event_id,
      big_render_ms: round(big.elapsed, 1),
      big_load_frame_max_ms: round(bf.max, 2),
      big_load_long_tasks: big.longTasks.length,
      big_load_slow_frames: big.slow.join(" "),
      big_scroll_frame_p99_ms: round(sc.p99, 2),
      big_scroll_frame_max_ms: round(sc.max, 2),
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

/** Runs the `web` benchmark `repeats` times. */
export async function benchWeb(opts: WebBenchOptions): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const reps: Array<Record<string, unknown>> = [];
  for (let i = 0; i < opts.repeats; i++) {
    const r = await measureOnce(opts, i === 0 ? opts.cpuProfDir : undefined);
    reps.push(r);
    console.error(
      `  web #${i + 1}: first event painted p50 ${r.painted_p50_ms} / p99 ${r.painted_p99_ms} ms, bare SSE p50 ${r.bare_p50_ms} ms (ratio ${r.ratio_of_p50}); ` +
        `streaming max frame ${r.stream_frame_max_ms} ms (${r.stream_frames_over_50ms} over 50 ms); ${r.big_events} events shown in ${r.big_render_ms} ms, scroll max frame ${r.big_scroll_frame_max_ms} ms`,
    );
  }
  const col = (k: string) => reps.map((r) => r[k] as number);
  return {
    name: "web",
    startedAt,
    quick: opts.quick,
    repeats: opts.repeats,
    figures: [
      figure("POST -> first event painted p50", "ms", "lower", col("painted_p50_ms")),
      figure("POST -> first event painted p99", "ms", "lower", col("painted_p99_ms")),
      figure("POST -> first event at a bare SSE client p50", "ms", "lower", col("bare_p50_ms")),
      figure("painted / bare SSE (p50s)", "ratio", "lower", col("ratio_of_p50"), { op: "<", value: 1.5 }),
      figure("max frame while streaming 1000 events/s", "ms", "lower", col("stream_frame_max_ms"), { op: "<", value: 50 }),
      figure("frames over 50 ms while streaming", "frames", "lower", col("stream_frames_over_50ms")),
      figure(`${opts.bigEvents}-event run: opened and all shown`, "ms", "lower", col("big_render_ms")),
      figure(`${opts.bigEvents}-event run: max frame while scrolling`, "ms", "lower", col("big_scroll_frame_max_ms"), { op: "<", value: 50 }),
    ],
    details: { runs: opts.runs, stream_secs: opts.streamSecs, big_events: opts.bigEvents, repetitions: reps },
  };
}
