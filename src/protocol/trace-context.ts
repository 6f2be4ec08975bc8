/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/, the `traceparent` header, version `00`) for
 * runs: the header `POST /api/runs` accepts (stored as `metadata.traceparent`), and the span context of a
 * run's own span, derived from its id so that the run engine (which hands it to the agent as
 * `TRACEPARENT`) and the telemetry subscriber (which creates the span, `src/telemetry/`) agree without
 * talking to each other. Pure, no imports: part of the contract layer.
 */

/** The `traceparent` pattern (version 00, lowercase hex): `00-<trace id: 32>-<parent span id: 16>-<flags: 2>`. */
export const TRACEPARENT_PATTERN = "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$";
const TRACEPARENT_RE = new RegExp(TRACEPARENT_PATTERN);

/** A span context as `traceparent` carries it: ids in lowercase hex, `flags` the trace-flags byte (bit 0: sampled). */
export interface TraceParent {
  traceId: string;
  spanId: string;
  flags: number;
}

/**
 * Parses a `traceparent` value; undefined when it is not version 00 of the format, or has the all-zero trace or span id
 * (invalid per the specification).
 * @example parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") // {traceId: "4bf9…", spanId: "00f0…", flags: 1}
 */
export function parseTraceparent(value: string | undefined): TraceParent | undefined {
  const v = value?.trim().toLowerCase();
  if (!v || !TRACEPARENT_RE.test(v)) return undefined;
  const [, traceId, spanId, flags] = v.split("-") as [string, string, string, string];
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

/** The `traceparent` value of a span context. */
export function formatTraceparent(t: TraceParent): string {
  return `00-${t.traceId}-${t.spanId}-${(t.flags & 0xff).toString(16).padStart(2, "0")}`;
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** The 16 bytes of a ULID (26 Crockford base-32 characters, 128 bits) as 32 hex digits; undefined for another string. */
function ulidHex(ulid: string): string | undefined {
  if (!/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i.test(ulid)) return undefined;
  let n = 0n;
  for (const ch of ulid.toUpperCase()) n = (n << 5n) | BigInt(CROCKFORD.indexOf(ch));
  return n.toString(16).padStart(32, "0");
}

/**
 * The span context of a run's span: the parent's trace (or, for a run without a parent, a trace id made of the run
 * id's ULID), and a span id made of the ULID's last 64 (random) bits; sampled unless the parent says otherwise.
 * Undefined for a run id that is not `run_<ULID>`.
 * @example runSpanContext("run_01JD0000000000000000000000") // {traceId: "0192…", spanId: "…", flags: 1}
 */
export function runSpanContext(runId: string, parent?: TraceParent): TraceParent | undefined {
  const hex = ulidHex(runId.replace(/^run_/, ""));
  if (!hex) return undefined;
  const spanId = /^0+$/.test(hex.slice(16)) ? `${hex.slice(16, 31)}1` : hex.slice(16);
  return { traceId: parent?.traceId ?? hex, spanId, flags: parent ? parent.flags : 1 };
}
