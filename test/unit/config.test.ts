import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig, resolvePaths, listSettings } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "openrunner-config-"));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fresh folder holding `openrunner.yaml` with `yaml` (or no file when undefined). */
function makeDir(yaml?: string): string {
  const dir = fs.mkdtempSync(path.join(tmp, "case-"));
  if (yaml !== undefined) fs.writeFileSync(path.join(dir, "openrunner.yaml"), yaml);
  return dir;
}

/** Asserts that `fn` throws a ConfigError naming `setting`, `expected` and the value `got`. */
function assertConfigError(fn: () => unknown, setting: string, expected: string | RegExp, got: unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.setting, setting);
    if (typeof expected === "string") assert.equal(err.expected, expected);
    else assert.match(err.expected, expected);
    assert.deepEqual(err.value, got);
    assert.ok(err.message.includes(setting) && err.message.includes(err.expected) && err.message.includes(JSON.stringify(got)));
    return true;
  });
}

describe("precedence", () => {
  test("defaults when nothing is set, and no file is required", () => {
    const config = loadConfig({ env: {}, cwd: makeDir() });
    assert.equal(config.addr, "127.0.0.1:3000");
    assert.equal(config.data_dir, "./data");
    assert.equal(config.max_concurrent_runs, 8);
    assert.equal(config.default_timeout_secs, 300);
    assert.equal(config.log_level, "info");
    assert.deepEqual(config.agents, {});
    assert.equal(config.workspaces_dir, undefined);
  });

  test("file over defaults, environment over file, flags over environment", () => {
    const cwd = makeDir("max_concurrent_runs: 20\nlog_level: debug\ndata_dir: /srv/file\nkill_grace_ms: 7\nadmin_password:\n");
    const fromFile = loadConfig({ env: {}, cwd });
    assert.equal(fromFile.max_concurrent_runs, 20);
    assert.equal(fromFile.log_level, "debug");
    assert.equal(fromFile.data_dir, "/srv/file");
    assert.equal(fromFile.admin_password, undefined, "an empty YAML value means unset");

    const env = { OPENRUNNER_MAX_CONCURRENT_RUNS: "30", OPENRUNNER_LOG_LEVEL: "warn", OPENRUNNER_LOG_JSON: "1", OPENRUNNER_ADDR: "" };
    const fromEnv = loadConfig({ env, cwd });
    assert.equal(fromEnv.max_concurrent_runs, 30);
    assert.equal(fromEnv.log_level, "warn");
    assert.equal(fromEnv.log_json, true);
    assert.equal(fromEnv.data_dir, "/srv/file");
    assert.equal(fromEnv.addr, "127.0.0.1:3000", "an empty environment value means unset");

    const fromFlags = loadConfig({ env, cwd, flags: { maxConcurrentRuns: "40", "log-level": "error", log_json: false, config: "ignored", unused: undefined } });
    assert.equal(fromFlags.max_concurrent_runs, 40);
    assert.equal(fromFlags.log_level, "error");
    assert.equal(fromFlags.log_json, false);
    assert.equal(fromFlags.data_dir, "/srv/file");
    assert.equal(fromFlags.kill_grace_ms, 7);
  });

  test("file choice: configPath over OPENRUNNER_CONFIG over ./openrunner.yaml", () => {
    const cwd = makeDir("max_concurrent_runs: 2\n");
    fs.writeFileSync(path.join(cwd, "env.yaml"), "max_concurrent_runs: 3\n");
    fs.writeFileSync(path.join(cwd, "flag.yaml"), "max_concurrent_runs: 4\n");
    assert.equal(loadConfig({ env: {}, cwd }).max_concurrent_runs, 2);
    assert.equal(loadConfig({ env: { OPENRUNNER_CONFIG: "env.yaml" }, cwd }).max_concurrent_runs, 3);
    assert.equal(loadConfig({ env: { OPENRUNNER_CONFIG: "env.yaml" }, cwd, configPath: path.join(cwd, "flag.yaml") }).max_concurrent_runs, 4);
  });

  test("agents come from the file", () => {
    const cwd = makeDir("agents:\n  codex:\n    model: gpt-5\n    args: [--yolo]\n    env: {OPENAI_BASE_URL: 'http://x'}\n");
    assert.deepEqual(loadConfig({ env: {}, cwd }).agents, { codex: { model: "gpt-5", args: ["--yolo"], env: { OPENAI_BASE_URL: "http://x" } } });
  });

  test("an invalid value overridden by a higher layer is not reported", () => {
    const cwd = makeDir("max_concurrent_runs: 0\n");
    assert.equal(loadConfig({ env: { OPENRUNNER_MAX_CONCURRENT_RUNS: "5" }, cwd }).max_concurrent_runs, 5);
  });
});

describe("errors name the setting, the expected form and the value", () => {
  const cwd = () => makeDir();

  test("environment", () => {
    const at = (env: Record<string, string>) => () => loadConfig({ env, cwd: cwd() });
    assertConfigError(at({ OPENRUNNER_MAX_CONCURRENT_RUNS: "0" }), "OPENRUNNER_MAX_CONCURRENT_RUNS", "an integer from 1 to 10000", "0");
    assertConfigError(at({ OPENRUNNER_MAX_CONCURRENT_RUNS: "2.5" }), "OPENRUNNER_MAX_CONCURRENT_RUNS", "an integer from 1 to 10000", "2.5");
    assertConfigError(at({ OPENRUNNER_MAX_CONCURRENT_RUNS: "8.0" }), "OPENRUNNER_MAX_CONCURRENT_RUNS", "an integer from 1 to 10000", "8.0");
    assertConfigError(at({ OPENRUNNER_MAX_CONCURRENT_RUNS: "1e3" }), "OPENRUNNER_MAX_CONCURRENT_RUNS", "an integer from 1 to 10000", "1e3");
    assertConfigError(at({ OPENRUNNER_DEFAULT_TIMEOUT_SECS: "ten" }), "OPENRUNNER_DEFAULT_TIMEOUT_SECS", "an integer from 1 to 604800", "ten");
    assertConfigError(at({ OPENRUNNER_LOG_LEVEL: "loud" }), "OPENRUNNER_LOG_LEVEL", "one of silly, trace, debug, info, warn, error, fatal", "loud");
    assertConfigError(at({ OPENRUNNER_ADDR: "localhost" }), "OPENRUNNER_ADDR", "host:port", "localhost");
    assertConfigError(at({ OPENRUNNER_ADDR: "localhost:99999" }), "OPENRUNNER_ADDR", /port from 0 to 65535/, "localhost:99999");
    assertConfigError(at({ OPENRUNNER_LOG_JSON: "yes" }), "OPENRUNNER_LOG_JSON", "true, false, 1 or 0", "yes");
    assertConfigError(at({ OPENRUNNER_SHUTDOWN_RUNS: "later" }), "OPENRUNNER_SHUTDOWN_RUNS", "one of cancel, wait", "later");
  });

  test("secrets are not echoed", () => {
    assertConfigError(() => loadConfig({ env: { OPENRUNNER_JWT_SECRET: "short-secret" }, cwd: cwd() }), "OPENRUNNER_JWT_SECRET", "a string of at least 32 characters", "[redacted, 12 characters]");
    assertConfigError(() => loadConfig({ env: {}, flags: { adminPassword: "pw" }, cwd: cwd() }), "--admin-password", "a string of at least 8 characters", "[redacted, 2 characters]");
  });

  test("file values, nested values and unknown keys", () => {
    const file = (yaml: string) => () => loadConfig({ env: {}, cwd: makeDir(yaml) });
    assertConfigError(file("max_concurrent_runs: 0\n"), "max_concurrent_runs (file openrunner.yaml)", "an integer from 1 to 10000", 0);
    assertConfigError(file("max_concurrent_runs: '8'\n"), "max_concurrent_runs (file openrunner.yaml)", "an integer from 1 to 10000", "8");
    assertConfigError(file("log_json: maybe\n"), "log_json (file openrunner.yaml)", "true or false", "maybe");
    assertConfigError(file("max_concurent_runs: 3\n"), "max_concurent_runs (file openrunner.yaml)", /^a known setting \(addr, data_dir, .*max_concurrent_runs/, 3);
    assertConfigError(file("agents:\n  codex:\n    modle: x\n"), "agents.codex.modle (file openrunner.yaml)", /^a known setting \(command, base_url, api_key, model, env, args, .*max_retries/ , "x");
    assertConfigError(file("agents:\n  codex:\n    args: [1]\n"), "agents.codex.args[0] (file openrunner.yaml)", "a string", 1);
    assertConfigError(file("- a\n- b\n"), "file openrunner.yaml", "a mapping of settings (key: value lines)", ["a", "b"]);
    assert.throws(file("a: [\n"), (err: unknown) => err instanceof ConfigError && err.setting === "file openrunner.yaml" && err.expected === "valid YAML");
  });

  test("the named file in the message is the one the user named", () => {
    const dir = makeDir();
    fs.writeFileSync(path.join(dir, "custom.yaml"), "log_level: 3\n");
    assertConfigError(() => loadConfig({ env: { OPENRUNNER_CONFIG: "custom.yaml" }, cwd: dir }), "log_level (file custom.yaml)", /^one of silly/, 3);
  });

  test("flags", () => {
    const at = (flags: Record<string, unknown>) => () => loadConfig({ env: {}, flags, cwd: cwd() });
    assertConfigError(at({ maxConcurrentRuns: "x" }), "--max-concurrent-runs", "an integer from 1 to 10000", "x");
    assertConfigError(at({ max_concurrent_runs_per_user: 0 }), "--max-concurrent-runs-per-user", "an integer from 1 to 10000", 0);
    assertConfigError(at({ logJson: "sometimes" }), "--log-json", "true, false, 1 or 0", "sometimes");
  });

  test("settings that must agree", () => {
    assertConfigError(
      () => loadConfig({ env: { OPENRUNNER_DEFAULT_TIMEOUT_SECS: "600" }, flags: { maxTimeoutSecs: 60 }, cwd: cwd() }),
      "OPENRUNNER_DEFAULT_TIMEOUT_SECS",
      "at most max_timeout_secs (60)",
      600,
    );
  });

  test("a named file that does not exist is an error", () => {
    const dir = cwd();
    assertConfigError(() => loadConfig({ env: {}, configPath: "missing.yaml", cwd: dir }), "--config", "a readable YAML file", "missing.yaml");
    assertConfigError(() => loadConfig({ env: { OPENRUNNER_CONFIG: "gone.yaml" }, cwd: dir }), "OPENRUNNER_CONFIG", "a readable YAML file", "gone.yaml");
  });
});

describe("resolvePaths and listSettings", () => {
  test("relative paths resolve against cwd; workspaces default under data_dir", () => {
    assert.deepEqual(resolvePaths({ data_dir: "./data" }, "/srv/app"), { data_dir: "/srv/app/data", workspaces_dir: "/srv/app/data/workspaces" });
    assert.deepEqual(resolvePaths({ data_dir: "/var/lib/or", workspaces_dir: "ws" }, "/srv/app"), { data_dir: "/var/lib/or", workspaces_dir: "/srv/app/ws" });
  });

  test("every scalar setting has an OPENRUNNER_ name and a flag", () => {
    const byKey = new Map(listSettings().map((s) => [s.key, s]));
    assert.equal(byKey.get("max_concurrent_runs")?.env, "OPENRUNNER_MAX_CONCURRENT_RUNS");
    assert.equal(byKey.get("workspaces_dir")?.flag, "--workspaces-dir");
    assert.equal(byKey.get("default_timeout_secs")?.default, 300);
    assert.equal(byKey.has("agents"), false);
    for (const name of ["ADDR", "DATA_DIR", "WORKSPACES_DIR", "ADMIN_PASSWORD", "JWT_SECRET", "MAX_CONCURRENT_RUNS", "MAX_CONCURRENT_RUNS_PER_USER", "DEFAULT_TIMEOUT_SECS", "LOG_LEVEL"]) {
      assert.ok(listSettings().some((s) => s.env === `OPENRUNNER_${name}`), name);
    }
  });
});
