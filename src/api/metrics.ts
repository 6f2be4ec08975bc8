/**
 * Prometheus metrics on a per-server prom-client Registry (never the global
 * one, so two servers in one process — tests — do not collide). Run and SSE
 * figures come from the bus; HTTP latency from the request-context middleware.
 */
import { Router } from "@koa/router";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Bus } from "../bus/bus.ts";
import { RUN_STATUSES } from "../protocol/events.ts";
import type { AppState, RouteModule } from "./context.ts";

/** Labels of one observed HTTP request. `route` is the matched route pattern (`/api/runs/:id`) or `unmatched`. */
export interface HttpObservation {
  method: string;
  route: string;
  status: number;
}

/** The server's metrics. Create one per server with {@link createMetrics}. */
export interface Metrics {
  /** The registry `/metrics` exposes. */
  readonly registry: Registry;
  /** Records one HTTP request's duration, seconds. */
  observeHttp(labels: HttpObservation, seconds: number): void;
  /** Unsubscribes from the bus (the registry stays readable). Safe to call twice. */
  close(): void;
}

/**
 * Creates the registry and subscribes to the bus:
 * - `openrunner_runs{status}` gauge: runs in each status, from `run.status`
 *   transitions seen since this process started (terminal statuses accumulate);
 * - `openrunner_run_events_stored_total` counter, from `run.events.stored`;
 * - `openrunner_sse_subscribers` gauge, from `sse.subscribers`;
 * - `openrunner_http_request_duration_seconds{method,route,status}` histogram;
 * - prom-client's default process metrics (CPU, memory, event loop, GC).
 *
 * `registry` is the one to fill (the engine's, which also holds the webhook
 * dispatcher's counters); a new one when absent.
 */
export function createMetrics(bus: Bus, registry: Registry = new Registry()): Metrics {
  collectDefaultMetrics({ register: registry });
  const runs = new Gauge({ name: "openrunner_runs", help: "Runs by status (transitions seen since start).", labelNames: ["status"], registers: [registry] });
  for (const s of RUN_STATUSES) runs.set({ status: s }, 0);
  const eventsStored = new Counter({ name: "openrunner_run_events_stored_total", help: "Run events committed to the store.", registers: [registry] });
  const sse = new Gauge({ name: "openrunner_sse_subscribers", help: "Open SSE subscriptions.", registers: [registry] });
  const http = new Histogram({
    name: "openrunner_http_request_duration_seconds",
    help: "HTTP request duration until the handler returned, seconds (streamed responses such as SSE are not observed).",
    labelNames: ["method", "route", "status"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const tunnels = new Gauge({ name: "openrunner_tunnel_connections", help: "Registered tunnel control connections (relay: clients; client: this process).", labelNames: ["role"], registers: [registry] });
  const tunnelPool = new Gauge({ name: "openrunner_tunnel_pool", help: "Relay pool per tunnel client: idle, requested, waiting and active proxy connections.", labelNames: ["client_id", "state"], registers: [registry] });
  const proxyReqs = new Counter({ name: "openrunner_proxy_requests_total", help: "Proxied requests by route and status.", labelNames: ["route", "status", "upgrade"], registers: [registry] });
  const proxyErrs = new Counter({ name: "openrunner_proxy_errors_total", help: "Proxy upstream errors by code.", labelNames: ["route", "code"], registers: [registry] });
  const unsubscribe = [
    bus.on("run.status", (e) => {
      if (e.prev) runs.dec({ status: e.prev });
      runs.inc({ status: e.status });
    }),
    bus.on("run.events.stored", (e) => eventsStored.inc(e.count)),
    bus.on("sse.subscribers", (e) => sse.inc(e.delta)),
    bus.on("proxy.request", (e) => proxyReqs.inc({ route: e.route, status: String(e.status), upgrade: String(e.upgrade) })),
    bus.on("proxy.error", (e) => proxyErrs.inc({ route: e.route, code: e.code })),
    bus.on("tunnel.connected", (e) => tunnels.inc({ role: e.role })),
    bus.on("tunnel.disconnected", (e) => tunnels.dec({ role: e.role })),
    bus.on("tunnel.pool", (e) => {
      for (const state of ["idle", "requested", "waiting", "active"] as const) tunnelPool.set({ client_id: e.client_id, state }, e[state]);
    }),
  ];
  return {
    registry,
    observeHttp(labels, seconds) {
      http.observe({ method: labels.method, route: labels.route, status: String(labels.status) }, seconds);
    },
    close() {
      for (const off of unsubscribe.splice(0)) off();
    },
  };
}

/**
 * `GET /metrics` in the Prometheus text format. Deliberately unauthenticated,
 * as Prometheus scrapers expect; it reveals counts and process figures only.
 * Restrict it at the network level if that matters (listen on 127.0.0.1).
 */
export function createMetricsRoutes(deps: { metrics: Metrics }): RouteModule {
  const router = new Router<AppState>();
  router.get("/metrics", async (ctx) => {
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  return {
    router,
    operations: [
      {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text exposition format, unauthenticated)",
        tags: ["system"],
        auth: false,
        responses: { 200: { description: "Metrics in the Prometheus text format (text/plain)" } },
      },
    ],
  };
}
