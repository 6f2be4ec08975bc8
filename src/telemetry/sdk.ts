/**
 * The OpenTelemetry SDK side of telemetry, loaded (dynamic import from `index.ts`) only when
 * `telemetry.otlp_endpoint` is set: a tracer provider of its own (never registered globally) with a
 * batching OTLP/HTTP exporter (JSON over HTTP, `@opentelemetry/exporter-trace-otlp-http`), the run span
 * subscriber (`run-spans.ts`) and the tracing of `POST /api/runs` (`http-span.ts`).
 */
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, RandomIdGenerator, type IdGenerator } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { createRunRequestTracer } from "./http-span.ts";
import type { Telemetry, TelemetryOptions } from "./index.ts";
import { RunSpans } from "./run-spans.ts";

/**
 * Random ids, except for the next span after {@link ArmedIdGenerator.arm}: a run's span must have the ids
 * the engine already gave its agent (`TRACEPARENT`). Tracers start spans synchronously, so arming right
 * before `startSpan` is safe.
 */
export class ArmedIdGenerator implements IdGenerator {
  readonly #random = new RandomIdGenerator();
  #spanId: string | undefined;
  #traceId: string | undefined;

  /** The next span started gets `spanId`, and `traceId` if it is a root; `undefined` disarms. */
  arm(ids: { traceId: string; spanId: string } | undefined): void {
    this.#spanId = ids?.spanId;
    this.#traceId = ids?.traceId;
  }

  generateSpanId(): string {
    const id = this.#spanId;
    this.#spanId = undefined;
    return id ?? this.#random.generateSpanId();
  }

  generateTraceId(): string {
    const id = this.#traceId;
    this.#traceId = undefined;
    return id ?? this.#random.generateTraceId();
  }
}

/** Builds the exporter, provider and subscribers; see the module comment. */
export function createTelemetry(o: Omit<TelemetryOptions, "config"> & { config: NonNullable<TelemetryOptions["config"]>; endpoint: string }): Telemetry {
  const ids = new ArmedIdGenerator();
  const exporter = new OTLPTraceExporter({ url: o.endpoint, headers: { ...o.config.headers } });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: o.config.service_name, [ATTR_SERVICE_VERSION]: o.version }),
    idGenerator: ids,
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 })],
  });
  const tracer = provider.getTracer("openrunner", o.version);
  const runs = new RunSpans({
    tracer,
    armIds: (next) => ids.arm(next),
    bus: o.bus,
    store: o.store,
    log: o.log,
  });
  const traceRequest = createRunRequestTracer(tracer);
  let closing: Promise<void> | undefined;
  o.log.info("telemetry on: traces exported over OTLP/HTTP", { endpoint: o.endpoint });
  return {
    traceRequest,
    close: () =>
      (closing ??= (async () => {
        await runs.close(); // the events stored before are applied first
        await provider.forceFlush().catch((err: unknown) => o.log.warn("telemetry: final export failed", { err: String(err) }));
        await provider.shutdown().catch(() => {});
      })()),
  };
}
