/**
 * OpenTelemetry traces of runs (README "OpenTelemetry"): off unless `telemetry.otlp_endpoint` is set, and
 * then free of cost when off: {@link startTelemetry} returns undefined without loading the SDK or
 * subscribing to anything. When on, `sdk.ts` (loaded here, dynamically) builds the span tree of every
 * run from its event stream (`run-spans.ts`) and a server span per `POST /api/runs` (`http-span.ts`), and
 * exports them over OTLP/HTTP. Metrics stay on Prometheus (`/metrics`).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Bus } from "../bus/bus.ts";
import type { Config } from "../config/schema.ts";
import type { Log } from "../log.ts";
import type { Store } from "../store/types.ts";

/** Input of {@link startTelemetry}. */
export interface TelemetryOptions {
  config: Config["telemetry"] | undefined;
  bus: Bus;
  store: Pick<Store, "runs" | "events" | "users">;
  log: Log;
  /** The product version (`service.version`). */
  version: string;
}

/** Telemetry that is on. */
export interface Telemetry {
  /** Call for every HTTP request before the app sees it: `POST /api/runs` gets a server span (see `http-span.ts`). */
  traceRequest(req: IncomingMessage, res: ServerResponse): void;
  /** Ends the spans of live runs, exports what is buffered, shuts the exporter down. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts telemetry when `config.otlp_endpoint` is set; otherwise undefined (nothing loaded, nothing subscribed).
 * @example const telemetry = await startTelemetry({ config: config.telemetry, bus, store, log, version });
 */
export async function startTelemetry(o: TelemetryOptions): Promise<Telemetry | undefined> {
  const config = o.config;
  if (!config?.otlp_endpoint) return undefined;
  const { createTelemetry } = await import("./sdk.ts");
  return createTelemetry({ ...o, config, log: o.log.getSubLogger({ name: "telemetry" }), endpoint: config.otlp_endpoint });
}
