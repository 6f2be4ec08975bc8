/**
 * Login throttling with rate-limiter-flexible's in-memory limiter: one budget
 * per username and one per client address, each `maxAttempts` per
 * `windowSecs`. Every attempt spends a point from both before the password is
 * checked (so concurrent guesses cannot slip through); a successful login
 * clears the username's budget and gives the address its point back, so only
 * failures accumulate.
 */
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { ConfigError, TooManyRequestsError } from "../errors.ts";

/** Who is attempting a login. */
export interface LoginAttempt {
  username: string;
  /** Client address (`ctx.ip`). */
  ip: string;
}

/** The login limiter. Create one per server with {@link createLoginLimiter}. */
export interface LoginLimiter {
  /**
   * Spends one attempt for the username and one for the address.
   * @throws TooManyRequestsError (429) when either budget is used up;
   *   `retryAfterS` is the wait in whole seconds (at least 1).
   */
  consume(attempt: LoginAttempt): Promise<void>;
  /** Records a successful login: resets the username's budget, refunds the address's point. */
  recordSuccess(attempt: LoginAttempt): Promise<void>;
}

/** Options of {@link createLoginLimiter} (config `login_max_attempts`, `login_window_secs`). */
export interface LoginLimiterOptions {
  /** Attempts allowed per key per window, integer >= 1. */
  maxAttempts: number;
  /** Window length, whole seconds >= 1. */
  windowSecs: number;
}

/** Longest username kept as a limiter key; longer ones are cut (bounded memory per key). */
const MAX_KEY_LENGTH = 128;

/**
 * Builds the login limiter.
 * @throws ConfigError when an option is not a positive integer.
 * @example
 * const limiter = createLoginLimiter({ maxAttempts: config.login_max_attempts, windowSecs: config.login_window_secs });
 * await limiter.consume({ username, ip: ctx.ip }); // throws TooManyRequestsError
 */
export function createLoginLimiter(opts: LoginLimiterOptions): LoginLimiter {
  for (const [name, value] of [["maxAttempts", opts?.maxAttempts], ["windowSecs", opts?.windowSecs]] as const) {
    if (!Number.isInteger(value) || (value as number) < 1) {
      throw new ConfigError(`login limiter ${name}`, "an integer >= 1", value);
    }
  }
  const byUser = new RateLimiterMemory({ keyPrefix: "login_user", points: opts.maxAttempts, duration: opts.windowSecs });
  const byIp = new RateLimiterMemory({ keyPrefix: "login_ip", points: opts.maxAttempts, duration: opts.windowSecs });
  const userKey = (a: LoginAttempt) => a.username.slice(0, MAX_KEY_LENGTH);
  return {
    async consume(attempt) {
      const results = await Promise.allSettled([byIp.consume(attempt.ip), byUser.consume(userKey(attempt))]);
      let waitMs = -1;
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        // The memory limiter rejects only with a RateLimiterRes (budget spent).
        if (!(r.reason instanceof RateLimiterRes)) throw r.reason;
        waitMs = Math.max(waitMs, r.reason.msBeforeNext);
      }
      if (waitMs >= 0) throw new TooManyRequestsError(Math.max(1, Math.ceil(waitMs / 1000)));
    },
    async recordSuccess(attempt) {
      await Promise.all([byUser.delete(userKey(attempt)), byIp.reward(attempt.ip, 1)]);
    },
  };
}
