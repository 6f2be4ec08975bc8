/**
 * The proxy's bus topics and payloads. This file adds them to the bus's
 * `BusEvents` (module augmentation of `src/bus/bus.ts`, so the bus need not
 * import the proxy); the proxy itself only needs a {@link ProxyPublish}
 * function, so it works with a `Bus` or without one (tests).
 */

/** Which proxy route answered: `/proxy/:port/*` ("port") or `/api/runs/:id/proxy/:port/*` ("run"). */
export type ProxyRoute = "port" | "run";

/**
 * A proxied request got its status: the target's, or the proxy's own refusal
 * (401, 403, 404, 409, 400) or upstream error (502, 504). Published once per
 * request (an upgrade counts once, with status 101 on success).
 */
export interface ProxyRequestEvent {
  route: ProxyRoute;
  /** Target port; null when the path did not name a valid one. */
  port: number | null;
  method: string;
  status: number;
  /** True for a WebSocket upgrade. */
  upgrade: boolean;
}

/** The target could not be reached or did not answer in time. */
export interface ProxyErrorEvent {
  route: ProxyRoute;
  port: number;
  /** `upstream_unavailable` (refused, reset), `upstream_timeout`, `upstream_aborted` (failed after the response started). */
  code: "upstream_unavailable" | "upstream_timeout" | "upstream_aborted";
  /** The system error code, e.g. `ECONNREFUSED`. */
  cause: string;
  upgrade: boolean;
}

/** The proxy topics, which `BusEvents` gets by the augmentation below. */
export interface ProxyBusEvents {
  "proxy.request": ProxyRequestEvent;
  "proxy.error": ProxyErrorEvent;
}

declare module "../bus/bus.ts" {
  /** The proxy's topics on the system bus. */
  interface BusEvents extends ProxyBusEvents {}
}

export type ProxyTopic = keyof ProxyBusEvents;

/** What the proxy needs of a bus: `bus.publish.bind(bus)` fits. */
export type ProxyPublish = <T extends ProxyTopic>(topic: T, payload: ProxyBusEvents[T]) => void;

/** A publish function that drops everything. */
export const dropProxyEvents: ProxyPublish = () => {};
