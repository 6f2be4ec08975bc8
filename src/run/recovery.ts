/**
 * Recovery at start: runs a previous server process left non-terminal (crash,
 * SIGKILL) are ended as `run.failed` with code `interrupted`, after their last
 * stored event, and processes still carrying their run id are killed.
 */
import { killRunOrphans } from "../agent/orphans.ts";
import type { Log } from "../log.ts";
import type { Store } from "../store/types.ts";
import type { RunChannel } from "./channel.ts";
import type { EventWriter } from "./event-writer.ts";

/**
 * Ends every non-terminal run in the store and commits the terminal events; resolves once they are stored.
 * @param channelOf a channel for a run whose last stored event id is `lastId`
 * @returns the ids of the runs ended
 */
export async function recoverInterruptedRuns(d: { store: Store; writer: EventWriter; log: Log; channelOf: (runId: string, lastId: number) => RunChannel }): Promise<string[]> {
  const rows = await d.store.runs.listNonTerminal();
  for (const row of rows) {
    killRunOrphans(row.id, d.log);
    const startedMs = Date.parse(row.started_at ?? row.created_at);
    d.channelOf(row.id, await d.store.events.lastId(row.id)).append({
      type: "run.failed",
      data: { error: { code: "interrupted", message: "the server stopped while the run was live" }, duration_ms: Math.max(0, Date.now() - startedMs) },
    });
    d.log.warn("run interrupted by a previous shutdown", { run_id: row.id });
  }
  await d.writer.flush();
  return rows.map((r) => r.id);
}
