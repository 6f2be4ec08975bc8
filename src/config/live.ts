/**
 * The running configuration and its live changes (`GET`/`PATCH /api/config`,
 * docs/architecture.md#configuration). One {@link LiveConfig} per server holds
 * the one {@link Config} object every component reads, where each value came
 * from, and the file it was loaded from.
 *
 * A patch is a JSON merge patch (RFC 7396: objects merge, `null` removes a
 * setting, so it falls back to its default) over the current configuration.
 * It may touch only {@link LIVE_SETTINGS}; the merged whole is validated with
 * the boot validator (same schema, same relations); then it is applied in
 * place (nested objects are updated, not replaced, so the holders of a
 * reference — agent adapters, the run manager, the admission queue — read the
 * new values), and, when asked, written to the configuration file, changing
 * only the patched keys of the YAML document (comments and everything else kept).
 */
import fs from "node:fs";
import path from "node:path";
import type { ErrorObject } from "ajv";
import YAML from "yaml";
import { ConfigError, ConflictError, ValidationError } from "../errors.ts";
import { checkConfigValues, recordLeaves, sourceOf, type ConfigSource, type LoadedConfig } from "./load.ts";
import type { Config } from "./schema.ts";
import { isSecretSetting, redactConfig } from "./secrets.ts";

/**
 * The settings `PATCH /api/config` may change without a restart (a whole section counts with every key in it).
 * Every other setting answers 400 `config_not_live`.
 */
export const LIVE_SETTINGS = [
  "max_concurrent_runs",
  "max_concurrent_runs_per_user",
  "max_queued_runs_per_user",
  "batch_max_runs",
  "priority_aging_secs",
  "allow_shell_for_users",
  "default_timeout_secs",
  "max_timeout_secs",
  "kill_grace_ms",
  "sse_heartbeat_ms",
  "shutdown_runs",
  "shutdown_grace_ms",
  "permissions",
  "agents",
] as const satisfies ReadonlyArray<keyof Config>;

const LIVE = new Set<string>(LIVE_SETTINGS);

/** One changed setting (a leaf of the patch). `from`/`to` are absent for secret settings. */
export interface ConfigChange {
  /** Dotted path, e.g. `permissions.default_policy`. */
  key: string;
  secret: boolean;
  from?: unknown;
  to?: unknown;
}

/** What {@link LiveConfig.describe} returns: the redacted configuration and each leaf's source. */
export interface ConfigDescription {
  config: Record<string, unknown>;
  /** Dotted path of every leaf setting (scalars, lists, secret sections) -> where its value came from. */
  sources: Record<string, ConfigSource>;
  live: string[];
  /** The configuration file (absolute), or null when the server read none. */
  file: string | null;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

/** See the module comment. */
export class LiveConfig {
  readonly #config: Config;
  readonly #sources: Map<string, ConfigSource>;
  readonly #file: string | undefined;

  /** @param loaded what `loadConfigWithSources` returned; its `config` object is updated in place from now on. */
  constructor(loaded: LoadedConfig) {
    this.#config = loaded.config;
    this.#sources = loaded.sources;
    this.#file = loaded.file;
  }

  /** The one configuration object (changes in place). */
  get config(): Config {
    return this.#config;
  }

  /** The configuration with secrets redacted, and where each value came from. */
  describe(): ConfigDescription {
    const sources: Record<string, ConfigSource> = {};
    for (const [key] of leavesOf(this.#config, [])) sources[key.join(".")] = sourceOf(this.#sources, key.join("."));
    return { config: redactConfig(this.#config) as Record<string, unknown>, sources, live: [...LIVE_SETTINGS], file: this.#file ?? null };
  }

  /**
   * Validates and applies a merge patch; with `persist`, also writes the patched keys to the configuration file.
   * Nothing is applied or written when any check fails.
   * @returns the changed leaves (secret values left out), in patch order
   * @throws ValidationError 400: `validation_failed` (not an object; a value the schema refuses, `details` the
   *   issues `[{path, message}]`; a relation between settings, `details {setting, expected}`), `config_not_live`
   *   (`details {key}`: a setting outside {@link LIVE_SETTINGS}); ConflictError 409 `config_not_persistable`
   *   (persist without a configuration file); fs errors when the file cannot be written
   */
  apply(patch: unknown, opts: { persist: boolean }): ConfigChange[] {
    if (!isObj(patch)) throw new ValidationError("the patch must be a JSON object of settings", [{ path: "", message: "must be object" }]);
    for (const key of Object.keys(patch)) {
      if (!LIVE.has(key)) throw new ValidationError(`${key} cannot change while the server runs (live: ${LIVE_SETTINGS.join(", ")})`, { key }, "config_not_live");
    }
    if (opts.persist && this.#file === undefined) throw new ConflictError("the server was started without a configuration file: nothing to write the change to", "config_not_persistable");
    const next = structuredClone(this.#config) as Obj;
    mergePatch(next, patch);
    let errors: ErrorObject[];
    try {
      errors = checkConfigValues(next);
    } catch (err) {
      if (err instanceof ConfigError) throw new ValidationError(err.message.replace(/, got .*$/s, ""), { setting: err.setting, expected: err.expected });
      throw err;
    }
    if (errors.length > 0) throw new ValidationError("invalid configuration", errors.map((e) => ({ path: e.instancePath, message: e.message ?? "is invalid" })));
    const changes: ConfigChange[] = [];
    for (const [segments] of leavesOf(patch, [])) {
      const key = segments.join(".");
      const secret = isSecretSetting(segments);
      const from = getIn(this.#config, segments);
      const to = getIn(next, segments);
      if (JSON.stringify(from) === JSON.stringify(to)) continue;
      changes.push(secret ? { key, secret } : { key, secret, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) });
    }
    if (opts.persist) this.#persist(patch);
    for (const key of Object.keys(patch)) assignInPlace(this.#config as unknown as Obj, key, next[key]);
    for (const [segments, value] of leavesOf(patch, [])) recordLeaves(this.#sources, segments.join("."), value, "api");
    return changes;
  }

  /**
   * Writes the patch's leaves into the YAML file, keeping the rest of the document; atomic (temp file + rename).
   * The file keeps its mode, without group and other bits when the patch writes a secret.
   */
  #persist(patch: Obj): void {
    const file = this.#file!;
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    const doc = YAML.parseDocument(text);
    for (const [segments, value] of leavesOf(patch, [])) {
      if (value === null) doc.deleteIn(segments);
      else doc.setIn(segments, value);
    }
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    // A patch that writes a secret leaves the file readable by its owner only, whatever its mode was.
    const secret = leavesOf(patch, []).some(([segments, value]) => value !== null && segments.some((_, i) => isSecretSetting(segments.slice(0, i + 1).map(String))));
    const was = fs.existsSync(file) ? fs.statSync(file).mode & 0o777 : 0o600;
    const mode = secret ? was & 0o700 : was;
    fs.writeFileSync(tmp, doc.toString(), { mode });
    fs.renameSync(tmp, file);
  }
}

/** RFC 7396 merge of `patch` into `target` (mutated); a secret section (an agent's `env`) is replaced whole. */
function mergePatch(target: Obj, patch: Obj, prefix: string[] = []): void {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (isObj(v) && !isSecretSetting([...prefix, k])) {
      const t = isObj(target[k]) ? (target[k] as Obj) : {};
      mergePatch(t, v, [...prefix, k]);
      target[k] = t;
    } else target[k] = structuredClone(v);
  }
}

/**
 * Sets `target[key]` to `value` keeping object identity where both are objects (holders of the old object see
 * the new keys): removed keys are deleted, nested objects updated the same way.
 */
function assignInPlace(target: Obj, key: string, value: unknown): void {
  const old = target[key];
  if (!isObj(old) || !isObj(value)) {
    if (value === undefined) delete target[key];
    else target[key] = value;
    return;
  }
  for (const k of Object.keys(old)) {
    if (k in value) continue;
    if (isObj(old[k])) clearObject(old[k] as Obj);
    else delete old[k];
  }
  for (const [k, v] of Object.entries(value)) assignInPlace(old, k, v);
}

/** An object someone may hold a reference to (an agent's settings) is emptied rather than dropped. */
function clearObject(o: Obj): void {
  for (const k of Object.keys(o)) delete o[k];
}

/** The leaves of a value: scalars, arrays, `null`, empty objects and secret sections, with their paths. */
function leavesOf(value: unknown, prefix: string[]): Array<[string[], unknown]> {
  if (isObj(value) && Object.keys(value).length > 0 && !(prefix.length > 0 && isSecretSetting(prefix))) {
    return Object.entries(value).flatMap(([k, v]) => leavesOf(v, [...prefix, k]));
  }
  return prefix.length > 0 ? [[prefix, value]] : [];
}

function getIn(value: unknown, segments: readonly string[]): unknown {
  let v = value;
  for (const s of segments) v = isObj(v) ? v[s] : undefined;
  return v;
}
