/**
 * The MCP resources of OpenRunner: a run's events and its artifacts, as
 * projections of the same API (`GET /api/runs/:id/events` as a JSON page,
 * `GET /api/runs/:id/artifacts[/*path]`). URIs:
 *
 * - `openrunner://runs/{run_id}/events` (`?after=N`): a page of stored events
 *   after N (default 0), `{events, next_after, done}`, `application/json`;
 * - `openrunner://runs/{run_id}/artifacts`: the artifact list, `application/json`;
 * - `openrunner://runs/{run_id}/artifacts/{path}`: one artifact (text for text
 *   and JSON types, else a base64 blob).
 */
import { NotFoundError, ValidationError } from "../errors.ts";
import type { McpBackend } from "./backend.ts";

/** Events in one `events` resource read. */
export const EVENTS_PAGE_LIMIT = 1000;

/** The resource templates `resources/templates/list` answers (RFC 6570 URI templates). */
export const RESOURCE_TEMPLATES = [
  { uriTemplate: "openrunner://runs/{run_id}/events{?after}", name: "run-events", title: "A run's events", description: "A page of the run's stored events after `after` (default 0): {events, next_after, done}; read again with after=next_after until done.", mimeType: "application/json" },
  { uriTemplate: "openrunner://runs/{run_id}/artifacts", name: "run-artifacts", title: "A run's artifacts", description: "The files a task run produced (paths relative to its workspace, sizes).", mimeType: "application/json" },
  { uriTemplate: "openrunner://runs/{run_id}/artifacts/{+path}", name: "run-artifact", title: "One artifact", description: "One listed artifact's content." },
] as const;

/** A listed resource (`resources/list`). */
export interface ResourceEntry {
  uri: string;
  name: string;
  title?: string;
  mimeType?: string;
}

/** The content of a read (`resources/read`): text or a base64 blob. */
export type ResourceContent = { uri: string; mimeType: string; text: string } | { uri: string; mimeType: string; blob: string };

/** Resources listed by `resources/list`: the events and artifacts of the caller's most recent runs. */
export async function listResources(backend: McpBackend, recent = 20): Promise<ResourceEntry[]> {
  const { runs } = await backend.listRuns({ limit: recent });
  return runs.flatMap((r) => [
    { uri: `openrunner://runs/${r.id}/events`, name: `${r.id} events`, title: `Events of ${r.agent} run ${r.id} (${r.status})`, mimeType: "application/json" },
    { uri: `openrunner://runs/${r.id}/artifacts`, name: `${r.id} artifacts`, title: `Artifacts of run ${r.id}`, mimeType: "application/json" },
  ]);
}

const URI = /^openrunner:\/\/runs\/([A-Za-z0-9_]{1,64})\/(events|artifacts)(?:\/([^?#]+))?(?:\?([^#]*))?$/;

/**
 * Reads one resource.
 * @throws ValidationError for a URI of none of the templates or a bad `after`; NotFoundError and the backend's errors
 */
export async function readResource(backend: McpBackend, uri: string): Promise<ResourceContent[]> {
  const m = URI.exec(uri);
  if (!m) throw new ValidationError("unknown resource URI (see resources/templates/list)", { uri });
  const [, runId, kind, rest, query] = m as unknown as [string, string, "events" | "artifacts", string | undefined, string | undefined];
  if (kind === "events") {
    if (rest !== undefined) throw new NotFoundError("resource");
    const raw = new URLSearchParams(query ?? "").get("after") ?? "0";
    if (!/^[0-9]{1,15}$/.test(raw)) throw new ValidationError("after must be a non-negative integer", { value: raw }, "invalid_last_event_id");
    const page = await backend.eventsPage(runId, Number(raw), EVENTS_PAGE_LIMIT);
    return [{ uri, mimeType: "application/json", text: JSON.stringify(page) }];
  }
  if (rest === undefined) return [{ uri, mimeType: "application/json", text: JSON.stringify(await backend.listArtifacts(runId)) }];
  const path = rest.split("/").map(decodeURIComponent).join("/");
  const { bytes, mimeType } = await backend.readArtifact(runId, path);
  return isTextual(mimeType)
    ? [{ uri, mimeType, text: new TextDecoder().decode(bytes) }]
    : [{ uri, mimeType, blob: Buffer.from(bytes).toString("base64") }];
}

function isTextual(mimeType: string): boolean {
  return /^text\/|^application\/(json|x-ndjson|xml)\b|\+json\b|\+xml\b/.test(mimeType);
}
