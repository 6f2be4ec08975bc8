/**
 * The tested agent versions: `scripts/agents.lock.json`, the one committed file that names the exact
 * version of every agent CLI and ACP adapter the test suite was run against. `scripts/install-agents.sh`
 * installs exactly these by default, `/health/agents` compares each installed version with it
 * (`tested`, `tested_version`), and `npm run compat` checks it against the registry's latest.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Type, type Static } from "@sinclair/typebox";
import { Ajv } from "ajv";
import type { AgentHealth } from "./types.ts";
import { REPO_ROOT } from "./cli-support.ts";

/** One pinned npm package. */
export const PinnedPackageSchema = Type.Object(
  {
    /** npm package name, e.g. `@openai/codex`. */
    package: Type.String({ minLength: 1 }),
    /** Exact version (no range), e.g. `0.169.0`. */
    version: Type.String({ pattern: "^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?$" }),
    /** The executable it puts in `<prefix>/bin`. */
    bin: Type.String({ minLength: 1 }),
    /** Installed only with `install-agents.sh --acp` (an ACP adapter). */
    acp: Type.Optional(Type.Boolean()),
    /** The `/health/agents` entries whose `version` is this package's (`codex`, `acp:gemini` …). */
    agents: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
  },
  { additionalProperties: false },
);

/** The whole lock file. Keys of `packages` are the install script's names (`claude-code`, `codex` …). */
export const AgentsLockSchema = Type.Object(
  {
    $comment: Type.Optional(Type.String()),
    /** The day the pins were last checked (`YYYY-MM-DD`). */
    tested_on: Type.String({ pattern: "^\\d{4}-\\d{2}-\\d{2}$" }),
    packages: Type.Record(Type.String({ pattern: "^[a-z][a-z0-9-]*$" }), PinnedPackageSchema),
  },
  { additionalProperties: false },
);

/** See {@link AgentsLockSchema}. */
export type AgentsLock = Static<typeof AgentsLockSchema>;

/** Absolute path of the committed lock file. */
export const AGENTS_LOCK_PATH = join(REPO_ROOT, "scripts", "agents.lock.json");

const validateLock = new Ajv({ allErrors: true }).compile<AgentsLock>(AgentsLockSchema);

/**
 * Reads and validates the lock file.
 * @param path default {@link AGENTS_LOCK_PATH}
 * @throws Error naming the file and the schema violations when it is missing, not JSON, or invalid.
 */
export function readAgentsLock(path = AGENTS_LOCK_PATH): AgentsLock {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`agents lock ${path}: ${(err as Error).message}`);
  }
  if (!validateLock(parsed)) {
    const why = (validateLock.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`).join("; ");
    throw new Error(`agents lock ${path} is invalid: ${why}`);
  }
  return parsed;
}

/**
 * The version of npm package `pkg` installed in the npm prefix `prefix` (`<prefix>/lib/node_modules/<pkg>/package.json`,
 * the layout of `npm install --global --prefix`), or undefined when it is not installed there.
 */
export function installedVersion(prefix: string, pkg: string): string | undefined {
  const manifest = join(prefix, "lib", "node_modules", pkg, "package.json");
  if (!existsSync(manifest)) return undefined;
  const version = (JSON.parse(readFileSync(manifest, "utf8")) as { version?: unknown }).version;
  return typeof version === "string" ? version : undefined;
}

/** Tested version per `/health/agents` entry name (`codex` -> `0.169.0`, `acp:gemini` -> gemini's pin). */
export function testedVersionsOf(lock: AgentsLock): ReadonlyMap<string, string> {
  const out = new Map<string, string>();
  for (const pkg of Object.values(lock.packages)) for (const agent of pkg.agents) out.set(agent, pkg.version);
  return out;
}

/**
 * Adds `tested_version` and `tested` to a health entry that has a pin: `tested` is true when the
 * detected version equals the pin, false when it differs or could not be read. Entries without a pin
 * (`shell`, `task`, configured ACP agents) are returned unchanged.
 */
export function withTestedVersion(health: AgentHealth, tested: ReadonlyMap<string, string>): AgentHealth {
  const pinned = tested.get(health.agent);
  if (pinned === undefined) return health;
  return { ...health, tested_version: pinned, tested: health.version === pinned };
}
