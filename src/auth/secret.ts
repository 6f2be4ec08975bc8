/**
 * The JWT signing secret (docs/architecture.md#authentication): the configured one wins;
 * otherwise it is generated once into `<dataDir>/jwt-secret` (mode 0600) and
 * reused on every later start. There is no fallback secret.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ConfigError } from "../errors.ts";

/** Minimum secret length, characters (matches `jwt_secret` in the config schema). */
export const MIN_JWT_SECRET_LENGTH = 32;

/** Name of the generated secret file inside the data folder. */
export const JWT_SECRET_FILE = "jwt-secret";

/**
 * Returns the JWT secret: `configured` when given, else the content of
 * `<dataDir>/jwt-secret`, creating that file (48 random bytes, base64url, 64
 * characters) exclusively with mode 0600 when it does not exist. An existing
 * file readable by group or others is narrowed to 0600.
 *
 * @param dataDir the data folder; created (mode 0700) if missing.
 * @param configured the `jwt_secret` setting, if any.
 * @throws ConfigError when `configured` or the file's content is shorter than
 *   {@link MIN_JWT_SECRET_LENGTH} (the message gives the length, never the secret).
 * @throws Error (fs) when the folder or file cannot be created or read.
 * @example
 * const secret = loadOrCreateJwtSecret(config.data_dir, config.jwt_secret);
 */
export function loadOrCreateJwtSecret(dataDir: string, configured?: string): string {
  if (configured !== undefined) return checkSecret("jwt_secret", configured);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, JWT_SECRET_FILE);
  const created = crypto.randomBytes(48).toString("base64url");
  try {
    fs.writeFileSync(file, created, { flag: "wx", mode: 0o600 });
    return created;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  narrowMode(file);
  return checkSecret(file, fs.readFileSync(file, "utf8").trim());
}

/** Sets mode 0600 on `file` when group or others have any access (no-op on Windows). */
function narrowMode(file: string): void {
  if (process.platform === "win32") return;
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
}

function checkSecret(setting: string, secret: string): string {
  if (secret.length < MIN_JWT_SECRET_LENGTH) {
    throw new ConfigError(setting, `a secret of at least ${MIN_JWT_SECRET_LENGTH} characters`, `<${secret.length} characters>`);
  }
  return secret;
}
