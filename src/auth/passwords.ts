/**
 * Password hashing with bcryptjs (cost {@link BCRYPT_COST}). Verification of an
 * unknown user still runs one bcrypt compare against a fixed dummy hash, so a
 * login takes the same time whether or not the username exists.
 */
import bcrypt from "bcryptjs";

/** bcrypt cost factor (2^10 rounds, roughly 50–100 ms per hash on a server CPU). */
export const BCRYPT_COST = 10;

/** A cost-10 hash of a random string nobody knows; compared against for unknown users. */
const DUMMY_HASH = "$2b$10$xRFzk0C25loJ4o1rl88QWeatV/m/C7pgcXqBZuvPmbbmmae8XIbFq";

/**
 * Hashes a password with bcrypt at {@link BCRYPT_COST}.
 * bcrypt reads at most 72 bytes; callers reject longer passwords first
 * (see {@link isPasswordTooLong}).
 * @returns the `$2b$10$…` hash string.
 */
export function hashPassword(password: string): Promise<string> {
  return bcrypt.hash(password, BCRYPT_COST);
}

/**
 * Checks `password` against `hash`. With `hash` undefined (unknown user) it
 * compares against a dummy hash and returns false, taking the same time.
 * Never throws for a malformed hash: it answers false.
 */
export async function verifyPassword(password: string, hash: string | undefined): Promise<boolean> {
  try {
    const ok = await bcrypt.compare(password, hash ?? DUMMY_HASH);
    return ok && hash !== undefined;
  } catch {
    return false;
  }
}

/** True when bcrypt would silently ignore part of `password` (over 72 UTF-8 bytes). */
export function isPasswordTooLong(password: string): boolean {
  return bcrypt.truncates(password);
}
