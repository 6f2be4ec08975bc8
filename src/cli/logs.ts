/**
 * `openrunner logs [-f] [--json] RUN`: prints a run's stored events, paging
 * through `GET /api/runs/:id/events?after=N` with `Accept: application/json`;
 * with `-f`, then follows the live stream over SSE until the run ends.
 */
import { createApiClient } from "./client.ts";
import type { CliContext } from "./context.ts";
import { createEventOutput } from "./event-output.ts";
import { describeReconnect, followRunEvents } from "./sse.ts";

/** Flags and argument of `logs`. */
export interface LogsOptions {
  server?: string;
  runId: string;
  follow?: boolean;
  json?: boolean;
}

/**
 * Runs `logs`; returns the exit code (0 once the events are printed).
 * @example openrunner logs -f run_01J…
 */
export async function runLogs(ctx: CliContext, opts: LogsOptions): Promise<number> {
  const client = createApiClient(ctx, { server: opts.server });
  const out = createEventOutput(ctx, { json: opts.json === true, spinner: opts.follow === true });
  try {
    let after = 0;
    let done = false;
    for (;;) {
      const page = await client.api.eventsPage(opts.runId, { after });
      const events = Array.isArray(page?.events) ? page.events : [];
      for (const ev of events) {
        if (ev.id <= after) continue;
        out.print(ev);
        after = ev.id;
      }
      if (typeof page?.next_after === "number" && page.next_after > after) after = page.next_after;
      done = page?.done === true;
      if (done || events.length === 0) break;
    }
    if (opts.follow && !done) {
      await followRunEvents(client, opts.runId, {
        after,
        onEvent: (ev) => out.print(ev),
        onReconnect: (n, why, attempt) => {
          if (attempt === 1) out.note(describeReconnect(why, n));
        },
      });
    }
    return 0;
  } finally {
    out.finish();
  }
}
