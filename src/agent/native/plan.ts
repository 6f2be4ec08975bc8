/**
 * The native agent's plan (`metadata.plan: true`): a list of steps with a status, kept for the
 * run and emitted as the `plan` event of the union (`{entries: [{content, status, priority?}]}`,
 * the shape of ACP's `plan` update). The model sets it with the `plan` tool, first in the
 * planning turn, then as it works; the final plan is emitted once more when the run ends.
 */
import type { RunEventInput } from "../../protocol/events.ts";

/** A step's status, as ACP names them. */
export type PlanStatus = "pending" | "in_progress" | "completed";

/** One step of the plan. */
export interface PlanEntry {
  content: string;
  status: PlanStatus;
  priority?: "high" | "medium" | "low";
}

/**
 * The `plan` event of a plan.
 * @param final true for the plan as it stands when the run ends (`raw.final`)
 */
export function planEventOf(entries: readonly PlanEntry[], final = false): RunEventInput {
  return { type: "plan", data: { entries: entries.map((e) => ({ ...e })), ...(final ? { raw: { final: true } } : {}) } };
}

/** The text of the planning instruction added to the first request of a planned run. */
export const PLANNING_INSTRUCTION =
  "Before you change anything, call the `plan` tool once with the steps you will take (each with status `pending`). " +
  "Then carry them out; call `plan` again whenever a step starts (`in_progress`) or is done (`completed`), always with the whole list.";
