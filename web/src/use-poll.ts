/**
 * Polling with backoff: calls `load` now, then again after `nextDelayMs(result)`
 * (e.g. 1 s while something is live, 5 s otherwise); after a failure the delay
 * doubles from 1 s up to 30 s. Stops on unmount or when `deps` change; a
 * 401 goes to `onUnauthorized` and ends the polling.
 */
import { useEffect, useRef, useState } from "react";
import { isUnauthorized } from "./errors.ts";

/** What {@link usePoll} returns: the last result, the last error (cleared by a success), and `refresh()` to poll now. */
export interface PollState<T> {
  data: T | undefined;
  error: unknown;
  refresh: () => void;
}

export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, nextDelayMs: (data: T) => number, deps: readonly unknown[], onUnauthorized?: () => void): PollState<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const kick = useRef<() => void>(() => {});
  useEffect(() => {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let running = false;
    const tick = async () => {
      clearTimeout(timer);
      if (running) return;
      running = true;
      let delay: number;
      try {
        const d = await load(ac.signal);
        if (ac.signal.aborted) return;
        failures = 0;
        setData(d);
        setError(undefined);
        delay = nextDelayMs(d);
      } catch (err) {
        if (ac.signal.aborted) return;
        if (isUnauthorized(err)) return onUnauthorized?.();
        setError(err);
        failures++;
        delay = Math.min(30_000, 1000 * 2 ** (failures - 1));
      } finally {
        running = false;
      }
      timer = setTimeout(() => void tick(), delay);
    };
    kick.current = () => void tick();
    void tick();
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return { data, error, refresh: () => kick.current() };
}
