/**
 * A server span for each `POST /api/runs`, wrapped around the request at the `node:http` level (before Koa):
 * its parent is the caller's W3C `traceparent` header, if valid, and the header is replaced by the span's
 * own context, so the runs route stores that as the run's `metadata.traceparent` and the run's span
 * becomes the child of the request that created it. The run id comes from the response's `Location`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_URL_PATH } from "@opentelemetry/semantic-conventions";
import { formatTraceparent, parseTraceparent } from "../protocol/trace-context.ts";

/** The request tracer: call it for every request before the app handles it; it ignores all but `POST /api/runs`. */
export type RequestTracer = (req: IncomingMessage, res: ServerResponse) => void;

/** Builds the {@link RequestTracer} on `tracer`. */
export function createRunRequestTracer(tracer: Tracer): RequestTracer {
  return (req, res) => {
    const pathname = (req.url ?? "/").split("?")[0];
    if (req.method !== "POST" || pathname !== "/api/runs") return;
    const header = req.headers.traceparent;
    const parent = parseTraceparent(Array.isArray(header) ? header[0] : header);
    const parentCtx = parent ? trace.setSpanContext(ROOT_CONTEXT, { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.flags, isRemote: true }) : ROOT_CONTEXT;
    const span = tracer.startSpan("POST /api/runs", { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: "POST", [ATTR_URL_PATH]: pathname, [ATTR_HTTP_ROUTE]: "/api/runs" } }, parentCtx);
    const sc = span.spanContext();
    req.headers.traceparent = formatTraceparent({ traceId: sc.traceId, spanId: sc.spanId, flags: sc.traceFlags });
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.statusCode);
      const location = res.getHeader("location");
      const runId = typeof location === "string" ? /^\/api\/runs\/([^/?]+)$/.exec(location)?.[1] : undefined;
      if (runId) span.setAttribute("openrunner.run.id", runId);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.once("finish", finish);
    res.once("close", finish);
  };
}
