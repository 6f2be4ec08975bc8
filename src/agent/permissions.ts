/**
 * The contract between an agent actor that can ask before it acts (ACP's
 * `session/request_permission`) and the run's permission policy (docs/architecture.md#permissions,
 * `permission.request` / `permission.decision`). The actor calls
 * {@link PermissionGate.ask}; the gate (src/run/permissions.ts) writes the
 * `permission.request` event, applies the run's policy (`allow`, `deny`, or
 * `ask` the owner with a deadline), writes the `permission.decision` event and
 * resolves with the chosen option.
 */

/** One option the agent offers (ACP `PermissionOption`: optionId, name, kind). */
export interface PermissionOption {
  option_id: string;
  name: string;
  /** ACP kinds: `allow_once`, `allow_always`, `reject_once`, `reject_always`. */
  kind: string;
}

/** What the agent asks for. */
export interface PermissionAsk {
  /** The tool call the request is about, when the agent names one. */
  call_id?: string;
  /** Short name of the action (the tool call's title or kind). */
  name: string;
  /** The tool call's input as the agent sent it (raw). */
  input: unknown;
  options: PermissionOption[];
}

/** The answer handed back to the agent. `cancelled`: the run is ending (ACP `{outcome: "cancelled"}`). */
export type PermissionAnswer = { outcome: "selected"; option_id: string } | { outcome: "cancelled" };

/** Decides the permission requests of one run. */
export interface PermissionGate {
  /**
   * Records the request, decides it by policy, by the owner's answer or by the
   * deadline, records the decision, and resolves. Never rejects; resolves
   * `{outcome: "cancelled"}` when `signal` aborts (the run is ending) first.
   */
  ask(req: PermissionAsk, signal: AbortSignal): Promise<PermissionAnswer>;
}
