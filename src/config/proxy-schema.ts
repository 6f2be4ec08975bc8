/**
 * The `proxy` configuration section (docs/architecture.md#configuration, docs/architecture.md#port-proxy) and its port
 * list parser. `ConfigSchema` embeds {@link ProxyConfigSchema}
 * as `proxy`; the loader normalises `allowed_ports` with {@link normalizeAllowedPorts}
 * after validation.
 *
 * Environment: `OPENRUNNER_PROXY_ALLOWED_PORTS="5173,8000-8100"` (the only
 * proxy setting with an environment name; the rest are file-only).
 * Default: no ports, so `/proxy/:port/*` is off until configured.
 *
 * @example
 * ```yaml
 * proxy:
 *   allowed_ports: "5173,8000-8100"   # or [5173, 8000]
 *   timeout_ms: 30000
 * ```
 */
import { Type, type Static } from "@sinclair/typebox";
import { ConfigError } from "../errors.ts";

/** Most ports one list may name (a range counts each port). */
export const MAX_ALLOWED_PORTS = 4096;

const PORT_LIST_PATTERN = "^\\s*$|^\\s*[0-9]{1,5}(\\s*-\\s*[0-9]{1,5})?(\\s*,\\s*[0-9]{1,5}(\\s*-\\s*[0-9]{1,5})?)*\\s*$";

export const ProxyConfigSchema = Type.Object(
  {
    /**
     * Local ports `/proxy/:port/*` (and host runs' `/api/runs/:id/proxy/:port/*`) may reach on
     * 127.0.0.1: `"5173,8000-8100"` or `[5173, 8000]`. Env `OPENRUNNER_PROXY_ALLOWED_PORTS`. Default none.
     */
    allowed_ports: Type.Union(
      [
        Type.String({ pattern: PORT_LIST_PATTERN, description: 'comma-separated ports and ranges, e.g. "5173,8000-8100"' }),
        Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: MAX_ALLOWED_PORTS }),
      ],
      { default: "" },
    ),
    /** How long the target may take to start answering (no byte at all), ms; then 504 `upstream_timeout`. */
    timeout_ms: Type.Integer({ minimum: 100, maximum: 3600000, default: 30000 }),
    /** Default lifetime of a preview link (`POST /api/runs/:id/preview-links` without `ttl_secs`). */
    preview_ttl_secs: Type.Integer({ minimum: 10, maximum: 604800, default: 3600 }),
    /** Most idle keep-alive connections kept per target port. */
    max_idle_sockets: Type.Integer({ minimum: 1, maximum: 4096, default: 256 }),
  },
  { additionalProperties: false, default: {} },
);

/** The validated `proxy` section (`allowed_ports` still in either form). */
export type ProxyConfig = Static<typeof ProxyConfigSchema>;

/**
 * Parses a port list such as `"5173,8000-8100"` into sorted unique ports.
 * Empty (or only spaces) means none.
 * @throws ConfigError naming `proxy.allowed_ports`, the expected form and the value, for any
 *   malformed item, a port outside 1-65535, a reversed range, or more than {@link MAX_ALLOWED_PORTS} ports.
 * @example parsePortList("5173, 8000-8002") // [5173, 8000, 8001, 8002]
 */
export function parsePortList(str: string, setting = "proxy.allowed_ports"): number[] {
  if (typeof str !== "string") throw new ConfigError(setting, 'a string like "5173,8000-8100"', str);
  if (str.trim() === "") return [];
  const ports = new Set<number>();
  for (const raw of str.split(",")) {
    const item = raw.trim();
    const m = /^([0-9]{1,5})(?:\s*-\s*([0-9]{1,5}))?$/.exec(item);
    if (!m) throw new ConfigError(setting, `comma-separated ports or ranges (1-65535), e.g. "5173,8000-8100"; bad item ${JSON.stringify(item)}`, str);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535) throw new ConfigError(setting, `ports from 1 to 65535; bad item ${JSON.stringify(item)}`, str);
    if (hi < lo) throw new ConfigError(setting, `ranges written low-high; bad item ${JSON.stringify(item)}`, str);
    for (let p = lo; p <= hi; p++) ports.add(p);
    if (ports.size > MAX_ALLOWED_PORTS) throw new ConfigError(setting, `at most ${MAX_ALLOWED_PORTS} ports`, str);
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * Either form of `allowed_ports` as sorted unique ports.
 * @throws ConfigError for a malformed string or an array item that is not an integer 1-65535.
 */
export function normalizeAllowedPorts(value: string | readonly number[]): number[] {
  if (typeof value === "string") return parsePortList(value);
  if (!Array.isArray(value)) throw new ConfigError("proxy.allowed_ports", 'a string like "5173,8000-8100" or an array of ports', value);
  for (const p of value) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new ConfigError("proxy.allowed_ports", "integers from 1 to 65535", value);
  }
  if (value.length > MAX_ALLOWED_PORTS) throw new ConfigError("proxy.allowed_ports", `at most ${MAX_ALLOWED_PORTS} ports`, value);
  return [...new Set(value)].sort((a, b) => a - b);
}
