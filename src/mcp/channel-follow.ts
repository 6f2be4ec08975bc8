/**
 * A run's channel (`src/run/channel.ts`) as an async iterable: replay after a
 * cursor, then live, until the terminal event. Honours the channel's
 * backpressure (the subscription is paused while more than {@link HIGH_WATER}
 * events wait to be consumed) and resubscribes after `lagged`, so the consumer
 * sees each event once, in id order, without a gap.
 */
import type { RunEvent } from "../protocol/events.ts";
import type { EventChunk, RunChannel, Subscription } from "../run/channel.ts";

/** Events buffered before the subscription is paused. */
const HIGH_WATER = 1000;

/**
 * Yields the channel's events after `after` until its terminal event, or until
 * `signal` aborts (then it returns quietly).
 * @example for await (const e of followChannel(await manager.channelFor(row), 0, signal)) …
 */
export async function* followChannel(channel: RunChannel, after: number, signal: AbortSignal): AsyncGenerator<RunEvent, void, undefined> {
  const queue: RunEvent[] = [];
  let ended = false;
  let paused = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  let sub: Subscription;
  const subscribe = (from: number) =>
    channel.subscribe(from, {
      write(chunk: EventChunk): boolean {
        queue.push(...chunk.events);
        notify();
        paused = queue.length >= HIGH_WATER;
        return !paused;
      },
      lagged(lastId: number) {
        queueMicrotask(() => (sub = subscribe(lastId)));
      },
      end() {
        ended = true;
        notify();
      },
    });
  sub = subscribe(after);
  const onAbort = () => notify();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      while (queue.length > 0) {
        if (signal.aborted) return;
        yield queue.shift()!;
        if (paused && queue.length < HIGH_WATER / 2) {
          paused = false;
          sub.resume();
        }
      }
      if (ended || signal.aborted) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    sub.close();
  }
}
