/**
 * Loads the configuration (docs/architecture.md#configuration): schema defaults < YAML file <
 * environment (`OPENRUNNER_*`) < CLI flags, validated once with ajv against
 * {@link ConfigSchema}. Every invalid value throws a {@link ConfigError} that
 * names the setting the way the user wrote it, the expected form and the value:
 *
 * - environment: `OPENRUNNER_MAX_CONCURRENT_RUNS`
 * - file: `max_concurrent_runs (file openrunner.yaml)`, nested `agents.codex.args[0] (file …)`
 * - flags: `--max-concurrent-runs`
 *
 * Values of secret settings (`admin_password`, `jwt_secret`, `api_key`, agent
 * `env`) are never echoed; the message shows `[redacted, N characters]`.
 * This module never reads `process.env`: the caller passes the environment.
 */
import fs from "node:fs";
import path from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import YAML from "yaml";
import { ConfigError } from "../errors.ts";
import { ConfigSchema, type Config } from "./schema.ts";
import { isSecretSetting } from "./secrets.ts";

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** The environment (normally `process.env`, passed by the composition root). */
  env: Record<string, string | undefined>;
  /**
   * CLI flag values keyed by setting, in snake_case, camelCase (commander's
   * `maxConcurrentRuns`) or kebab-case. Keys that are not settings and
   * `undefined` values are ignored; strings are coerced like environment values.
   */
  flags?: Record<string, unknown>;
  /** The `--config` flag: YAML file to read; it must exist. Overrides `OPENRUNNER_CONFIG`. */
  configPath?: string;
  /** Folder relative paths of the config file are resolved against; default `process.cwd()`. */
  cwd?: string;
}

/** A scalar setting as the user can write it; see {@link listSettings}. */
export interface SettingInfo {
  key: string;
  env: string;
  flag: string;
  /** The expected form, e.g. "an integer from 1 to 10000". */
  expected: string;
  default?: unknown;
}

/** Where a setting's value came from: the schema default, the YAML file, the environment, a CLI flag, or `PATCH /api/config`. */
export type ConfigSource = "default" | "file" | "env" | "flag" | "api";

/**
 * What {@link loadConfigWithSources} returns: the configuration, where each value came from, and the file it read.
 * `sources` maps dotted setting paths (`max_concurrent_runs`, `docker.image`, `agents.codex.model`) to their source;
 * a path not in it (nor any of its ancestors) has its default. Read it with {@link sourceOf}.
 */
export interface LoadedConfig {
  config: Config;
  sources: Map<string, ConfigSource>;
  /** Absolute path of the configuration file read; undefined when there was none. */
  file: string | undefined;
}

/** Absolute data and workspaces folders; see {@link resolvePaths}. */
export interface ResolvedPaths {
  data_dir: string;
  workspaces_dir: string;
}

type SchemaNode = Record<string, unknown>;
type Source = { kind: "file"; label: string } | { kind: "env" } | { kind: "flag" };

const PROPERTIES = ConfigSchema.properties as unknown as Record<string, SchemaNode>;
const SECRET_KEYS = new Set(["admin_password", "jwt_secret", "api_key", "env", "database_url"]);
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;
let compiled: ValidateFunction | undefined;

/**
 * Builds the validated {@link Config} from defaults, the YAML file, the
 * environment and flags (lowest to highest precedence).
 *
 * File: `opts.configPath`, else `OPENRUNNER_CONFIG`, else `./openrunner.yaml`
 * if it exists. Top-level `key:` lines without a value count as unset.
 * Environment: `OPENRUNNER_<KEY>` for every scalar setting (empty means unset);
 * integers must be whole numbers, booleans `true`/`false`/`1`/`0`.
 *
 * @throws ConfigError for a missing named file, unreadable or non-mapping YAML,
 *   an unknown key in the file, or any value that does not match the schema.
 * @example
 * const config = loadConfig({ env: process.env, flags: program.opts(), configPath: program.opts().config });
 */
export function loadConfig(opts: LoadConfigOptions): Config {
  return loadConfigWithSources(opts).config;
}

/**
 * {@link loadConfig}, plus where each value came from (see {@link LoadedConfig}) and the path of the file read.
 * @throws what {@link loadConfig} throws
 * @example
 * const { config, sources, file } = loadConfigWithSources({ env: process.env });
 * sourceOf(sources, "max_concurrent_runs"); // "env" when OPENRUNNER_MAX_CONCURRENT_RUNS is set
 */
export function loadConfigWithSources(opts: LoadConfigOptions): LoadedConfig {
  const cwd = opts.cwd ?? process.cwd();
  const provenance = new Map<string, ConfigSource>();
  const values: Record<string, unknown> = {};
  const sources = new Map<string, Source>();
  const file = readConfigFile(opts, cwd);
  for (const [key, value] of Object.entries(file?.values ?? {})) {
    if (value === null) continue;
    values[key] = value;
    sources.set(key, { kind: "file", label: file!.label });
    recordLeaves(provenance, key, value, "file");
  }
  for (const s of listSettings()) {
    const raw = opts.env[s.env];
    if (raw === undefined || raw === "") continue;
    values[s.key] = coerceValue(raw, PROPERTIES[s.key]!, s.env, "env");
    sources.set(s.key, { kind: "env" });
    setSource(provenance, s.key, "env");
  }
  // The one nested setting with an environment name: the proxy's allowlist, kept as a string.
  const proxyPorts = opts.env.OPENRUNNER_PROXY_ALLOWED_PORTS;
  if (proxyPorts !== undefined && proxyPorts !== "") {
    values.proxy = { ...((values.proxy as Record<string, unknown> | undefined) ?? {}), allowed_ports: proxyPorts };
    sources.set("proxy", { kind: "env" });
    setSource(provenance, "proxy.allowed_ports", "env");
  }
  // Webhook targets: `OPENRUNNER_WEBHOOKS_ALLOWED_HOSTS="hooks.example.com,*.corp.example"` replaces the file's list.
  const webhookHosts = opts.env.OPENRUNNER_WEBHOOKS_ALLOWED_HOSTS;
  if (webhookHosts !== undefined && webhookHosts.trim() !== "") {
    const hosts = webhookHosts.split(",").map((h) => h.trim()).filter((h) => h !== "");
    values.webhooks = { ...((values.webhooks as Record<string, unknown> | undefined) ?? {}), allowed_hosts: hosts };
    setSource(provenance, "webhooks.allowed_hosts", "env");
  }
  for (const [name, raw] of Object.entries(opts.flags ?? {})) {
    const key = toSnakeCase(name);
    if (raw === undefined || !(key in PROPERTIES)) continue;
    values[key] = coerceValue(raw, PROPERTIES[key]!, flagOf(key), "flag");
    sources.set(key, { kind: "flag" });
    setSource(provenance, key, "flag");
  }
  const validate = (compiled ??= compileValidator());
  if (!validate(values)) throw toConfigError(validate.errors ?? [], values, sources, opts);
  checkRelations(values as Config, sources);
  return { config: values as Config, sources: provenance, file: file?.path };
}

/**
 * Checks a whole configuration object against the schema (filling defaults in place, as at boot) and the
 * relations between settings (`default_timeout_secs` within `max_timeout_secs`, …). For `PATCH /api/config`.
 * @returns the ajv errors, empty when valid
 * @throws ConfigError for a broken relation between two settings
 */
export function checkConfigValues(values: Record<string, unknown>): ErrorObject[] {
  const validate = (compiled ??= compileValidator());
  if (!validate(values)) return [...(validate.errors ?? [])];
  checkRelations(values as Config, new Map());
  return [];
}

/**
 * Where the value at `settingPath` (dotted: `docker.image`) came from: its own recorded source or its nearest
 * recorded ancestor's, else `default`.
 */
export function sourceOf(sources: ReadonlyMap<string, ConfigSource>, settingPath: string): ConfigSource {
  for (let p = settingPath; ; ) {
    const s = sources.get(p);
    if (s !== undefined) return s;
    const i = p.lastIndexOf(".");
    if (i === -1) return "default";
    p = p.slice(0, i);
  }
}

/** Records `source` for `key` and forgets what was recorded beneath it (a higher-precedence source replaced it). */
export function setSource(sources: Map<string, ConfigSource>, key: string, source: ConfigSource): void {
  for (const k of [...sources.keys()]) if (k.startsWith(`${key}.`)) sources.delete(k);
  sources.set(key, source);
}

/** Records `source` for every leaf (scalar, array, empty mapping or secret section such as an agent's `env`) of `value` at `prefix`. */
export function recordLeaves(sources: Map<string, ConfigSource>, prefix: string, value: unknown, source: ConfigSource): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length > 0 && !isSecretSetting(prefix.split("."))) {
    for (const [k, v] of Object.entries(value)) recordLeaves(sources, `${prefix}.${k}`, v, source);
  } else setSource(sources, prefix, source);
}

/**
 * Absolute `data_dir` and `workspaces_dir` (default `<data_dir>/workspaces`),
 * relative paths resolved against `cwd`. Touches no file.
 */
export function resolvePaths(config: Pick<Config, "data_dir" | "workspaces_dir">, cwd: string): ResolvedPaths {
  const data_dir = path.resolve(cwd, config.data_dir);
  const workspaces_dir = config.workspaces_dir ? path.resolve(cwd, config.workspaces_dir) : path.join(data_dir, "workspaces");
  return { data_dir, workspaces_dir };
}

/** Every scalar setting with its environment name, flag, expected form and default (for `--help` and docs). */
export function listSettings(): SettingInfo[] {
  return Object.entries(PROPERTIES)
    .filter(([, schema]) => isScalar(schema))
    .map(([key, schema]) => ({ key, env: `OPENRUNNER_${key.toUpperCase()}`, flag: flagOf(key), expected: describeExpected(schema, "env"), default: schema.default }));
}

function compileValidator(): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true });
  ajv.addKeyword({ keyword: "x-secret", schemaType: "boolean" }); // an annotation: see src/config/secrets.ts
  addFormats(ajv);
  return ajv.compile(ConfigSchema);
}

function readConfigFile(opts: LoadConfigOptions, cwd: string): { values: Record<string, unknown>; label: string; path: string } | undefined {
  const named = opts.configPath ?? (opts.env.OPENRUNNER_CONFIG || undefined);
  const setting = opts.configPath !== undefined ? "--config" : "OPENRUNNER_CONFIG";
  const label = named ?? "openrunner.yaml";
  const file = path.resolve(cwd, label);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (named === undefined && code === "ENOENT") return undefined;
    throw new ConfigError(named === undefined ? `file ${label}` : setting, "a readable YAML file", named ?? file);
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`file ${label}`, "valid YAML", String((err as Error).message).split("\n")[0]);
  }
  if (parsed === null || parsed === undefined) return { values: {}, label, path: file };
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`file ${label}`, "a mapping of settings (key: value lines)", parsed);
  }
  return { values: parsed as Record<string, unknown>, label, path: file };
}

/** Turns an environment/flag string into the schema's type; non-strings pass through for ajv. */
function coerceValue(raw: unknown, schema: SchemaNode, setting: string, kind: "env" | "flag"): unknown {
  if (typeof raw !== "string") return raw;
  const text = raw.trim();
  const fail = (): never => {
    throw new ConfigError(setting, describeExpected(schema, kind), redact(setting, raw));
  };
  switch (schema.type) {
    case "integer":
      return /^[+-]?\d+$/.test(text) ? Number(text) : fail();
    case "number":
      return text !== "" && Number.isFinite(Number(text)) ? Number(text) : fail();
    case "boolean": {
      const v = text.toLowerCase();
      return v === "true" || v === "1" ? true : v === "false" || v === "0" ? false : fail();
    }
    default:
      return raw;
  }
}

function toConfigError(errors: ErrorObject[], values: Record<string, unknown>, sources: Map<string, Source>, opts: LoadConfigOptions): ConfigError {
  const first = errors[0];
  if (!first) return new ConfigError("configuration", "valid", values);
  const err = errors.find((e) => e.instancePath === first.instancePath && e.keyword === "anyOf") ?? first;
  const segments = err.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  let value: unknown = err.data;
  let expected: string;
  if (err.keyword === "additionalProperties") {
    const extra = String((err.params as { additionalProperty: string }).additionalProperty);
    segments.push(extra);
    value = (err.data as Record<string, unknown>)[extra];
    const known = Object.keys((err.parentSchema?.properties as object | undefined) ?? {});
    expected = `a known setting (${known.join(", ")})`;
  } else {
    const top = segments[0];
    const kind = top !== undefined && sources.get(top)?.kind === "file" ? "file" : "env";
    expected = describeExpected(err.parentSchema as SchemaNode, kind);
    if (segments.length === 1 && top !== undefined && sources.get(top)?.kind !== "file") {
      value = rawValueOf(top, sources.get(top), opts) ?? value;
    }
  }
  const setting = nameSetting(segments, sources);
  return new ConfigError(setting, expected, redact(segments.join("."), value));
}

/** The value as the user wrote it (the environment string or the flag value). */
function rawValueOf(key: string, source: Source | undefined, opts: LoadConfigOptions): unknown {
  if (source?.kind === "env") return opts.env[`OPENRUNNER_${key.toUpperCase()}`];
  if (source?.kind === "flag") {
    return Object.entries(opts.flags ?? {}).find(([name, v]) => toSnakeCase(name) === key && v !== undefined)?.[1];
  }
  return undefined;
}

function nameSetting(segments: string[], sources: Map<string, Source>): string {
  const [top = "configuration"] = segments;
  const source = sources.get(top);
  if (source?.kind === "env") return `OPENRUNNER_${top.toUpperCase()}`;
  if (source?.kind === "flag") return flagOf(top);
  const dotted = segments.map((s, i) => (i > 0 && /^\d+$/.test(s) ? `[${s}]` : (i > 0 ? "." : "") + s)).join("");
  return source?.kind === "file" ? `${dotted} (file ${source.label})` : dotted;
}

/** Checks that span two settings: a listening port fits 16 bits; the default timeout is within the maximum. */
function checkRelations(config: Config, sources: Map<string, Source>): void {
  const port = Number(/:(\d+)$/.exec(config.addr)?.[1]);
  if (port > 65535) throw new ConfigError(nameSetting(["addr"], sources), "host:port with a port from 0 to 65535", config.addr);
  if (config.default_timeout_secs > config.max_timeout_secs) {
    const expected = `at most max_timeout_secs (${config.max_timeout_secs})`;
    throw new ConfigError(nameSetting(["default_timeout_secs"], sources), expected, config.default_timeout_secs);
  }
}

/** The expected form of a value, in words, from its schema. */
function describeExpected(schema: SchemaNode, kind: "env" | "flag" | "file"): string {
  const branches = schema.anyOf as SchemaNode[] | undefined;
  if (branches?.every((b) => "const" in b)) return `one of ${branches.map((b) => String(b.const)).join(", ")}`;
  const { minimum: min, maximum: max } = schema as { minimum?: number; maximum?: number };
  switch (schema.type) {
    case "integer":
    case "number": {
      const noun = schema.type === "integer" ? "an integer" : "a number";
      if (min !== undefined && max !== undefined) return `${noun} from ${min} to ${max}`;
      if (min !== undefined) return `${noun} of at least ${min}`;
      return max !== undefined ? `${noun} of at most ${max}` : noun;
    }
    case "boolean":
      return kind === "file" ? "true or false" : "true, false, 1 or 0";
    case "string": {
      if (typeof schema.description === "string") return schema.description;
      const minLength = (schema.minLength as number | undefined) ?? 0;
      return minLength > 1 ? `a string of at least ${minLength} characters` : minLength === 1 ? "a non-empty string" : "a string";
    }
    case "array":
      return `a list (each ${describeExpected((schema.items as SchemaNode | undefined) ?? {}, kind)})`;
    case "object":
      return schema.properties ? `a mapping with keys ${Object.keys(schema.properties).join(", ")}` : "a mapping";
    default:
      return "a valid value";
  }
}

function isScalar(schema: SchemaNode): boolean {
  const branches = schema.anyOf as SchemaNode[] | undefined;
  if (branches) return branches.every((b) => "const" in b);
  return ["string", "integer", "number", "boolean"].includes(schema.type as string);
}

function redact(settingPath: string, value: unknown): unknown {
  const normal = settingPath.toLowerCase().replace(/^(openrunner_|--)/, "").replace(/-/g, "_");
  const parts = normal.split(/[.[\s]/);
  if (!parts.some((p) => SECRET_KEYS.has(p)) && !isSecretSetting(parts.filter((p) => p !== ""))) return value;
  return typeof value === "string" ? `[redacted, ${value.length} characters]` : "[redacted]";
}

function toSnakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`).replace(/-/g, "_");
}

function flagOf(key: string): string {
  return `--${key.replace(/_/g, "-")}`;
}
