/**
 * Webhook target checks, applied when a webhook is registered and again before
 * every delivery attempt (so a DNS answer that changed since — DNS rebinding —
 * cannot reach an internal address):
 *
 * 1. the URL is `http:` or `https:`, without user info;
 * 2. its host matches `webhooks.allowed_hosts` (exact name or IP literal,
 *    `*.example.com` for any subdomain, `*` for any host);
 * 3. the host is resolved (an IP literal stands for itself) and every address is
 *    public, unless `allow_private` is on or that address is listed in
 *    `allowed_hosts` as an IP literal.
 *
 * The caller then connects to the returned address itself (see `deliver.ts`),
 * never resolving the name a second time.
 */
import dns from "node:dns";
import { ValidationError } from "../errors.ts";
import { internalReason, parseIp, sameIp } from "./ip.ts";

/** The `webhooks` settings the checks use. */
export interface TargetPolicy {
  allowed_hosts: readonly string[];
  allow_private: boolean;
}

/** Resolves a host name to its addresses (`dns.promises.lookup` with `all: true` by default). */
export type LookupAll = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

/** A checked target: connect to `address`, send `Host: host`, verify TLS against `hostname`. */
export interface ResolvedTarget {
  url: URL;
  /** The URL's host name without brackets, lower case. */
  hostname: string;
  address: string;
  family: 4 | 6;
}

/** Stable error codes of refused targets (400 at registration; recorded on the attempt at delivery). */
export const TARGET_ERROR = {
  invalid: "webhook_url_invalid",
  notAllowed: "webhook_target_not_allowed",
  unresolvable: "webhook_target_unresolvable",
} as const;

const defaultLookup: LookupAll = async (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/**
 * Checks the URL's form and host against the allowlist, without DNS.
 * @throws ValidationError `webhook_url_invalid` (not an http(s) URL, user info) or
 *   `webhook_target_not_allowed` (host not listed)
 */
export function checkWebhookUrl(raw: string, policy: TargetPolicy): { url: URL; hostname: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError("url must be an absolute http or https URL", { field: "url" }, TARGET_ERROR.invalid);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ValidationError("url must use http or https", { field: "url", scheme: url.protocol }, TARGET_ERROR.invalid);
  if (url.username !== "" || url.password !== "") throw new ValidationError("url must not carry user info (credentials)", { field: "url" }, TARGET_ERROR.invalid);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
  if (hostname === "") throw new ValidationError("url must name a host", { field: "url" }, TARGET_ERROR.invalid);
  if (!hostAllowed(hostname, policy.allowed_hosts)) {
    throw new ValidationError(
      policy.allowed_hosts.length === 0 ? "webhooks are disabled: the server's webhooks.allowed_hosts is empty" : `host ${hostname} is not in the server's webhooks.allowed_hosts`,
      { field: "url", host: hostname },
      TARGET_ERROR.notAllowed,
    );
  }
  return { url, hostname };
}

/** True when `hostname` (lower case, no brackets) matches an allowlist entry. */
export function hostAllowed(hostname: string, allowed: readonly string[]): boolean {
  const isIp = parseIp(hostname) !== null;
  return allowed.some((raw) => {
    const entry = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
    if (entry === "*") return true;
    if (isIp) return parseIp(entry) !== null && sameIp(entry, hostname);
    if (entry.startsWith("*.")) return hostname.endsWith(entry.slice(1)) && hostname.length > entry.length - 1;
    return entry === hostname;
  });
}

/**
 * Full check: {@link checkWebhookUrl}, then resolves the host and checks every
 * address; returns the first one to connect to.
 * @throws ValidationError `webhook_url_invalid`, `webhook_target_not_allowed`
 *   (an internal address; `details.reason` says which kind) or `webhook_target_unresolvable`
 */
export async function resolveWebhookTarget(raw: string, policy: TargetPolicy, lookup: LookupAll = defaultLookup): Promise<ResolvedTarget> {
  const { url, hostname } = checkWebhookUrl(raw, policy);
  let addresses: Array<{ address: string; family: number }>;
  if (parseIp(hostname)) addresses = [{ address: hostname, family: hostname.includes(":") ? 6 : 4 }];
  else {
    try {
      addresses = await lookup(hostname);
    } catch (err) {
      throw new ValidationError(`host ${hostname} does not resolve`, { field: "url", host: hostname, cause: (err as NodeJS.ErrnoException).code ?? "lookup_failed" }, TARGET_ERROR.unresolvable);
    }
    if (addresses.length === 0) throw new ValidationError(`host ${hostname} does not resolve`, { field: "url", host: hostname }, TARGET_ERROR.unresolvable);
  }
  for (const { address } of addresses) {
    const reason = internalReason(address);
    if (reason === null || policy.allow_private) continue;
    if (policy.allowed_hosts.some((h) => sameIp(h.trim().replace(/^\[(.*)\]$/, "$1"), address))) continue;
    throw new ValidationError(`host ${hostname} resolves to a ${reason} address, which webhooks may not reach`, { field: "url", host: hostname, reason }, TARGET_ERROR.notAllowed);
  }
  const first = addresses[0]!;
  return { url, hostname, address: first.address, family: first.family === 6 ? 6 : 4 };
}
