/**
 * Request validation against TypeBox schemas with one ajv instance (formats
 * from ajv-formats, all errors reported, no type coercion, no removal of
 * unknown properties: request schemas say `additionalProperties: false`, so
 * unknown fields are an error, not silently dropped). Compiled validators are
 * cached by schema identity.
 *
 * The ajv instance and its cache are module state on purpose: they are a pure
 * memo of compiled schemas (no I/O, no configuration, nothing request-specific).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import type { Static, TSchema } from "@sinclair/typebox";
import { ValidationError } from "../errors.ts";

/** One validation problem: `path` is a JSON Pointer into the checked value (`""` is the whole value). */
export interface ValidationIssue {
  path: string;
  message: string;
}

// ajv-formats is CommonJS; under NodeNext its default export is the module object.
const addFormats = (addFormatsModule as unknown as { default: typeof addFormatsModule.default }).default ?? addFormatsModule;

let ajv: Ajv | undefined;
const compiled = new WeakMap<TSchema, ValidateFunction>();

/**
 * Compiles (once per schema object) and returns the validator.
 * Call at build time to fail fast on a broken schema.
 * @throws Error when ajv rejects the schema (a programming error).
 */
export function compileSchema(schema: TSchema): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    ajv ??= addFormats(new Ajv({ allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: true }));
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

/**
 * Checks a parsed JSON request body against `schema` and returns it typed.
 * @throws ValidationError (400, `validation_failed`) whose `details` is a
 *   {@link ValidationIssue} list, e.g. `[{path: "/password", message: "must NOT have fewer than 8 characters"}]`.
 * @example
 * const body = validateBody(LoginBody, ctx.request.body);
 */
export function validateBody<T extends TSchema>(schema: T, body: unknown): Static<T> {
  return validateValue(schema, body, "invalid request body");
}

/**
 * Checks the query string (`ctx.query`: values are strings or string arrays,
 * never coerced) against an object schema of string properties.
 * @throws ValidationError (400, `validation_failed`) with {@link ValidationIssue} details.
 */
export function validateQuery<T extends TSchema>(schema: T, query: unknown): Static<T> {
  return validateValue(schema, { ...(query as object) }, "invalid query parameters");
}

function validateValue<T extends TSchema>(schema: T, value: unknown, message: string): Static<T> {
  const validate = compileSchema(schema);
  if (validate(value)) return value as Static<T>;
  throw new ValidationError(message, describeIssues(validate.errors ?? []));
}

/**
 * One issue per failing location. A failed union (`anyOf`/`oneOf`) is reported
 * once — "must be one of: …" for a union of literals — instead of once per branch.
 */
function describeIssues(errors: readonly ErrorObject[]): ValidationIssue[] {
  const unions = new Set(errors.filter((e) => e.keyword === "anyOf" || e.keyword === "oneOf").map((e) => e.schemaPath.replace(/\/(anyOf|oneOf)$/, "")));
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const branchOf = [...unions].find((u) => e.schemaPath.startsWith(`${u}/anyOf/`) || e.schemaPath.startsWith(`${u}/oneOf/`));
    if (branchOf !== undefined) continue;
    const issue = e.keyword === "anyOf" || e.keyword === "oneOf" ? describeUnion(e, errors) : describeIssue(e);
    const key = `${issue.path}\u0000${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

/** A failed union: lists the allowed values when every branch is a literal. */
function describeUnion(union: ErrorObject, errors: readonly ErrorObject[]): ValidationIssue {
  const prefix = `${union.schemaPath}/`;
  const branches = errors.filter((e) => e.schemaPath.startsWith(prefix) && e.instancePath === union.instancePath);
  if (branches.length > 0 && branches.every((e) => e.keyword === "const")) {
    const allowed = branches.map((e) => JSON.stringify((e.params as { allowedValue: unknown }).allowedValue));
    return { path: union.instancePath, message: `must be one of: ${allowed.join(", ")}` };
  }
  return { path: union.instancePath, message: union.message ?? "must match one of the allowed forms" };
}

/** Turns an ajv error into `{path, message}`, pointing at the missing or unexpected property itself. */
function describeIssue(e: ErrorObject): ValidationIssue {
  const params = e.params as { missingProperty?: string; additionalProperty?: string };
  if (e.keyword === "required" && params.missingProperty !== undefined) {
    return { path: `${e.instancePath}/${escapePointer(params.missingProperty)}`, message: "is required" };
  }
  if (e.keyword === "additionalProperties" && params.additionalProperty !== undefined) {
    return { path: `${e.instancePath}/${escapePointer(params.additionalProperty)}`, message: "is not allowed" };
  }
  return { path: e.instancePath, message: e.message ?? "is invalid" };
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}
