/**
 * JSON request bodies for POST, PUT and PATCH, through @koa/bodyparser:
 * - a body over `limitBytes` (after decompression) -> 413 `payload_too_large`;
 * - malformed JSON, or JSON that is not an object or array -> 400 `invalid_json`;
 * - a non-empty body whose Content-Type is not JSON -> 415 `unsupported_media_type`.
 * A request without a body gets `ctx.request.body = {}` (its schema then says what is missing).
 * Other methods are not parsed (`ctx.request.body` stays undefined).
 */
import { bodyParser } from "@koa/bodyparser";
import { API_ERROR_CODES, AppError, ConfigError, PayloadTooLargeError, ValidationError } from "../errors.ts";
import type { AppContext, AppMiddleware } from "./context.ts";

/** 415: the request has a body that is not JSON (or an unsupported Content-Encoding). */
export class UnsupportedMediaTypeError extends AppError {
  readonly status = API_ERROR_CODES.unsupported_media_type;
  constructor(message = "request body must be application/json") {
    super("unsupported_media_type", message);
  }
}

const PARSED_METHODS = ["POST", "PUT", "PATCH"];

/**
 * Builds the body middleware.
 * @param opts.limitBytes the config `body_limit_bytes`, integer >= 1.
 * @throws ConfigError when `limitBytes` is not a positive integer.
 */
export function createBodyMiddleware(opts: { limitBytes: number }): AppMiddleware {
  const limitBytes = opts?.limitBytes;
  if (!Number.isInteger(limitBytes) || limitBytes < 1) throw new ConfigError("body_limit_bytes", "an integer >= 1", limitBytes);
  const parse = bodyParser({
    enableTypes: ["json"],
    // Content-Type is checked below; everything that reaches the parser is JSON.
    detectJSON: () => true,
    jsonLimit: limitBytes,
    jsonStrict: true,
    parsedMethods: PARSED_METHODS,
    onError(err) {
      throw translateParseError(err, limitBytes);
    },
  });
  return async (ctx, next) => {
    if (PARSED_METHODS.includes(ctx.method) && hasBody(ctx) && !ctx.is("json")) throw new UnsupportedMediaTypeError();
    return parse(ctx as never, next);
  };
}

/** True when the request announces a non-empty body. */
function hasBody(ctx: AppContext): boolean {
  if (ctx.get("Transfer-Encoding")) return true;
  const length = Number.parseInt(ctx.get("Content-Length") || "0", 10);
  return Number.isFinite(length) && length > 0;
}

function translateParseError(err: unknown, limitBytes: number): unknown {
  const e = err as { status?: number; type?: string; name?: string } | null;
  if (e?.type === "entity.too.large" || e?.status === 413) return new PayloadTooLargeError(limitBytes);
  if (e?.name === "SyntaxError" || e?.type === "entity.parse.failed") {
    return new ValidationError("request body is not valid JSON (an object or an array)", undefined, "invalid_json");
  }
  if (e?.type === "encoding.unsupported" || e?.status === 415) return new UnsupportedMediaTypeError("unsupported content encoding");
  return err;
}
