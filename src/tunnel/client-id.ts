/**
 * A stable tunnel client id: UUID v5 (RFC 4122 section 4.3, SHA-1 name-based)
 * of the host name, the machine id and the user name, so the same install
 * keeps the same id across restarts without storing anything.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";

/** The namespace of OpenRunner tunnel client ids (a fixed random UUID). */
export const CLIENT_ID_NAMESPACE = "7d0c6f1e-3b5a-4c8e-9f21-6a4e2b9d0c53";

/** Parses a UUID string into its 16 bytes. @throws Error when it is not a UUID. */
function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, "hex");
}

/**
 * UUID v5 of `name` in `namespace`: SHA-1 of namespace bytes + UTF-8 name, the
 * first 16 bytes, version nibble 5, RFC 4122 variant bits.
 * @example uuidV5("www.example.com", "6ba7b810-9dad-11d1-80b4-00c04fd430c8") // "2ed6657d-e927-568b-95e1-2665a8aea6a2"
 */
export function uuidV5(name: string, namespace: string): string {
  const hash = createHash("sha1").update(uuidBytes(namespace)).update(name, "utf8").digest();
  const b = hash.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The machine id (`/etc/machine-id`, then dbus's), or "" when neither exists. */
export function readMachineId(): string {
  for (const f of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    try {
      const id = readFileSync(f, "utf8").trim();
      if (id) return id;
    } catch {
      // try the next one
    }
  }
  return "";
}

/** The default client id of this machine and user. */
export function defaultClientId(parts: { hostname?: string; machineId?: string; user?: string } = {}): string {
  let user = parts.user;
  if (user === undefined) {
    try {
      user = os.userInfo().username;
    } catch {
      user = "";
    }
  }
  const name = [parts.hostname ?? os.hostname(), parts.machineId ?? readMachineId(), user].join("\n");
  return uuidV5(name, CLIENT_ID_NAMESPACE);
}
