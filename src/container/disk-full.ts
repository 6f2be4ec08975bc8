/**
 * Telling "the workspace's filesystem is full" apart from any other failure
 * of a containerized run. The agent sees only ENOSPC from its own writes;
 * OpenRunner sees a non-zero exit. After a failed run, the workspace's
 * filesystem is asked (`statfs`, from the host side of the bind mount) how
 * much an unprivileged writer may still use; when (almost) nothing is left
 * the failure is reported as `disk_full`, with the numbers.
 */
import { statfs } from "node:fs/promises";
import type { AgentOutcome } from "../agent/types.ts";

/** Below this many bytes available to unprivileged writers, a filesystem counts as full. */
export const DISK_FULL_BYTES = 64 * 1024;

/**
 * Returns `outcome`, or for a failed one whose workspace filesystem is full, the same failure with code
 * `disk_full`. Never throws (a filesystem that cannot be asked leaves the outcome as it is).
 * @example
 * const final = await explainDiskFull(parser.outcome(exit), ctx.cwd);
 */
export async function explainDiskFull(outcome: AgentOutcome, workspace: string): Promise<AgentOutcome> {
  if (outcome.kind !== "failed") return outcome;
  try {
    const s = await statfs(workspace);
    const available = s.bavail * s.bsize;
    if (available >= DISK_FULL_BYTES) return outcome;
    const total = s.blocks * s.bsize;
    return {
      ...outcome,
      code: "disk_full",
      message: `the workspace's filesystem is full (${available} of ${total} bytes available): ${outcome.message}`,
    };
  } catch {
    return outcome;
  }
}
