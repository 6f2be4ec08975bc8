/**
 * Where `/api/runs/:id/proxy/:port/*` goes for a docker run: the IPv4 address of the
 * container the run's agent runs in, as the engine reports it (`NetworkSettings`), on
 * `docker.network`. The address never comes from the request, so no header or path can
 * steer the proxy elsewhere; any port of the run's own container may be reached.
 */
import type { ContainerClient } from "../container/types.ts";
import { ProxyUnavailableError, type ProxyRunView } from "./gateway.ts";

/** Options of {@link createContainerAddressLookup}. */
export interface ContainerAddressOptions {
  client: () => ContainerClient;
  /** The container of a live run (`RunManager.liveContainerId`); undefined when it has none now. */
  liveContainerId: (runId: string) => string | undefined;
  /** `docker.network`; absent means `none`. */
  network?: string;
  /** How long an address is reused without asking the engine, ms (default 2000). */
  cacheMs?: number;
}

/**
 * A lookup of a docker run's container address for the proxy gateway (`containerAddress`).
 * @throws ProxyUnavailableError (409 `proxy_unavailable`) with no network configured, when the
 *   run has no running container now, or when the container has no address on the network
 * @example
 * const containerAddress = createContainerAddressLookup({ client, liveContainerId: (id) => manager.liveContainerId(id), network: "bridge" });
 */
export function createContainerAddressLookup(o: ContainerAddressOptions): (run: ProxyRunView) => Promise<string> {
  const cacheMs = o.cacheMs ?? 2000;
  const cache = new Map<string, { address: string; until: number }>();
  return async (run) => {
    if (!o.network) throw new ProxyUnavailableError();
    const id = o.liveContainerId(run.id);
    if (!id) throw new ProxyUnavailableError("the run is not running in a container now, so there is nothing to proxy to");
    const hit = cache.get(id);
    if (hit && hit.until > Date.now()) return hit.address;
    const state = await o.client().get(id).inspect().catch(() => undefined);
    if (!state?.running) throw new ProxyUnavailableError("the run's container is not running");
    const address = state.ipAddresses[o.network] ?? Object.values(state.ipAddresses)[0];
    if (!address || !/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) throw new ProxyUnavailableError(`the run's container has no IPv4 address on network ${o.network}`);
    if (cache.size >= 1024) cache.clear();
    cache.set(id, { address, until: Date.now() + cacheMs });
    return address;
  };
}
