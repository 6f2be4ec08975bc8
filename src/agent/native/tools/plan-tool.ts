/**
 * The `plan` tool: the model states its plan, the whole list of steps with their status, each
 * time it changes; the loop emits it as a `plan` event (`../plan.ts`).
 */
import { Type } from "@sinclair/typebox";
import type { NativeTool } from "./types.ts";

const PlanInput = Type.Object(
  {
    entries: Type.Array(
      Type.Object(
        {
          content: Type.String({ minLength: 1, maxLength: 2000, description: "What the step does" }),
          status: Type.Union([Type.Literal("pending"), Type.Literal("in_progress"), Type.Literal("completed")]),
          priority: Type.Optional(Type.Union([Type.Literal("high"), Type.Literal("medium"), Type.Literal("low")])),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 100 },
    ),
  },
  { additionalProperties: false },
);

/** `plan`: replaces the run's plan with the given steps (emitted as a `plan` event). */
export const planTool: NativeTool<typeof PlanInput> = {
  name: "plan",
  description: "Records your plan: the whole list of steps, each `pending`, `in_progress` or `completed`. Call it first with the steps, then again whenever a step's status changes.",
  schema: PlanInput,
  mutating: false,
  async run(input, ctx) {
    ctx.setPlan(input.entries);
    const done = input.entries.filter((e) => e.status === "completed").length;
    return { output: `Plan recorded: ${input.entries.length} steps, ${done} completed.`, is_error: false };
  },
};
