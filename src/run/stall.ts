/**
 * The stall watchdog of one run (README "Stall watchdog"): when the run has produced no event for
 * `stall_secs` while its agent process lives, it appends `run.stalled` with a typed cause; when events come
 * again, `run.resumed_activity`; after `stall_fail_secs` without an event it asks the run machine to fail
 * the run with code `stalled`. The manager feeds it every event of the run ({@link StallWatchdog.observe})
 * and stops it at the terminal event.
 *
 * The cause, first that applies: `waiting_permission` (the permission gate has an open request),
 * `tool_running` (the agent process has a live descendant: the tool; `cpu_busy` when it used CPU between the
 * last two looks), `model_request_open` (the agent's process tree holds a connecting or established TCP
 * connection to its model base URL, or to any peer when no base URL is configured; or, with no connection open, its
 * last event was its own retry notice: see {@link isRetryNotice}), `idle_process`.
 * Process facts come from procfs (`stall-proc.ts`); a run without a host pid (a container exec) gets only
 * `waiting_permission` or `idle_process`. Limits of the model check: an idle keep-alive connection looks like
 * an open request.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Log } from "../log.ts";
import type { RunEventData, RunEventInput, StallCause } from "../protocol/events.ts";
import { isAlive, listDescendants, openConnections, type TcpPeer } from "./stall-proc.ts";

/** Input of {@link StallWatchdog}. */
export interface StallWatchdogOptions {
  runId: string;
  /** Silence (no event), ms, before `run.stalled`; > 0. */
  stallMs: number;
  /** Silence, ms, before the run is failed with `stalled`; 0: never. */
  failMs: number;
  /** Appends the watchdog's own events to the run (not fed back to {@link StallWatchdog.observe}). */
  emit: (e: RunEventInput) => void;
  /** The ids of the run's open permission requests. */
  openRequests: () => string[];
  /** Fails the run (the manager sends the machine `FAIL` with code `stalled`). */
  fail: (message: string) => void;
  /** Model base URLs of the run's agent (`agents.<name>.base_url`, the ACP agent's); empty: any TCP peer counts. */
  modelBaseUrls: readonly string[];
  /** procfs root; default `/proc`. */
  procRoot?: string;
  /** ms between looks; default a quarter of `stallMs`, between 50 and 1000. */
  checkEveryMs?: number;
  now?: () => number;
  log?: Pick<Log, "warn">;
}

/**
 * True for an agent's own notice that it is retrying its model request: Claude Code's `system/api_retry` line
 * (a `log` whose `raw.subtype` is `api_retry`, `src/agent/claude-code/parse.ts`), or a `log` line saying it is
 * retrying or reconnecting (codex's `Reconnecting... 2/5` notices).
 * @example isRetryNotice({ type: "log", data: { stream: "stdout", text: "x", raw: { type: "system", subtype: "api_retry" } } }) // true
 */
export function isRetryNotice(e: RunEventInput): boolean {
  if (e.type !== "log") return false;
  const raw = e.data.raw as { subtype?: unknown } | undefined;
  return raw?.subtype === "api_retry" || /\b(retrying|reconnecting)\b/i.test(e.data.text);
}

/** The diagnosis of a silent run: `run.stalled`'s data without `idle_ms`. */
type Diagnosis = Omit<RunEventData<"run.stalled">, "idle_ms" | "cause"> & { cause: StallCause };

/**
 * Resolves base URLs to the TCP peers a connection to them would have (host names through the resolver;
 * `localhost` as 127.0.0.1 and ::1). A URL that does not parse or resolve is left out.
 * @example await resolvePeers(["http://127.0.0.1:8080/v1"]) // [{address: "127.0.0.1", port: 8080}]
 */
export async function resolvePeers(urls: readonly string[]): Promise<TcpPeer[]> {
  const out: TcpPeer[] = [];
  for (const raw of urls) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      continue;
    }
    const port = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
    const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    if (isIP(host)) out.push({ address: host, port });
    else if (host === "localhost") out.push({ address: "127.0.0.1", port }, { address: "::1", port });
    else for (const a of await lookup(host, { all: true }).catch(() => [])) out.push({ address: a.address, port });
  }
  return out;
}

/** See the module comment. One per live run; inert until the run's `run.started`. */
export class StallWatchdog {
  readonly #o: StallWatchdogOptions;
  readonly #now: () => number;
  readonly #root: string;
  readonly #peers: Promise<TcpPeer[]>;
  #timer: NodeJS.Timeout | undefined;
  #pid: number | undefined;
  #lastEventAt: number;
  /** Set while the run is reported stalled: when its silence began. */
  #stalledSince: number | undefined;
  #failed = false;
  /** The last event was the agent's own retry notice ({@link isRetryNotice}). */
  #retrying = false;
  #checking = false;
  #stopped = false;
  /** CPU ticks of the agent's descendants at the previous look, by pid. */
  #ticks = new Map<number, number>();

  constructor(o: StallWatchdogOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#root = o.procRoot ?? "/proc";
    this.#lastEventAt = this.#now();
    this.#peers = resolvePeers(o.modelBaseUrls);
  }

  /** Every event of the run, as it is appended: resets the silence; `run.started` arms the watchdog; a terminal event stops it. */
  observe(e: RunEventInput): void {
    if (this.#stopped) return;
    const now = this.#now();
    if (this.#stalledSince !== undefined) {
      const stalledMs = Math.max(0, Math.round(now - this.#stalledSince));
      this.#stalledSince = undefined;
      this.#o.emit({ type: "run.resumed_activity", data: { stalled_ms: stalledMs } });
    }
    this.#lastEventAt = now;
    this.#retrying = isRetryNotice(e);
    this.#ticks.clear();
    if (e.type === "run.started") {
      this.#pid = e.data.pid;
      this.#timer ??= setInterval(() => void this.#check(), this.#o.checkEveryMs ?? Math.min(1000, Math.max(50, this.#o.stallMs / 4)));
      this.#timer.unref();
    } else if (e.type === "run.completed" || e.type === "run.failed" || e.type === "run.cancelled" || e.type === "run.timed_out") this.stop();
  }

  /** Stops looking; idempotent. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async #check(): Promise<void> {
    if (this.#checking || this.#stopped || this.#failed) return;
    this.#checking = true;
    try {
      const since = this.#lastEventAt;
      const idle = this.#now() - since;
      if (idle < this.#o.stallMs / 2) return;
      if (this.#pid !== undefined && !(await isAlive(this.#pid, this.#root))) return; // its exit is on the way
      const diagnosis = await this.#diagnose();
      if (this.#stopped || this.#lastEventAt !== since) return; // an event came meanwhile
      if (idle < this.#o.stallMs) return; // this look only sampled CPU ticks
      if (this.#stalledSince === undefined) {
        this.#stalledSince = since;
        this.#o.emit({ type: "run.stalled", data: { ...diagnosis, idle_ms: Math.round(idle) } });
      }
      if (this.#o.failMs > 0 && idle >= this.#o.failMs) {
        this.#failed = true;
        this.#o.fail(`no event for ${Math.round(idle / 1000)} s (${diagnosis.cause})`);
      }
    } catch (err) {
      this.#o.log?.warn("stall check failed", { run_id: this.#o.runId, err: String(err) });
    } finally {
      this.#checking = false;
    }
  }

  /** Why the run is silent (see the module comment); also records the descendants' CPU ticks for the next look. */
  async #diagnose(): Promise<Diagnosis> {
    const requestIds = this.#o.openRequests();
    const pid = this.#pid;
    const withPid = pid !== undefined ? { pid } : {};
    if (requestIds.length > 0) return { cause: "waiting_permission", request_ids: requestIds, ...withPid };
    if (pid === undefined) return { cause: "idle_process" };
    const tools = await listDescendants(pid, this.#root);
    const previous = this.#ticks;
    this.#ticks = new Map(tools.map((t) => [t.pid, t.cpuTicks]));
    if (tools.length > 0) {
      const cpuBusy = tools.some((t) => previous.has(t.pid) && t.cpuTicks > previous.get(t.pid)!);
      return { cause: "tool_running", pid, tool_pids: tools.map((t) => t.pid), cpu_busy: cpuBusy };
    }
    const peers = await this.#peers;
    const open = await openConnections([pid], peers, this.#root);
    const first = open[0];
    if (first) return { cause: "model_request_open", pid, endpoint: `${first.remoteAddress.includes(":") ? `[${first.remoteAddress}]` : first.remoteAddress}:${first.remotePort}` };
    if (this.#retrying) return { cause: "model_request_open", pid }; // between two attempts of its own retry
    return { cause: "idle_process", pid };
  }
}

/**
 * The watchdog of a run, or undefined when `stall_secs` is 0 (off).
 * @param config `stall_secs`, `stall_fail_secs` (seconds)
 */
export function createStallWatchdog(config: { stall_secs?: number; stall_fail_secs?: number }, o: Omit<StallWatchdogOptions, "stallMs" | "failMs">): StallWatchdog | undefined {
  const stallSecs = config.stall_secs ?? 0;
  if (stallSecs <= 0) return undefined;
  return new StallWatchdog({ ...o, stallMs: stallSecs * 1000, failMs: (config.stall_fail_secs ?? 0) * 1000 });
}
