/**
 * The tunnel's bus topics and payloads. This file adds them to the bus's
 * `BusEvents` (module augmentation of `src/bus/bus.ts`, so the bus need not
 * import the tunnel); the tunnel itself only needs a {@link TunnelPublish}
 * function, so it works with a `Bus` or without one.
 */

/** A client registered with the relay (role "relay"), or the client is registered (role "client"). */
export interface TunnelConnectedEvent {
  role: "relay" | "client";
  client_id: string;
  /** The peer's address as `host:port`. */
  remote: string;
}

/** A registered control connection ended. */
export interface TunnelDisconnectedEvent {
  role: "relay" | "client";
  client_id: string;
  /** `closed`, `dead_peer`, `replaced`, `kicked`, `shutdown`, `frame_error`, `error`. */
  reason: string;
}

/** The relay's pool of a client changed. */
export interface TunnelPoolEvent {
  client_id: string;
  /** Idle proxy connections ready to pair. */
  idle: number;
  /** Proxy connections asked for and not yet arrived. */
  requested: number;
  /** Public connections waiting for a proxy connection. */
  waiting: number;
  /** Connections paired and piping now. */
  active: number;
  /** Configured pool size. */
  target: number;
}

/** The tunnel topics, which `BusEvents` gets by the augmentation below. */
export interface TunnelBusEvents {
  "tunnel.connected": TunnelConnectedEvent;
  "tunnel.disconnected": TunnelDisconnectedEvent;
  "tunnel.pool": TunnelPoolEvent;
}

declare module "../bus/bus.ts" {
  /** The tunnel's topics on the system bus. */
  interface BusEvents extends TunnelBusEvents {}
}

/** A tunnel topic. */
export type TunnelTopic = keyof TunnelBusEvents;

/**
 * Publishes one tunnel event. Non-generic on purpose, so that a `Bus` whose
 * `BusEvents` lists the tunnel topics fits as is: `publish: bus.publish.bind(bus)`.
 * The tunnel calls it through {@link typedPublisher}, which keeps topic and payload paired.
 */
export type TunnelPublish = (topic: TunnelTopic, payload: TunnelBusEvents[TunnelTopic]) => void;

/** A publish function that keeps each topic paired with its payload type. */
export type TypedTunnelPublish = <T extends TunnelTopic>(topic: T, payload: TunnelBusEvents[T]) => void;

/** Wraps an optional {@link TunnelPublish} (absent: events are dropped) as a {@link TypedTunnelPublish}. */
export function typedPublisher(publish?: TunnelPublish): TypedTunnelPublish {
  return publish ? (topic, payload) => publish(topic, payload) : () => {};
}
