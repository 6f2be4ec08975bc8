/**
 * The closed table of API error codes (`API_ERROR_CODES`, src/protocol/errors.ts;
 * docs/architecture.md#errors, issue 17):
 * - every code in the table answers its status through `mapError` when thrown
 *   by the class that produces it (or, for the port proxy's own answers, is
 *   written with that status);
 * - every code the source passes to an error class (`new ValidationError(…, "x")`,
 *   `super("x", …)` in a subclass, `writeJsonError(res, 502, "x", …)`) is in
 *   the table, with the class's status; the source is read with TypeScript's
 *   parser, as in layers.test.ts;
 * - every code in the table is used somewhere (no dead entries);
 * - run failures are `RunFailure`s, not plain errors with a code attached.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import {
  API_ERROR_CODES,
  AgentUnavailableError,
  ConflictError,
  ContainerError,
  CONTAINER_ERROR_STATUS,
  ForbiddenError,
  NotFoundError,
  PayloadTooLargeError,
  RunFailure,
  ShuttingDownError,
  TooManyRequestsError,
  UnauthorizedError,
  ValidationError,
  WorkerUnreachableError,
  type ApiErrorCode,
  type ContainerErrorCode,
} from "../../src/errors.ts";
import { mapError } from "../../src/errors-http.ts";
import { API_ERROR_CODE_LIST, isApiErrorCode } from "../../src/protocol/errors.ts";
import { failureCode, RUN_FAILURE_CODES } from "../../src/protocol/events.ts";
import { UnsupportedMediaTypeError } from "../../src/api/body.ts";
import { ErrorResponseSchema } from "../../src/api/openapi.ts";
import { ProxyUnavailableError } from "../../src/proxy/gateway.ts";
import { PortNotAllowedError, ProxyPathError } from "../../src/proxy/target.ts";
import { WebNotBuiltError } from "../../src/api/routes/web.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SRC = path.join(ROOT, "src");
const TABLE_FILE = "protocol/errors.ts";

const codes = API_ERROR_CODE_LIST;
const statusOf = (c: ApiErrorCode): number => API_ERROR_CODES[c];

/** The errors whose class fixes the code. */
const FIXED: unknown[] = [
  new UnauthorizedError(),
  new ForbiddenError(),
  new PortNotAllowedError(8080),
  new NotFoundError("run"),
  new PayloadTooLargeError(10),
  new UnsupportedMediaTypeError(),
  new TooManyRequestsError(3),
  new AgentUnavailableError("codex", "not installed"),
  new ShuttingDownError(),
  new WorkerUnreachableError("apply the answer"),
  new ProxyPathError("bad port"),
  new ProxyUnavailableError(),
  new WebNotBuiltError(),
];
/** Codes only Koa/http-errors produce (router, body parser), by their status. */
const HTTP_ERRORS_ONLY: readonly ApiErrorCode[] = ["bad_request", "method_not_allowed", "not_acceptable", "request_timeout", "length_required"];
/** Codes only the port proxy writes itself (`writeJsonError` / `writeRawError`), checked in the source below. */
const PROXY_WRITTEN: readonly ApiErrorCode[] = ["proxy_closed", "upstream_unavailable", "upstream_timeout"];

/** The error that carries `code` in the server, or undefined for the proxy's own answers. */
function errorFor(code: ApiErrorCode): unknown {
  if (Object.hasOwn(CONTAINER_ERROR_STATUS, code)) return new ContainerError(code as ContainerErrorCode, "m");
  const fixed = FIXED.find((e) => (e as { code: string }).code === code);
  if (fixed) return fixed;
  if (HTTP_ERRORS_ONLY.includes(code)) return Object.assign(new Error("m"), { status: statusOf(code), expose: true });
  if (code === "internal") return new Error("boom");
  if (statusOf(code) === 400) return new ValidationError("m", undefined, code as never);
  if (statusOf(code) === 409) return new ConflictError("m", code as never);
  return undefined;
}

test("the table is closed: codes are snake_case, statuses are HTTP error statuses", () => {
  assert.ok(codes.length >= 60, `only ${codes.length} codes`);
  for (const c of codes) {
    assert.match(c, /^[a-z][a-z0-9_]*$/, c);
    assert.ok(statusOf(c) >= 400 && statusOf(c) <= 599, `${c}: ${statusOf(c)}`);
  }
  assert.equal(isApiErrorCode("workspace_busy"), true);
  assert.equal(isApiErrorCode("toString"), false);
  assert.equal(isApiErrorCode("nope"), false);
});

test("every code maps to its status through mapError, thrown by the class that produces it", () => {
  for (const code of codes) {
    if (PROXY_WRITTEN.includes(code)) continue;
    const err = errorFor(code);
    assert.ok(err !== undefined, `no class produces ${code} (${statusOf(code)}): add it to FIXED or to the producers in this test`);
    const mapped = mapError(err);
    assert.equal(mapped.status, statusOf(code), code);
    assert.equal(mapped.body.error.code, code);
    if (err instanceof Error && "status" in err && typeof err.status === "number" && err.status < 500) assert.equal((err as { expose?: boolean }).expose, true, code);
  }
});

test("the OpenAPI ErrorResponse code is an enum of the table", () => {
  const code = (ErrorResponseSchema.properties.error as unknown as { properties: { code: { enum: string[] } } }).properties.code;
  assert.deepEqual(code.enum, [...codes]);
});

test("RunFailure carries a run failure code that failureCode reads; a plain .code still counts", () => {
  const f = new RunFailure("spawn_failed", "could not start x", { cause: new Error("ENOENT") });
  assert.ok(f instanceof Error);
  assert.equal(f.name, "RunFailure");
  assert.equal(f.message, "could not start x");
  assert.equal(failureCode(f, "internal"), "spawn_failed");
  assert.equal(failureCode(new ContainerError("oom_killed", "m"), "internal"), "oom_killed");
  assert.equal(failureCode(new ConflictError("m", "project_busy"), "internal"), "internal");
  assert.equal(failureCode(new ConflictError("m", "project_limit"), "internal"), "project_limit");
  assert.equal(failureCode(Object.assign(new Error("x"), { code: "EACCES" }), "internal"), "internal");
  assert.equal(failureCode(null, "exec_failed"), "exec_failed");
  for (const c of RUN_FAILURE_CODES) assert.equal(failureCode(new RunFailure(c, "m"), "internal"), c);
});

// --- the source ------------------------------------------------------------------

/** Every `.ts` file under `src/`, relative to it with `/` separators. */
function sourceFiles(): string[] {
  return (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith(".ts")).map((f) => f.split(path.sep).join("/"));
}

/** Which argument of an error class's constructor (or of its `super` call) is the code, and the status it must have. */
const CODE_ARG: Record<string, { index: number; status?: number }> = {
  AppError: { index: 0 },
  ValidationError: { index: 2, status: 400 },
  ConflictError: { index: 1, status: 409 },
  ContainerError: { index: 0 },
};
/** Functions that write an error body: the code's index, and the index of its status. */
const WRITERS: Record<string, { index: number; statusIndex: number }> = {
  writeJsonError: { index: 2, statusIndex: 1 },
  writeRawError: { index: 2, statusIndex: 1 },
};

interface Use {
  where: string;
  code: string;
  /** The status the use implies, when known. */
  status?: number;
}

/** Every literal error code the source passes to an error class or writer, and every plain Error given a `code`. */
function scanSource(): { uses: Use[]; literals: Set<string>; plainCoded: string[] } {
  const uses: Use[] = [];
  const literals = new Set<string>();
  const plainCoded: string[] = [];
  for (const rel of sourceFiles()) {
    const text = readFileSync(path.join(SRC, rel), "utf8");
    const sf = ts.createSourceFile(rel, text, ts.ScriptTarget.Latest, true);
    const where = (n: ts.Node) => `src/${rel}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
    const literalArg = (args: ts.NodeArray<ts.Expression> | undefined, i: number) => {
      const a = args?.[i];
      return a && ts.isStringLiteralLike(a) ? a.text : undefined;
    };
    const visit = (n: ts.Node, base: string | undefined) => {
      if (ts.isStringLiteralLike(n) && rel !== TABLE_FILE) literals.add(n.text);
      let nextBase = base;
      if (ts.isClassLike(n)) {
        const ext = n.heritageClauses?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword)?.types[0]?.expression;
        nextBase = ext && ts.isIdentifier(ext) ? ext.text : undefined;
      }
      if (ts.isNewExpression(n) && ts.isIdentifier(n.expression)) {
        const spec = CODE_ARG[n.expression.text];
        const code = spec && literalArg(n.arguments, spec.index);
        if (spec && code !== undefined) uses.push({ where: where(n), code, ...(spec.status ? { status: spec.status } : {}) });
        // Object.assign(new Error(…), { code: "…" }): a plain error with a code attached.
        const parent = n.parent;
        if (
          n.expression.text === "Error" &&
          ts.isCallExpression(parent) &&
          parent.expression.getText(sf) === "Object.assign" &&
          parent.arguments[1] &&
          ts.isObjectLiteralExpression(parent.arguments[1]) &&
          parent.arguments[1].properties.some((p) => p.name?.getText(sf) === "code" || p.name?.getText(sf) === "outcome")
        ) {
          plainCoded.push(`${where(n)} ${parent.getText(sf).slice(0, 120)}`);
        }
      }
      if (ts.isCallExpression(n)) {
        if (n.expression.kind === ts.SyntaxKind.SuperKeyword && base !== undefined && CODE_ARG[base]) {
          const spec = CODE_ARG[base]!;
          const code = literalArg(n.arguments, spec.index);
          if (code !== undefined) uses.push({ where: where(n), code, ...(spec.status ? { status: spec.status } : {}) });
        }
        const name = ts.isIdentifier(n.expression) ? n.expression.text : undefined;
        const writer = name ? WRITERS[name] : undefined;
        if (writer) {
          const code = literalArg(n.arguments, writer.index);
          const s = n.arguments[writer.statusIndex];
          if (code !== undefined) uses.push({ where: where(n), code, ...(s && ts.isNumericLiteral(s) ? { status: Number(s.text) } : {}) });
        }
      }
      ts.forEachChild(n, (c) => visit(c, nextBase));
    };
    visit(sf, undefined);
  }
  return { uses, literals, plainCoded };
}

test("every error code the source uses is in the table, with the status of the class that throws it", () => {
  const { uses } = scanSource();
  assert.ok(uses.length >= 40, `the scanner found only ${uses.length} code uses`);
  const missing = uses.filter((u) => !isApiErrorCode(u.code)).map((u) => `${u.where}: ${u.code}`);
  assert.deepEqual(missing, [], "add these codes to API_ERROR_CODES (src/protocol/errors.ts)");
  const wrong = uses.filter((u) => isApiErrorCode(u.code) && u.status !== undefined && u.status !== statusOf(u.code)).map((u) => `${u.where}: ${u.code} with ${u.status}, table ${statusOf(u.code as ApiErrorCode)}`);
  assert.deepEqual(wrong, []);
  for (const code of PROXY_WRITTEN) assert.ok(uses.some((u) => u.code === code && u.status === statusOf(code)), `${code} is written with status ${statusOf(code)}`);
});

test("every code in the table is used by the source (no dead entries)", () => {
  const { literals } = scanSource();
  const unused = codes.filter((c) => !literals.has(c));
  assert.deepEqual(unused, [], "remove these codes from API_ERROR_CODES, or use them");
});

test("run failures are RunFailure errors, not plain errors with a code attached", () => {
  const { plainCoded } = scanSource();
  const inRuns = plainCoded.filter((w) => w.startsWith("src/agent/") || w.startsWith("src/run/"));
  assert.deepEqual(inRuns, [], "throw new RunFailure(code, message) (src/protocol/errors.ts) instead");
});
