/**
 * A run's events, live, folded into a {@link Timeline}: the client's
 * `events()` iterator (replay from the first event, then live; reconnects with
 * `Last-Event-ID`, so nothing is lost or doubled across drops, and a reload
 * simply replays). Renders are batched to one per animation frame, whatever
 * the event rate.
 */
import { useEffect, useRef, useState } from "react";
import type { OpenRunnerClient } from "openrunner/client";
import { isUnauthorized } from "../errors.ts";
import { Timeline } from "./timeline.ts";

/** What {@link useRunEvents} returns. `version` changes at each batch of new events. */
export interface RunEventsState {
  timeline: Timeline;
  version: number;
  /** The stream is (re)connecting after a drop. */
  reconnecting: boolean;
  /** The stream gave up (or the run is not visible), with the error. */
  error: unknown;
  /** The terminal event arrived. */
  done: boolean;
}

export function useRunEvents(client: OpenRunnerClient, runId: string, onUnauthorized: () => void): RunEventsState {
  const [state, setState] = useState<RunEventsState>(() => ({ timeline: new Timeline(), version: 0, reconnecting: false, error: undefined, done: false }));
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;

  useEffect(() => {
    const timeline = new Timeline();
    const ac = new AbortController();
    let frame = 0;
    let version = 0;
    setState({ timeline, version, reconnecting: false, error: undefined, done: false });
    const flush = () => {
      frame = 0;
      version++;
      setState((s) => ({ ...s, timeline, version, reconnecting: false }));
    };
    const schedule = () => {
      if (frame === 0) frame = requestAnimationFrame(flush);
    };
    void (async () => {
      try {
        const events = client.events(runId, {
          signal: ac.signal,
          onReconnect: () => setState((s) => ({ ...s, reconnecting: true })),
        });
        for await (const ev of events) if (timeline.add(ev)) schedule();
        if (frame !== 0) cancelAnimationFrame(frame);
        flush();
        setState((s) => ({ ...s, done: true }));
      } catch (err) {
        if (ac.signal.aborted) return;
        if (isUnauthorized(err)) return unauthorized.current();
        setState((s) => ({ ...s, error: err, reconnecting: false }));
      }
    })();
    return () => {
      ac.abort();
      if (frame !== 0) cancelAnimationFrame(frame);
    };
  }, [client, runId]);

  return state;
}
