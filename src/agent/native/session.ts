/**
 * The native agent's sessions in the store (`native_sessions`, `src/store/native-session-repo.ts`):
 * a run starts a session of its own (`agent.session`); a follow-up run (`metadata.resume`,
 * which hands over the earlier run's session id) loads that conversation, repaired so that
 * every tool call has a result (a run that ended mid-tool left calls without one, which the
 * vendors refuse), and saves its own, longer conversation under its new session id.
 */
import { RunFailure } from "../../protocol/errors.ts";
import type { NativeSessionRepo } from "../../store/types.ts";
import { isTranscript, type TranscriptItem } from "./transcript.ts";

/** The session id of a run's conversation. */
export function sessionIdOf(runId: string): string {
  return `ns_${runId.replace(/^run_/, "")}`;
}

/**
 * Adds a result to every tool call that has none (pure): such calls were never run.
 * @example repairTranscript([{ role: "assistant", text: "", tool_calls: [{ id: "c1", name: "bash", input: {} }] }])
 * // … plus { role: "tool", results: [{ call_id: "c1", output: "not run: …", is_error: true }] }
 */
export function repairTranscript(items: readonly TranscriptItem[]): TranscriptItem[] {
  const out: TranscriptItem[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    out.push(item);
    if (item.role !== "assistant" || item.tool_calls.length === 0) continue;
    const next = items[i + 1];
    const answered = new Set(next?.role === "tool" ? next.results.map((r) => r.call_id) : []);
    const missing = item.tool_calls.filter((c) => !answered.has(c.id)).map((c) => ({ call_id: c.id, output: "not run: the earlier run ended before this call ran", is_error: true }));
    if (missing.length === 0) continue;
    if (next?.role === "tool") {
      out.push({ role: "tool", results: [...next.results, ...missing] });
      i++;
    } else out.push({ role: "tool", results: missing });
  }
  return out;
}

/**
 * Resolves the conversation of the session a run resumes (repaired), or an empty one.
 * @throws RunFailure `resume_unsupported` (rejects) when the store has no conversation for the session
 */
export async function loadConversation(repo: NativeSessionRepo, resumeSessionId: string | undefined): Promise<TranscriptItem[]> {
  if (!resumeSessionId) return [];
  const row = await repo.get(resumeSessionId);
  if (!row || !isTranscript(row.messages)) throw new RunFailure("resume_unsupported", `no stored conversation for session ${resumeSessionId}`);
  return repairTranscript(row.messages);
}

/**
 * Serializes a growing conversation as `JSON.stringify(items)` would, item by item: items
 * already serialized are not serialized again (the loop only appends; it never changes an
 * item it pushed). A conversation that is not the one seen before (shorter, another first
 * item) is serialized whole.
 * @example const json = transcriptSerializer(); json(t); t.push(item); json(t) // only `item` is serialized anew
 */
export function transcriptSerializer(): (items: readonly TranscriptItem[]) => string {
  let body = "";
  let count = 0;
  let first: TranscriptItem | undefined;
  return (items) => {
    if (items.length < count || items[0] !== first) {
      body = "";
      count = 0;
    }
    for (; count < items.length; count++) body += (count === 0 ? "" : ",") + JSON.stringify(items[count]);
    first = items[0];
    return `[${body}]`;
  };
}
