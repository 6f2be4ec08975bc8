/**
 * The batch contract (docs/architecture.md#http-api): `POST /api/runs/batch`,
 * `GET /api/batches/:id`, `POST /api/batches/:id/cancel` and the batch's
 * event stream `GET /api/batches/:id/events`, whose frames are numbered,
 * stored and replayed like a run's (`Last-Event-ID` / `?after=N`, see
 * `./sse.ts`). Part of the contract layer: imports nothing of the project but
 * `./events.ts` and `./requests.ts`.
 */
import { Type, type Static } from "@sinclair/typebox";
import { RUN_STATUSES, type RunStatus } from "./events.ts";
import { CreateRunBody } from "./requests.ts";

/** Hard ceiling of `batch_max_runs`: no configuration may allow more items in one batch. */
export const BATCH_MAX_RUNS_LIMIT = 10_000;

const RunStatusSchema = Type.Union(RUN_STATUSES.map((s) => Type.Literal(s)));

/**
 * Body of `POST /api/runs/batch`: 1 to `batch_max_runs` run requests, each exactly a `POST /api/runs` body.
 * All are validated and admitted, or none (the error's `details.index` names the first failing item).
 */
export const CreateBatchBody = Type.Object({ runs: Type.Array(CreateRunBody, { minItems: 1, maxItems: BATCH_MAX_RUNS_LIMIT }) }, { additionalProperties: false });
/** Body of `POST /api/runs/batch`. */
export type CreateBatchBody = Static<typeof CreateBatchBody>;

/**
 * The envelope of {@link CreateBatchBody} with its items unchecked: the route checks it first, then each item
 * against `CreateRunBody`, so that an error names the item's index.
 */
export const CreateBatchEnvelope = Type.Object({ runs: Type.Array(Type.Unknown(), { minItems: 1, maxItems: BATCH_MAX_RUNS_LIMIT }) }, { additionalProperties: false });

/** A run of a batch: its id and status. */
export const BatchRunRef = Type.Object({ run_id: Type.String(), status: RunStatusSchema });

/** Response of `POST /api/runs/batch` (201): the batch id and its runs, in request order. */
export const CreateBatchResponse = Type.Object({ batch_id: Type.String(), runs: Type.Array(BatchRunRef) });
/** Response of `POST /api/runs/batch`. */
export type CreateBatchResponse = Static<typeof CreateBatchResponse>;

/** Runs of a batch per status (every status present, 0 when none). */
export const BatchCounts = Type.Object(Object.fromEntries(RUN_STATUSES.map((s) => [s, Type.Integer({ minimum: 0 })])) as Record<RunStatus, ReturnType<typeof Type.Integer>>);
/** Runs of a batch per status. */
export type BatchCounts = Record<RunStatus, number>;

/** A batch, as `GET /api/batches/:id` and `POST /api/batches/:id/cancel` answer it. `created_at`: ISO 8601 UTC. */
export const BatchView = Type.Object({
  batch_id: Type.String(),
  user_id: Type.String(),
  created_at: Type.String({ format: "date-time" }),
  /** Runs in the batch (a deleted run no longer counts). */
  total: Type.Integer({ minimum: 0 }),
  counts: BatchCounts,
  /** Run ids in request order. */
  run_ids: Type.Array(Type.String()),
  /** Every run is in a terminal status. */
  done: Type.Boolean(),
});
/** A batch, as the batch routes answer it. */
export type BatchView = Static<typeof BatchView>;

/** `event:` of a batch frame: a run of the batch changed status. */
export const BATCH_RUN_STATUS = "run.status";
/** `event:` of the last batch frame: every run of the batch is terminal; the stream ends after it. */
export const BATCH_DONE = "batch.done";

/**
 * One stored event of a batch's stream. `id` is the batch's own sequence (1, 2, 3 … without gaps), `ts` ISO 8601 UTC.
 * `run.status`: `{run_id, status, prev}` (`prev` null for the run's first status); `batch.done`: `{counts}`, once, last.
 */
export const BatchEventSchema = Type.Union([
  Type.Object({ id: Type.Integer({ minimum: 1 }), batch_id: Type.String(), ts: Type.String({ format: "date-time" }), type: Type.Literal(BATCH_RUN_STATUS), data: Type.Object({ run_id: Type.String(), status: RunStatusSchema, prev: Type.Union([RunStatusSchema, Type.Null()]) }) }),
  Type.Object({ id: Type.Integer({ minimum: 1 }), batch_id: Type.String(), ts: Type.String({ format: "date-time" }), type: Type.Literal(BATCH_DONE), data: Type.Object({ counts: BatchCounts }) }),
]);
/** One stored event of a batch's stream. */
export type BatchEvent =
  | { id: number; batch_id: string; ts: string; type: typeof BATCH_RUN_STATUS; data: { run_id: string; status: RunStatus; prev: RunStatus | null } }
  | { id: number; batch_id: string; ts: string; type: typeof BATCH_DONE; data: { counts: BatchCounts } };

/** Response of `GET /api/batches/:id/events` with `Accept: application/json`: stored events after `after`. */
export const BatchEventPageResponse = Type.Object({ events: Type.Array(BatchEventSchema), next_after: Type.Integer(), done: Type.Boolean() });

/**
 * Formats a batch event as an SSE frame, the same form as a run's (`src/protocol/sse.ts`): `id:` the batch
 * sequence, `event:` the type, `data:` the whole event as JSON.
 * @example formatBatchFrame(e) // 'id: 3\nevent: run.status\ndata: {"id":3,"batch_id":"bat_…",…}\n\n'
 */
export function formatBatchFrame(e: BatchEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}
