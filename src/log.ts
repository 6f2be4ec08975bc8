/**
 * Structured logging with tslog: pretty on a terminal, JSON otherwise. The root
 * logger is created once by the composition root and handed down; modules take
 * `log.getSubLogger({ name: "run.manager" })`. Values of secret-bearing keys are
 * masked, and {@link redactUrl} strips tokens from URLs before they are logged.
 */
import { Logger, type ILogObj } from "tslog";

export type Log = Logger<ILogObj>;

/** tslog's numeric levels by name. */
export const LOG_LEVELS = { silly: 0, trace: 1, debug: 2, info: 3, warn: 4, error: 5, fatal: 6 } as const;
export type LogLevelName = keyof typeof LOG_LEVELS;

/** Keys whose values never reach a log line. */
export const SECRET_KEYS = [
  "password",
  "password_hash",
  "token",
  "access_token",
  "authorization",
  "secret",
  "jwt_secret",
  "api_key",
  "apiKey",
  "key_hash",
  "cookie",
];

/**
 * Creates the root logger.
 * @param opts.level minimum level name; `opts.json` forces JSON (default: JSON unless stdout is a TTY).
 */
export function createRootLogger(opts: { level: LogLevelName; json?: boolean; name?: string }): Log {
  const json = opts.json ?? !process.stdout.isTTY;
  return new Logger<ILogObj>({
    name: opts.name ?? "openrunner",
    type: json ? "json" : "pretty",
    minLevel: LOG_LEVELS[opts.level],
    maskValuesOfKeys: SECRET_KEYS,
    maskValuesOfKeysCaseInsensitive: true,
    hideLogPositionForProduction: true,
    overwrite: { transportJSON: (obj: unknown) => process.stdout.write(JSON.stringify(flattenLogObject(obj as Record<string, unknown>)) + "\n") },
  });
}

/**
 * Turns tslog's log object (`{"0": msg, "1": {fields}, _meta: {...}}`) into one
 * flat JSON line: `{time, level, logger, msg, ...fields}`. Field objects are
 * merged; other extra arguments go to `args`.
 */
export function flattenLogObject(obj: Record<string, unknown>): Record<string, unknown> {
  const meta = (obj._meta ?? {}) as { date?: Date | string; logLevelName?: string; name?: string; parentNames?: string[] };
  const out: Record<string, unknown> = {
    time: meta.date instanceof Date ? meta.date.toISOString() : meta.date,
    level: meta.logLevelName?.toLowerCase(),
    logger: meta.name,
  };
  const extra: unknown[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (k === "_meta") continue;
    if (k === "0" && typeof v === "string") out.msg = v;
    else if (/^\d+$/.test(k) && v !== null && typeof v === "object" && !Array.isArray(v)) Object.assign(out, v);
    else if (/^\d+$/.test(k)) extra.push(v);
    else out[k] = v;
  }
  if (extra.length > 0) out.args = extra;
  return out;
}

/** A logger that prints nothing, for tests and library use. */
export function createSilentLogger(): Log {
  return new Logger<ILogObj>({ type: "hidden", minLevel: 6 });
}

const TOKEN_PARAMS = /([?&](?:access(?:_|%5f)token|token|api(?:_|%5f)key|key|password)=)[^&#]*/gi;

/** Replaces the values of token-bearing query parameters in a URL or path with `***`. */
export function redactUrl(url: string): string {
  return url.replace(TOKEN_PARAMS, "$1***");
}
