/**
 * The stored login: `{server, token, username}` in
 * `$XDG_CONFIG_HOME/openrunner/credentials.json` (or
 * `~/.config/openrunner/credentials.json`), the folder mode 0700 and the file
 * mode 0600, written atomically.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

/** What `openrunner login` stores. */
export interface StoredCredentials {
  server: string;
  token: string;
  username: string;
}

/** The credentials file path for this environment. */
export function resolveCredentialsPath(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && xdg.startsWith("/") ? xdg : join(env.HOME || homedir(), ".config");
  return join(base, "openrunner", "credentials.json");
}

/** Reads the stored login; undefined when there is none or the file is unreadable or malformed. */
export function readCredentials(env: Readonly<Record<string, string | undefined>>): StoredCredentials | undefined {
  let raw: string;
  try {
    raw = readFileSync(resolveCredentialsPath(env), "utf8");
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(raw) as Partial<StoredCredentials>;
    if (typeof v.server === "string" && typeof v.token === "string" && typeof v.username === "string") {
      return { server: v.server, token: v.token, username: v.username };
    }
  } catch {
    // fall through: treat a corrupt file as no login
  }
  return undefined;
}

/**
 * Stores the login, replacing any previous one. Returns the file path.
 * @example writeCredentials(env, { server: "http://127.0.0.1:3000", token: "…", username: "admin" })
 */
export function writeCredentials(env: Readonly<Record<string, string | undefined>>, creds: StoredCredentials): string {
  const file = resolveCredentialsPath(env);
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}
