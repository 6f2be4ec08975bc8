/**
 * The per-run channel (docs/architecture.md#channel): append -> persist -> fan out.
 *
 * `append` numbers an event (1, 2, 3 … per run, no gaps) and hands it to the
 * {@link EventWriter}; once committed it is delivered to every subscription.
 * A subscription first replays stored events after its cursor (in pages, from
 * the store, honouring backpressure), then follows live. While it replays, live
 * batches are left to the store; the switch to live happens only when a store
 * read came back empty AND the channel has committed nothing past the cursor
 * (checked on the one JS thread, after the read resolves), so it has no gap and
 * no duplicate even though reads are asynchronous. A live subscriber that cannot
 * keep up buffers at most `bufferLimit` events, then is told `lagged` and
 * dropped; it reconnects with Last-Event-ID and loses nothing.
 */
import type { EventRepo } from "../store/types.ts";
import type { EventWriter } from "./event-writer.ts";
import { isTerminalType, type RunEvent, type RunEventInput } from "../protocol/events.ts";
import { formatSseFrame } from "../protocol/sse.ts";

/** Serialized SSE frames (see {@link formatSseFrame}) of some events, built once and shared by all subscribers. */
export interface EventChunk {
  events: RunEvent[];
  /** `id:`/`event:`/`data:` frames, concatenated. */
  text: string;
  /** `text` as UTF-8, encoded once on first use and shared by every subscriber. */
  bytes(): Buffer;
}

/** Where a subscription delivers. */
export interface EventSink {
  /** Delivers a chunk; return false to pause until {@link Subscription.resume}. */
  write(chunk: EventChunk): boolean;
  /** The subscriber fell more than the buffer limit behind; it is detached. `lastId` is the last id it got. */
  lagged(lastId: number): void;
  /** The terminal event was delivered; the stream is over. */
  end(): void;
}

const REPLAY_PAGE = 2000;
/** Most bytes (UTF-16 code units, ~bytes) of frames in one replay chunk: a page of huge events is split. */
export const MAX_CHUNK_CHARS = 4 * 1024 * 1024;

let lastMs = 0;
let lastIso = "";
/** `new Date().toISOString()`, computed at most once per millisecond. */
function nowIso(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function chunkOf(events: RunEvent[]): EventChunk {
  let text = "";
  for (const e of events) text += formatSseFrame(e);
  return chunkFromText(events, text);
}

function chunkFromText(events: RunEvent[], text: string): EventChunk {
  let buf: Buffer | undefined;
  return { events, text, bytes: () => (buf ??= Buffer.from(text, "utf8")) };
}

/** A reader of one run's events. Created by {@link RunChannel.subscribe}. */
export class Subscription {
  /** Last event id handed to the sink. */
  cursor: number;
  #replaying = true;
  #paused = false;
  #pending: RunEvent[] = [];
  #closed = false;
  /** A replay loop is running (one at a time: `resume` during a read must not start a second). */
  #pumping = false;

  constructor(
    private readonly channel: RunChannel,
    after: number,
    private readonly sink: EventSink,
    private readonly bufferLimit: number,
  ) {
    this.cursor = after;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resumes delivery after the sink returned false (e.g. on the socket's `drain`). */
  resume(): void {
    if (this.#closed || !this.#paused) return;
    this.#paused = false;
    if (this.#pending.length > 0) {
      const events = this.#pending;
      this.#pending = [];
      this.#deliver(chunkOf(events));
    }
    if (this.#replaying) this.pump();
  }

  /** Detaches from the channel; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.channel.detach(this);
  }

  /** Closes and tells the sink the stream is over (shutdown). */
  end(): void {
    if (this.#closed) return;
    this.close();
    this.sink.end();
  }

  /**
   * Replays stored events page by page until caught up or paused (in the background; one
   * loop at a time). Chunks hold at most {@link MAX_CHUNK_CHARS} of frames; what a pause
   * leaves of a page is read again from the store later. A store error ends the
   * subscription as lagged at its cursor (the client reconnects with Last-Event-ID).
   */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#replay().catch(() => {
        if (this.#closed) return;
        const lastId = this.cursor;
        this.close();
        this.sink.lagged(lastId);
      });
  }

  async #replay(): Promise<void> {
    try {
      await this.#replayPages();
    } finally {
      this.#pumping = false; // at once, not a microtask later: a resume() right after a pause must start a new loop
    }
  }

  async #replayPages(): Promise<void> {
    let emptyReads = 0;
    while (this.#replaying && !this.#paused && !this.#closed) {
      const raw = await this.channel.readStored(this.cursor, REPLAY_PAGE);
      if (this.#closed) return;
      const page = raw[0] && raw[0].id <= this.cursor ? raw.filter((e) => e.id > this.cursor) : raw;
      if (page.length === 0) {
        // Batches committed while the read was out were not offered to us: read again. A run deleted under us stores nothing more: give up after a few reads.
        if (this.channel.committedId > this.cursor && ++emptyReads < 3) continue;
        this.#replaying = false;
        this.#maybeEnd();
        return;
      }
      emptyReads = 0;
      let start = 0;
      let text = "";
      for (let i = 0; i < page.length && !this.#paused && !this.#closed; i++) {
        text += formatSseFrame(page[i]!);
        if (text.length >= MAX_CHUNK_CHARS || i === page.length - 1) {
          this.#deliver(chunkFromText(page.slice(start, i + 1), text));
          start = i + 1;
          text = "";
        }
      }
    }
  }

  /** Called by the channel with a committed batch (possibly shared chunk). */
  offer(batch: RunEvent[], shared: () => EventChunk): void {
    if (this.#closed || this.#replaying) return; // a replaying reader will read these from the store
    if (this.#paused) {
      for (const e of batch) if (e.id > this.cursor) this.#pending.push(e);
      if (this.#pending.length > this.bufferLimit) {
        const lastId = this.cursor;
        this.close();
        this.sink.lagged(lastId);
      }
      return;
    }
    const first = batch[0];
    if (first && first.id === this.cursor + 1) this.#deliver(shared());
    else this.#deliver(chunkOf(batch.filter((e) => e.id > this.cursor)));
  }

  #deliver(chunk: EventChunk): void {
    const last = chunk.events[chunk.events.length - 1];
    if (!last) {
      this.#maybeEnd();
      return;
    }
    this.cursor = last.id;
    const more = this.sink.write(chunk);
    if (!more) this.#paused = true;
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    const terminalId = this.channel.terminalId;
    if (!this.#closed && terminalId !== null && this.cursor >= terminalId && this.#pending.length === 0) {
      this.close();
      this.sink.end();
    }
  }
}

export interface RunChannelOptions {
  runId: string;
  /** Highest id already stored for this run (0 for a new run). */
  lastStoredId: number;
  /** Id of the stored terminal event when the run is already over. */
  terminalId?: number | null;
  writer: EventWriter;
  events: EventRepo;
  /** Per-subscriber live buffer, events. */
  bufferLimit: number;
  /** Observes subscriber count changes (+1/-1) for metrics. */
  onSubscribers?: (delta: 1 | -1) => void;
}

/** See the module comment. */
export class RunChannel {
  readonly runId: string;
  #nextId: number;
  /** Id of the last committed event (delivered to subscribers); the stored id at creation. */
  committedId: number;
  #terminalAppended: boolean;
  /** Id of the terminal event once committed. */
  terminalId: number | null;
  #subs = new Set<Subscription>();
  #terminalWaiters: Array<() => void> = [];

  constructor(private readonly opts: RunChannelOptions) {
    this.runId = opts.runId;
    this.#nextId = opts.lastStoredId + 1;
    this.committedId = opts.lastStoredId;
    this.terminalId = opts.terminalId ?? null;
    this.#terminalAppended = this.terminalId !== null;
  }

  /** Id of the last appended event (committed or not); 0 when none. */
  get lastAppendedId(): number {
    return this.#nextId - 1;
  }

  /** True once a terminal event was appended (even if not yet committed). */
  get ended(): boolean {
    return this.#terminalAppended;
  }

  get subscriberCount(): number {
    return this.#subs.size;
  }

  /**
   * Numbers, stamps and queues an event. Returns the event, or null when the
   * run already has its terminal event (nothing may follow it).
   */
  append(input: RunEventInput): RunEvent | null {
    if (this.#terminalAppended) return null;
    const event = { id: this.#nextId++, run_id: this.runId, ts: nowIso(), type: input.type, data: input.data } as RunEvent;
    if (isTerminalType(event.type)) this.#terminalAppended = true;
    this.opts.writer.enqueue(event, this);
    return event;
  }

  /** Writer callback: the batch is stored; deliver it. */
  onCommitted(events: RunEvent[]): void {
    const last = events[events.length - 1];
    if (last && last.id > this.committedId) this.committedId = last.id;
    if (last && isTerminalType(last.type)) this.terminalId = last.id;
    let shared: EventChunk | null = null;
    const getShared = () => (shared ??= chunkOf(events));
    for (const sub of [...this.#subs]) sub.offer(events, getShared);
    if (this.terminalId !== null) {
      for (const w of this.#terminalWaiters.splice(0)) w();
    }
  }

  /**
   * Subscribes from `after` (0 = from the start): replay from the store, then live.
   * The sink is called later, never before this returns.
   */
  subscribe(after: number, sink: EventSink): Subscription {
    const sub = new Subscription(this, Math.max(0, after), sink, this.opts.bufferLimit);
    this.#subs.add(sub);
    this.opts.onSubscribers?.(1);
    sub.pump();
    return sub;
  }

  /** @internal used by Subscription */
  detach(sub: Subscription): void {
    if (this.#subs.delete(sub)) this.opts.onSubscribers?.(-1);
  }

  /** @internal stored events after `after` (committed ones only). */
  readStored(after: number, limit: number): Promise<RunEvent[]> {
    return this.opts.events.list(this.runId, after, limit);
  }

  /**
   * For a run executing in another process (distributed mode, `remote.ts`): reads the events
   * stored after what this channel has delivered and delivers them as a commit would. Called on
   * every wake-up notification; calls while a read is out coalesce into one more read. Resolves
   * when caught up; never rejects (a store error waits for the next wake-up).
   */
  wake(): Promise<void> {
    if (this.#following) {
      this.#wakeAgain = true;
      return this.#following;
    }
    const run = async (): Promise<void> => {
      do {
        this.#wakeAgain = false;
        for (;;) {
          const page = await this.opts.events.list(this.runId, this.committedId, REPLAY_PAGE);
          const fresh = page.filter((e) => e.id > this.committedId);
          if (fresh.length === 0) break;
          this.#nextId = Math.max(this.#nextId, fresh[fresh.length - 1]!.id + 1);
          this.onCommitted(fresh);
          if (page.length < REPLAY_PAGE) break;
        }
      } while (this.#wakeAgain && this.terminalId === null);
    };
    this.#following = run()
      .catch(() => {})
      .finally(() => {
        this.#following = null;
        if (this.#wakeAgain && this.terminalId === null) void this.wake();
      });
    return this.#following;
  }

  #following: Promise<void> | null = null;
  #wakeAgain = false;

  /** Resolves once the terminal event is committed. */
  whenTerminal(): Promise<void> {
    if (this.terminalId !== null) return Promise.resolve();
    return new Promise((resolve) => this.#terminalWaiters.push(resolve));
  }

  /**
   * The run cannot go on in this process (its events are refused by the store): no more appends, `whenTerminal`
   * resolves, every subscription ends after what it received (a reader reconnects and replays the store's truth).
   */
  abandon(): void {
    this.#terminalAppended = true;
    this.terminalId ??= this.committedId;
    for (const w of this.#terminalWaiters.splice(0)) w();
    this.closeAll();
  }

  /** Ends every subscription now (shutdown): each sink gets `end()` after what it already received. */
  closeAll(): void {
    for (const sub of [...this.#subs]) sub.end();
  }
}
