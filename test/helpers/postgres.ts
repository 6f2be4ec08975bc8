/**
 * A throw-away PostgreSQL server for tests. With `OPENRUNNER_TEST_DATABASE_URL` set, that server
 * is used (the tests create and drop databases of their own in it); otherwise a cluster is made in
 * a temporary folder with the `initdb` / `pg_ctl` found on PATH or under
 * `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), trusting local connections,
 * listening on 127.0.0.1 on a free port with fsync off. PostgreSQL refuses to run as root: as
 * root, the cluster is made and run as the `postgres` system user (or `nobody`).
 */
import { execFile, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

/** A server for tests; see the module comment. */
export interface TestPostgres {
  /** URL of the server's maintenance database (`postgres`), as a superuser. */
  url: string;
  /**
   * Creates an empty database and resolves its URL. `icuLocale` (e.g. `"en-US"`) gives it that
   * ICU collation as its default (PostgreSQL 15 or later, built with ICU).
   */
  createDatabase(opts?: { icuLocale?: string }): Promise<string>;
  /** Stops the cluster and removes its folder (or, on an outside server, drops the databases made). Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts (or connects to) a server; see the module comment.
 * @throws Error naming what is missing when no server is given and no `initdb` is found, or with
 *   the server's log when it does not start.
 */
export async function startPostgres(): Promise<TestPostgres> {
  const given = process.env.OPENRUNNER_TEST_DATABASE_URL;
  if (given) return outsideServer(given);
  return localCluster();
}

function outsideServer(url: string): TestPostgres {
  const made: string[] = [];
  let stopped: Promise<void> | undefined;
  return {
    url,
    async createDatabase(opts) {
      const name = databaseName();
      await admin(url, createDatabaseSql(name, opts?.icuLocale));
      made.push(name);
      return withDatabase(url, name);
    },
    stop: () =>
      (stopped ??= (async () => {
        for (const name of made) {
          await admin(url, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => admin(url, `DROP DATABASE IF EXISTS "${name}"`).catch(() => undefined));
        }
      })()),
  };
}

/** Clusters of this process still running: stopped at exit even when a test forgot to. */
const running = new Set<{ pgCtl: string; dataDir: string; dir: string; as: RunAs | undefined }>();
let exitHookInstalled = false;

async function localCluster(): Promise<TestPostgres> {
  const bin = findBinDir();
  const initdb = path.join(bin, "initdb");
  const pgCtl = path.join(bin, "pg_ctl");
  const as = runAsUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "openrunner-pg-"));
  const dataDir = path.join(dir, "data");
  const logFile = path.join(dir, "server.log");
  if (as) fs.chownSync(dir, as.uid, as.gid);
  const options = { cwd: dir, env: cleanEnv(), ...(as ?? {}) };
  try {
    await run(initdb, ["-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"], options);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${describe(err)}`);
  }
  const cluster = { pgCtl, dataDir, dir, as };
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const serverOptions = `-k ${dir} -c listen_addresses=127.0.0.1 -p ${port} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    try {
      await run(pgCtl, ["-w", "-t", "60", "-D", dataDir, "-l", logFile, "-o", serverOptions, "start"], options);
      break;
    } catch (err) {
      if (attempt < 3) continue; // the port was taken in between: another one
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(-4000) : "";
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`pg_ctl start failed: ${describe(err)}\n${log}`);
    }
  }
  running.add(cluster);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of running) stopSync(c);
    });
  }
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  let stopped: Promise<void> | undefined;
  return {
    url,
    async createDatabase(opts) {
      const name = databaseName();
      await admin(url, createDatabaseSql(name, opts?.icuLocale));
      return withDatabase(url, name);
    },
    stop: () =>
      (stopped ??= (async () => {
        running.delete(cluster);
        try {
          await run(pgCtl, ["-w", "-D", dataDir, "-m", "fast", "stop"], options);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      })()),
  };
}

/** The folder holding `initdb` and `pg_ctl`: PATH first, then the newest `/usr/lib/postgresql/<version>/bin`. */
function findBinDir(): string {
  const candidates: string[] = [];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const initdb = path.join(dir, "initdb");
    if (isExecutable(initdb)) candidates.push(path.dirname(fs.realpathSync(initdb)), dir);
  }
  const debian = "/usr/lib/postgresql";
  if (fs.existsSync(debian)) {
    const versions = fs.readdirSync(debian).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(path.join(debian, v, "bin"));
  }
  const found = candidates.find((d) => isExecutable(path.join(d, "initdb")) && isExecutable(path.join(d, "pg_ctl")));
  if (!found) {
    throw new Error("PostgreSQL not found: no initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin. Install Debian's postgresql package, set OPENRUNNER_TEST_DATABASE_URL to a server's URL, or set OPENRUNNER_SKIP_POSTGRES=1 to skip these tests.");
  }
  return found;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

interface RunAs {
  uid: number;
  gid: number;
}

/** As root: the `postgres` system user (Debian's package makes it), else `nobody`; otherwise undefined (run as ourselves). */
function runAsUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = fs.readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":"));
  for (const name of ["postgres", "nobody"]) {
    const entry = passwd.find((f) => f[0] === name);
    if (entry && entry[2] !== undefined && entry[3] !== undefined) return { uid: Number(entry[2]), gid: Number(entry[3]) };
  }
  throw new Error("running as root and neither a postgres nor a nobody user exists to run PostgreSQL as");
}

/** The environment without PG* variables (PGDATA, PGPORT … would redirect initdb and pg_ctl). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  return env;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function databaseName(): string {
  return `openrunner_test_${crypto.randomBytes(6).toString("hex")}`;
}

function createDatabaseSql(name: string, icuLocale: string | undefined): string {
  if (icuLocale === undefined) return `CREATE DATABASE "${name}"`;
  if (!/^[A-Za-z0-9_-]+$/.test(icuLocale)) throw new Error(`unexpected ICU locale ${icuLocale}`);
  return `CREATE DATABASE "${name}" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '${icuLocale}'`;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Runs one statement on the server's maintenance connection. */
async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function stopSync(c: { pgCtl: string; dataDir: string; dir: string; as: RunAs | undefined }): void {
  spawnSync(c.pgCtl, ["-D", c.dataDir, "-m", "immediate", "stop"], { cwd: c.dir, env: cleanEnv(), stdio: "ignore", ...(c.as ?? {}) });
  fs.rmSync(c.dir, { recursive: true, force: true });
}

function describe(err: unknown): string {
  const e = err as { message?: string; stderr?: string; stdout?: string };
  return [e.message, e.stderr, e.stdout].filter(Boolean).join("\n");
}
