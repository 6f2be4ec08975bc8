/**
 * Run helpers for end-to-end tests against a spawned server ({@link TestServer}): create a run,
 * read its event stream (to the end, or until an event), describe events for assertion
 * messages, the user's workspaces folder, and a temporary configuration file.
 */
import assert from "node:assert/strict";
import { mkdtempSync, realpathSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TERMINAL_EVENT_TYPES } from "../../src/protocol/events.ts";
import type { TestServer } from "./spawn-server.ts";
import { readSse } from "./sse.ts";

/**
 * A run event as the SSE stream and the events API carry it, loosely typed on purpose: tests read
 * `data` fields of many event types without narrowing (the exact shapes are checked by
 * test/unit/events-schema.test.ts against the protocol's `RunEvent` union).
 */
export type Ev = { id: number; run_id: string; type: string; ts: string; data: Record<string, any> };

/** The terminal event types of a run (the protocol's own list). */
export const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_EVENT_TYPES);

/** One line per event (`<id> <type> <data, cut at width>`), for assertion messages. */
export function describeEvents(evs: readonly Ev[], width = 300): string {
  return evs.map((e) => `${e.id} ${e.type} ${JSON.stringify(e.data).slice(0, width)}`).join("\n");
}

/** `POST /api/runs` with `input.text` and `metadata` as given; asserts 201 and returns the run id. */
export async function createRun(s: TestServer, token: string, text: string, metadata: Record<string, unknown>): Promise<string> {
  const res = await s.api("/api/runs", { method: "POST", token, json: { input: { text }, metadata } });
  assert.equal(res.status, 201, `POST /api/runs (${String(metadata.agent_type)}): ${res.status} ${await res.clone().text()}`);
  return ((await res.json()) as { run_id: string }).run_id;
}

/**
 * Reads the run's event stream to its end (asserted: the stream ends after the terminal event).
 * @param opts.lastEventId resume after that event (`Last-Event-ID`)
 */
export async function allEvents(s: TestServer, token: string, runId: string, timeoutMs: number, opts: { lastEventId?: number } = {}): Promise<Ev[]> {
  const out = await readSse(`${s.url}/api/runs/${runId}/events`, { token, timeoutMs, ...(opts.lastEventId !== undefined ? { lastEventId: opts.lastEventId } : {}) });
  assert.ok(out.ended, `stream of ${runId} should end after the terminal event`);
  return out.messages.map((m) => JSON.parse(m.data) as Ev);
}

/** Reads the live stream until `pred` holds for an event (asserted); returns the events so far. */
export async function eventsUntil(s: TestServer, token: string, runId: string, pred: (e: Ev) => boolean, timeoutMs = 60_000): Promise<Ev[]> {
  const out = await readSse(`${s.url}/api/runs/${runId}/events`, { token, timeoutMs, stopAfter: (m) => pred(JSON.parse(m.data) as Ev) });
  const events = out.messages.map((m) => JSON.parse(m.data) as Ev);
  assert.ok(events.some(pred), `expected event not seen: ${JSON.stringify(events)}`);
  return events;
}

/** {@link createRun}, then {@link allEvents}: the run id and all its events. */
export async function runToEnd(s: TestServer, token: string, text: string, metadata: Record<string, unknown>, timeoutMs: number): Promise<{ id: string; evs: Ev[] }> {
  const id = await createRun(s, token, text, metadata);
  return { id, evs: await allEvents(s, token, id, timeoutMs) };
}

/** The logged-in user's workspaces folder on the host (`<data>/workspaces/<user id>`, symlinks resolved). */
export async function userWorkspaces(s: TestServer, token: string): Promise<string> {
  const me = (await (await s.api("/api/auth/me", { token })).json()) as { id: string };
  return path.join(realpathSync(s.dataDir), "workspaces", me.id);
}

/**
 * Writes a configuration file: `config` as JSON (valid YAML), or YAML text as given.
 * @param file the file's path; default `openrunner.yaml` in a new temporary folder
 * @returns the file's path (remove it, or its folder for the default, when done)
 */
export function writeConfig(config: Record<string, unknown> | string, file = path.join(mkdtempSync(path.join(os.tmpdir(), "openrunner-config-")), "openrunner.yaml")): string {
  writeFileSync(file, typeof config === "string" ? config : JSON.stringify(config, null, 2));
  return file;
}
