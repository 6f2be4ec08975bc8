/**
 * JSON Web Tokens for API sessions: HS256 only, pinned on verify (no `none`,
 * no algorithm confusion). Every verification failure is the same
 * {@link UnauthorizedError}; the library's error is kept as `cause` for the log.
 */
import jsonwebtoken from "jsonwebtoken";
import { ConfigError, UnauthorizedError } from "../errors.ts";
import type { Role } from "../store/types.ts";
import { createSecretKey } from "node:crypto";
import { MIN_JWT_SECRET_LENGTH } from "./secret.ts";

/** The claims OpenRunner puts in a token. `sub` is the user id. */
export interface JwtClaims {
  sub: string;
  role: Role;
  username: string;
}

/** Signs and verifies session tokens. Create one per server with {@link createJwtService}. */
export interface JwtService {
  /** Token lifetime, seconds. */
  readonly expiresInSecs: number;
  /** Signs `{sub: user.id, role, username}` with HS256, expiring in {@link expiresInSecs}. */
  sign(user: { id: string; role: Role; username: string }): string;
  /**
   * Verifies signature (HS256 only), expiry and claim shapes.
   * @throws UnauthorizedError for any failure (cause: the underlying error).
   */
  verify(token: string): JwtClaims;
}

/** Options of {@link createJwtService}. */
export interface JwtServiceOptions {
  /** HS256 secret, at least 32 characters. */
  secret: string;
  /** Token lifetime, whole seconds > 0. */
  expiresInSecs: number;
}

const ALGORITHM = "HS256";

/**
 * Builds the JWT service, validating its options first.
 * @throws ConfigError when the secret is missing or shorter than 32 characters,
 *   or `expiresInSecs` is not a positive integer.
 * @example
 * const jwt = createJwtService({ secret, expiresInSecs: config.jwt_expires_in_secs });
 * const token = jwt.sign(user);
 * const claims = jwt.verify(token); // throws UnauthorizedError when invalid
 */
export function createJwtService(opts: JwtServiceOptions): JwtService {
  const secret = opts?.secret;
  if (typeof secret !== "string" || secret.length < MIN_JWT_SECRET_LENGTH) {
    const got = typeof secret === "string" ? `<${secret.length} characters>` : secret;
    throw new ConfigError("jwt secret", `a string of at least ${MIN_JWT_SECRET_LENGTH} characters`, got);
  }
  const expiresInSecs = opts.expiresInSecs;
  if (!Number.isInteger(expiresInSecs) || expiresInSecs <= 0) {
    throw new ConfigError("jwt expiresInSecs", "a positive integer (seconds)", expiresInSecs);
  }
  // A KeyObject built once: jsonwebtoken otherwise tries (and fails) createPublicKey on every call.
  const key = createSecretKey(Buffer.from(secret, "utf8"));
  return {
    expiresInSecs,
    sign(user) {
      return jsonwebtoken.sign({ role: user.role, username: user.username }, key, {
        algorithm: ALGORITHM,
        expiresIn: expiresInSecs,
        subject: user.id,
      });
    },
    verify(token) {
      let payload: unknown;
      try {
        payload = jsonwebtoken.verify(token, key, { algorithms: [ALGORITHM] });
      } catch (err) {
        throw new UnauthorizedError({ cause: err });
      }
      return readClaims(payload);
    },
  };
}

function readClaims(payload: unknown): JwtClaims {
  const p = payload as Partial<Record<keyof JwtClaims, unknown>> | null;
  if (
    typeof p !== "object" || p === null ||
    typeof p.sub !== "string" || typeof p.username !== "string" ||
    (p.role !== "admin" && p.role !== "user")
  ) {
    throw new UnauthorizedError({ cause: new Error("token claims have the wrong shape") });
  }
  return { sub: p.sub, role: p.role, username: p.username };
}
