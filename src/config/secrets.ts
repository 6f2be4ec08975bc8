/**
 * Which settings are secret, and the configuration with their values hidden
 * (`GET /api/config`, the `config.changed` audit event). A setting is secret
 * when the schema marks it or any of its parents `x-secret` (`schema.ts`:
 * `jwt_secret`, `admin_password`, agents' `api_key` and `env`, ACP agents'
 * `mcp_servers` …), or, as a backstop for settings added without the mark,
 * when a segment of its path is a secret-looking name (`*_secret`, `password`,
 * `token`, `api_key`, `credentials`, `env`, `headers`: HTTP headers carry credentials).
 */
import { ConfigSchema } from "./schema.ts";

/** What a secret value is shown as. */
export const REDACTED = "[redacted]";

type Node = Record<string, unknown>;

const SECRET_NAME = /(^|_)(secret|password|passphrase|token|api_?key|credentials?|private_key)($|_)|^(env|headers)$/i;

/** The schema node of a setting path (`["agents", "codex", "api_key"]`), through records and arrays; undefined when unknown. */
function childOf(node: Node, segment: string): Node | undefined {
  const props = node.properties as Record<string, Node> | undefined;
  if (props && Object.hasOwn(props, segment)) return props[segment];
  const patterns = node.patternProperties as Record<string, Node> | undefined;
  if (patterns) return Object.values(patterns)[0];
  if (typeof node.additionalProperties === "object") return node.additionalProperties as Node;
  if (node.items && typeof node.items === "object") return node.items as Node;
  const branches = node.anyOf as Node[] | undefined;
  return branches?.map((b) => childOf(b, segment)).find((c) => c !== undefined);
}

/**
 * True when the setting at `settingPath` (segments, e.g. `["agents", "codex", "env", "TOKEN"]`) is secret
 * (see the module comment).
 */
export function isSecretSetting(settingPath: readonly string[]): boolean {
  let node: Node | undefined = ConfigSchema as unknown as Node;
  for (const segment of settingPath) {
    if (SECRET_NAME.test(segment)) return true;
    node = node ? childOf(node, segment) : undefined;
    if (node?.["x-secret"] === true) return true;
  }
  return false;
}

/**
 * A deep copy of `value` (a configuration, or part of one at `prefix`) with every secret setting's value
 * replaced by {@link REDACTED}; an unset secret stays absent.
 * @example redactConfig({ jwt_secret: "…", max_concurrent_runs: 8 }) // { jwt_secret: "[redacted]", max_concurrent_runs: 8 }
 */
export function redactConfig(value: unknown, prefix: readonly string[] = []): unknown {
  if (prefix.length > 0 && isSecretSetting(prefix)) return value === undefined ? undefined : REDACTED;
  if (Array.isArray(value)) return value.map((v, i) => redactConfig(v, [...prefix, String(i)]));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactConfig(v, [...prefix, k])]));
  }
  return value;
}
