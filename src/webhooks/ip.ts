/**
 * IP address parsing and classification for webhook targets: which addresses
 * are internal (loopback, private, link-local, unique-local, IPv4-mapped,
 * reserved …) and may not be delivered to unless the configuration allows it.
 * Ranges: IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and updates).
 */
import net from "node:net";

/** An address as bytes: 4 (IPv4) or 16 (IPv6). */
export type IpBytes = Uint8Array;

/**
 * Parses an IPv4 or IPv6 literal (IPv6 without brackets; an embedded dotted
 * quad such as `::ffff:127.0.0.1` is accepted). Zone ids (`fe80::1%eth0`) are
 * not accepted. Returns null for anything else.
 */
export function parseIp(text: string): IpBytes | null {
  if (net.isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!net.isIPv6(text) || text.includes("%")) return null;
  let s = text;
  const tail: number[] = [];
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (quad) {
    tail.push(...quad[1]!.split(".").map(Number));
    s = `${s.slice(0, quad.index)}0:0`; // placeholder groups, replaced below
  }
  const [head, rest] = s.includes("::") ? s.split("::") : [s, undefined];
  const groups = (p: string | undefined) => (p ? p.split(":").filter((g) => g !== "") : []);
  const h = groups(head);
  const t = groups(rest);
  const all = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  if (all.length !== 8) return null;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

/** True when the first `bits` bits of `a` and `prefix` agree. */
function inPrefix(a: IpBytes, prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if ((a[byte]! & mask) !== ((prefix[byte] ?? 0) & mask)) return false;
  }
  return true;
}

type Range = [prefix: number[], bits: number, reason: string];

const V4: Range[] = [
  [[0], 8, "unspecified"],
  [[10], 8, "private"],
  [[100, 64], 10, "shared (CGNAT)"],
  [[127], 8, "loopback"],
  [[169, 254], 16, "link-local"],
  [[172, 16], 12, "private"],
  [[192, 0, 0], 24, "reserved"],
  [[192, 0, 2], 24, "documentation"],
  [[192, 88, 99], 24, "reserved"],
  [[192, 168], 16, "private"],
  [[198, 18], 15, "benchmarking"],
  [[198, 51, 100], 24, "documentation"],
  [[203, 0, 113], 24, "documentation"],
  [[224], 4, "multicast"],
  [[240], 4, "reserved"],
];

const V6: Range[] = [
  [[], 128, "unspecified"],
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback"],
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96, "IPv4-mapped"],
  [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible"],
  [[0, 0x64, 0xff, 0x9b], 32, "NAT64"],
  [[1, 0, 0, 0, 0, 0, 0, 0], 64, "discard"],
  [[0x20, 0x01, 0, 0], 23, "reserved (IETF protocol assignments, Teredo)"],
  [[0x20, 0x01, 0x0d, 0xb8], 32, "documentation"],
  [[0x20, 0x02], 16, "6to4"],
  [[0xfc], 7, "unique-local"],
  [[0xfe, 0x80], 10, "link-local"],
  [[0xfe, 0xc0], 10, "site-local"],
  [[0xff], 8, "multicast"],
];

/**
 * Why an address is not a public unicast address (e.g. `"loopback"`,
 * `"private"`, `"IPv4-mapped"`), or null when it is public. Anything not
 * parseable counts as internal (`"invalid"`).
 * @example internalReason("127.0.0.1") // "loopback"; internalReason("93.184.216.34") // null
 */
export function internalReason(address: string): string | null {
  const a = parseIp(address);
  if (!a) return "invalid";
  for (const [prefix, bits, reason] of a.length === 4 ? V4 : V6) if (inPrefix(a, prefix, bits)) return reason;
  if (a.length === 4 && a.every((b) => b === 255)) return "broadcast";
  return null;
}

/** True when two literals name the same address (`::1` and `0:0::1`). */
export function sameIp(a: string, b: string): boolean {
  const x = parseIp(a);
  const y = parseIp(b);
  return x !== null && y !== null && x.length === y.length && x.every((v, i) => v === y[i]);
}
