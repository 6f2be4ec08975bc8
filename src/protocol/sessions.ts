/**
 * Schemas of the sessions API (`GET /api/sessions`, `GET /api/sessions/:agent/:session_id`): the sessions
 * agent CLIs left in the caller's agent homes (`src/agent/sessions/`). Part of the contract layer.
 */
import { Type, type Static } from "@sinclair/typebox";

/** The agents whose stored sessions can be listed. */
export const SESSION_AGENTS = ["claude_code", "codex", "gemini", "opencode"] as const;
/** One of {@link SESSION_AGENTS}. */
export type SessionAgent = (typeof SESSION_AGENTS)[number];

/** One stored session. Times ISO 8601 UTC (from the file's own records). */
export const SessionView = Type.Object({
  agent: Type.String(),
  session_id: Type.String(),
  /** The first prompt (cut at 200 characters), or the agent's own summary. */
  title: Type.String(),
  /** The working directory the agent recorded. */
  cwd: Type.Union([Type.String(), Type.Null()]),
  started_at: Type.Union([Type.String(), Type.Null()]),
  updated_at: Type.Union([Type.String(), Type.Null()]),
  /** Prompts the session answered. */
  turns: Type.Integer({ minimum: 0 }),
  /** The caller's latest ended run whose agent home holds the session: `metadata.resume_session` resumes there. */
  run_id: Type.String(),
});
export type SessionView = Static<typeof SessionView>;

export const SessionListQuery = Type.Object(
  { agent: Type.Union(SESSION_AGENTS.map((a) => Type.Literal(a))) },
  { additionalProperties: false },
);

export const SessionListResponse = Type.Object({ sessions: Type.Array(SessionView) });
export type SessionListResponse = Static<typeof SessionListResponse>;

/** A session and its history as run event inputs (no ids: they are not a run's events). */
export const SessionDetailResponse = Type.Object({
  session: SessionView,
  events: Type.Array(Type.Object({ type: Type.String(), data: Type.Unknown() })),
  /** The user's prompts, in order (no event type carries them). */
  prompts: Type.Array(Type.String()),
});

export type SessionDetailResponse = Static<typeof SessionDetailResponse>;

/** True for an agent in {@link SESSION_AGENTS}. */
export function isSessionAgent(agent: string): agent is SessionAgent {
  return (SESSION_AGENTS as readonly string[]).includes(agent);
}
