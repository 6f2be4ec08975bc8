/**
 * The dashboard (`web/`, built by `npm run build:web` into `web/dist`) served
 * at `/` (docs/architecture.md#http-api):
 *
 * - `GET|HEAD` of a file of `web/dist` answers it; any other path outside the
 *   API's own prefixes (`/api`, `/health`, `/metrics`, `/proxy`, `/mcp`) answers
 *   `index.html` (the page routes on the client), except a missing file under
 *   `/assets/`, which stays a 404;
 * - hashed assets (`/assets/*`) are cached for a year (`immutable`),
 *   everything else is `no-cache`;
 * - every answer carries a strict Content-Security-Policy (scripts, styles,
 *   connections only from the server itself, no framing, no inline code),
 *   `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`;
 * - a path is decoded once, and one with a `..`, `.`, empty or dot-file
 *   segment, a backslash or a NUL never reaches the file system; the resolved
 *   file must lie inside the dist folder (its real path, so a link cannot lead
 *   out);
 * - without a build (`web/dist/index.html` missing) the page's paths answer
 *   503 `web_not_built`, whose message says to run `npm run build:web`.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AppError } from "../../errors.ts";
import { API_ERROR_CODES } from "../../protocol/errors.ts";
import type { AppContext, AppMiddleware } from "../context.ts";

/** The repository's `web/dist`, where `npm run build:web` writes the dashboard. */
export const DEFAULT_WEB_DIST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../web/dist");

/** The Content-Security-Policy of every dashboard answer. */
export const WEB_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
  "form-action 'self'",
].join("; ");

/** Path prefixes that belong to the API, never to the page (a request there falls through to the API's 404). */
const API_PREFIXES = ["/api", "/health", "/metrics", "/proxy", "/mcp"];

/** Content types by lower-case extension; anything else is `application/octet-stream`. */
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};

/** 503: the dashboard has not been built on this machine. */
export class WebNotBuiltError extends AppError {
  readonly status = API_ERROR_CODES.web_not_built;
  override get expose(): boolean {
    return true;
  }
  constructor() {
    super("web_not_built", "the dashboard is not built: run `npm run build:web`");
  }
}

/** Options of {@link createWebMiddleware}. */
export interface WebMiddlewareOptions {
  /** The built dashboard (default {@link DEFAULT_WEB_DIST_DIR}); read at every request, so a later build is served without a restart. */
  distDir?: string;
}

/** True when `p` (a decoded pathname) belongs to the API rather than the page. */
function isApiPath(p: string): boolean {
  return API_PREFIXES.some((prefix) => p === prefix || p.startsWith(`${prefix}/`));
}

/**
 * The request path as safe segments, or undefined when it cannot name a file
 * of the dist folder (bad encoding, `..`/`.`/empty/dot-file segments, `\`, NUL).
 * @example safeSegments("/assets/index-abc.js") // ["assets", "index-abc.js"]
 * @example safeSegments("/assets/%2e%2e/x") // undefined
 */
export function safeSegments(rawPath: string): string[] | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return undefined;
  const segments = decoded.split("/").slice(1);
  if (segments.length === 1 && segments[0] === "") return [];
  if (segments.some((s) => s === "" || s.startsWith("."))) return undefined;
  return segments;
}

/** The real path of a regular file inside `root` (itself a real path), or undefined. */
function fileInside(root: string, segments: readonly string[]): string | undefined {
  if (segments.length === 0) return undefined;
  const candidate = path.join(root, ...segments);
  try {
    const real = fs.realpathSync(candidate);
    if (!real.startsWith(root + path.sep)) return undefined;
    return fs.statSync(real).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}

/** Answers one file with the dashboard's headers. */
function sendFile(ctx: AppContext, file: string, immutable: boolean): void {
  const stat = fs.statSync(file);
  // HEAD: Koa drops the body; no stream is opened for it.
  ctx.body = ctx.method === "HEAD" ? "" : fs.createReadStream(file);
  ctx.status = 200;
  ctx.type = TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
  ctx.length = stat.size;
  ctx.set("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
  ctx.set("Last-Modified", stat.mtime.toUTCString());
}

/**
 * Builds the dashboard middleware. Mount it after every route module and
 * before the API's 404 (see `createApp`); it only answers `GET`/`HEAD`
 * outside the API prefixes and passes everything else on.
 * @throws {WebNotBuiltError} (503 `web_not_built`) for a page path when the build is missing
 * @example app.use(createWebMiddleware({ distDir: "/srv/openrunner/web/dist" }));
 */
export function createWebMiddleware(opts: WebMiddlewareOptions = {}): AppMiddleware {
  const distDir = path.resolve(opts.distDir ?? DEFAULT_WEB_DIST_DIR);
  return async (ctx, next) => {
    if ((ctx.method !== "GET" && ctx.method !== "HEAD") || isApiPath(ctx.path)) return next();
    ctx.set("Content-Security-Policy", WEB_CSP);
    ctx.set("X-Content-Type-Options", "nosniff");
    ctx.set("Referrer-Policy", "no-referrer");
    ctx.set("X-Frame-Options", "DENY");
    let root: string;
    try {
      root = fs.realpathSync(distDir);
    } catch {
      throw new WebNotBuiltError();
    }
    const index = fileInside(root, ["index.html"]);
    if (!index) throw new WebNotBuiltError();
    const segments = safeSegments(ctx.path);
    if (segments === undefined) return next();
    const file = fileInside(root, segments);
    if (file) return sendFile(ctx, file, segments[0] === "assets" && segments.length > 1);
    if (segments[0] === "assets") return next(); // a missing asset is a 404, never the page
    sendFile(ctx, index, false);
  };
}
