/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside
 * a commit and fsyncs the database file, which stalled event delivery by
 * 12-36 ms every few hundred commits (see bench/latency.ts). The main
 * connection sets `wal_autocheckpoint=0`; a worker thread with its own
 * connection runs `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`
 * (PASSIVE never blocks writers). The store runs a TRUNCATE checkpoint on close.
 */
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 1000");
const timer = setInterval(() => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch (err) { parentPort.postMessage({ error: String(err) }); }
}, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m === "stop") { clearInterval(timer); db.close(); process.exit(0); }
});
`;

/** A running checkpointer; `stop()` is idempotent and resolves once the worker closed its connection and exited. */
export interface Checkpointer {
  stop(): Promise<void>;
}

/**
 * Starts the checkpoint worker for the database at `file`.
 * @param intervalMs time between PASSIVE checkpoints, ms
 * @param onError told about a failed checkpoint (the next one retries)
 */
export function startCheckpointer(file: string, intervalMs: number, onError: (message: string) => void = () => {}): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, intervalMs, driver } });
  worker.unref();
  worker.on("message", (m: { error?: string }) => m.error && onError(m.error));
  worker.on("error", (err) => onError(String(err)));
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      if (!stopping) {
        worker.ref(); // the process waits for it to exit (it was unref'd so as not to keep an idle process alive)
        worker.postMessage("stop");
        // A worker that does not stop within 5 s (stuck in a checkpoint) is terminated.
        const force = setTimeout(() => void worker.terminate(), 5000);
        stopping = exited.finally(() => clearTimeout(force));
      }
      return stopping;
    },
  };
}
