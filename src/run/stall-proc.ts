/**
 * Readers of Linux procfs for the stall watchdog (`stall.ts`): a process's state and CPU ticks, its
 * descendants, its open TCP connections. Formats are the kernel's, documented in proc(5)
 * (`man 5 proc`: `/proc/<pid>/stat`, `/proc/<pid>/fd/`, `/proc/<pid>/net/tcp` and `tcp6`) and
 * `Documentation/networking/proc_net_tcp.rst` in the kernel tree. Every reader takes the procfs root
 * (default `/proc`) so tests can point it at a fixture folder. A process that vanished while being read
 * is reported as absent, never as an error.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";

/** The fields of `/proc/<pid>/stat` the watchdog reads. */
export interface ProcStat {
  pid: number;
  /** `comm`: the executable name (at most 15 characters), without its parentheses. */
  comm: string;
  /** One letter: `R` running, `S` sleeping, `D` disk sleep, `Z` zombie, `T` stopped, … */
  state: string;
  ppid: number;
  /** User plus system CPU time, clock ticks (`utime` + `stime`, fields 14 and 15; usually 100 per second). */
  cpuTicks: number;
}

/**
 * Parses one `/proc/<pid>/stat` line. `comm` may contain spaces and parentheses, so the fields after it
 * are read from the last `)`.
 * @returns undefined for a line that is not of that form
 * @example parseProcStat("42 (sleep) S 1 42 42 0 -1 4194304 90 0 0 0 3 2 0 0 20 0 1 0 1 1 1") // {pid: 42, comm: "sleep", state: "S", ppid: 1, cpuTicks: 5}
 */
export function parseProcStat(line: string): ProcStat | undefined {
  const open = line.indexOf("(");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(line.slice(0, open).trim());
  const rest = line.slice(close + 1).trim().split(/\s+/);
  // rest[0] is field 3 (state): field n is rest[n - 3].
  const state = rest[0];
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isInteger(pid) || state === undefined || !Number.isInteger(ppid) || !Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { pid, comm: line.slice(open + 1, close), state, ppid, cpuTicks: utime + stime };
}

/** `/proc/<pid>/stat` of one process; undefined when it does not exist (any more). */
export async function readProcStat(pid: number, root = "/proc"): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(path.join(root, String(pid), "stat"), "utf8"));
  } catch {
    return undefined;
  }
}

/** True when the process exists and is not a zombie. */
export async function isAlive(pid: number, root = "/proc"): Promise<boolean> {
  const st = await readProcStat(pid, root);
  return st !== undefined && st.state !== "Z" && st.state !== "X";
}

/** Every process's stat (the numeric folders of the procfs root). */
async function readAllStats(root: string): Promise<ProcStat[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const stats = await Promise.all(names.filter((n) => /^[0-9]+$/.test(n)).map((n) => readProcStat(Number(n), root)));
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/**
 * The live descendants of `pid` (children, their children, …), by the `ppid` of every process; zombies left out.
 * Processes that re-parented themselves away (daemons) are not found; the process actor kills those by their run marker.
 */
export async function listDescendants(pid: number, root = "/proc"): Promise<ProcStat[]> {
  const all = await readAllStats(root);
  const byParent = new Map<number, ProcStat[]>();
  for (const s of all) {
    const list = byParent.get(s.ppid);
    if (list) list.push(s);
    else byParent.set(s.ppid, [s]);
  }
  const out: ProcStat[] = [];
  const queue = [pid];
  const seen = new Set<number>([pid]);
  while (queue.length > 0) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      if (seen.has(child.pid)) continue;
      seen.add(child.pid);
      queue.push(child.pid);
      if (child.state !== "Z" && child.state !== "X") out.push(child);
    }
  }
  return out;
}

/** The inodes of the sockets `pid` holds open (`/proc/<pid>/fd/*` links of the form `socket:[<inode>]`); empty when unreadable. */
export async function socketInodes(pid: number, root = "/proc"): Promise<Set<string>> {
  const dir = path.join(root, String(pid), "fd");
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = await readdir(dir);
  } catch {
    return out;
  }
  await Promise.all(
    fds.map(async (fd) => {
      const target = await readlink(path.join(dir, fd)).catch(() => "");
      const m = /^socket:\[([0-9]+)\]$/.exec(target);
      if (m) out.add(m[1]!);
    }),
  );
  return out;
}

/** One row of `/proc/net/tcp` or `tcp6`. */
export interface TcpEntry {
  /** Addresses in the usual text form (`127.0.0.1`, `::1`; IPv4-mapped IPv6 as IPv4). */
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** Kernel state number, hex in the file: 1 ESTABLISHED, 2 SYN_SENT, 10 LISTEN, … */
  state: number;
  inode: string;
}

/** TCP states of `include/net/tcp_states.h`. */
export const TCP_ESTABLISHED = 1;
export const TCP_SYN_SENT = 2;

/** Decodes a procfs hex address: IPv4 is one little-endian 32-bit word, IPv6 four of them. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [6, 4, 2, 0].map((i) => parseInt(w.slice(i, i + 2), 16)));
  if (bytes.length === 4) return bytes.join(".");
  const isMapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isMapped) return bytes.slice(12).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return compressIpv6(groups);
}

/** `0:0:0:0:0:0:0:1` → `::1` (the longest run of zero groups). */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (bestLen < 2) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/**
 * Parses the text of `/proc/<pid>/net/tcp` or `tcp6` (a header line, then one socket a line:
 * `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …`).
 * @example parseTcpTable("  sl  local_address rem_address   st …\n   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 …")
 * // [{localAddress: "127.0.0.1", localPort: 40000, remoteAddress: "127.0.0.1", remotePort: 8080, state: 1, inode: "12345"}]
 */
export function parseTcpTable(text: string): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [local, remote, st, inode] = [f[1]!, f[2]!, f[3]!, f[9]!];
    const [la, lp] = local.split(":");
    const [ra, rp] = remote.split(":");
    if (!la || !lp || !ra || !rp) continue;
    out.push({ localAddress: decodeAddress(la), localPort: parseInt(lp, 16), remoteAddress: decodeAddress(ra), remotePort: parseInt(rp, 16), state: parseInt(st, 16), inode });
  }
  return out;
}

/** The TCP sockets (IPv4 and IPv6) of the network namespace `pid` lives in; empty when unreadable. */
export async function readTcpTables(pid: number, root = "/proc"): Promise<TcpEntry[]> {
  const texts = await Promise.all(["tcp", "tcp6"].map((t) => readFile(path.join(root, String(pid), "net", t), "utf8").catch(() => "")));
  return texts.flatMap(parseTcpTable);
}

/** A peer a process may be talking to: an address in text form and a port. */
export interface TcpPeer {
  address: string;
  port: number;
}

/**
 * The connecting or established TCP connections that `pids` hold open (their socket inodes matched against
 * the namespace's tables) to one of `peers`; to any remote peer when `peers` is empty.
 */
export async function openConnections(pids: readonly number[], peers: readonly TcpPeer[], root = "/proc"): Promise<TcpEntry[]> {
  if (pids.length === 0) return [];
  const inodes = new Set<string>();
  for (const set of await Promise.all(pids.map((p) => socketInodes(p, root)))) for (const i of set) inodes.add(i);
  if (inodes.size === 0) return [];
  const table = await readTcpTables(pids[0]!, root);
  return table.filter(
    (e) =>
      inodes.has(e.inode) &&
      (e.state === TCP_ESTABLISHED || e.state === TCP_SYN_SENT) &&
      (peers.length === 0 || peers.some((p) => p.port === e.remotePort && p.address === e.remoteAddress)),
  );
}
