import { test } from "node:test";
import assert from "node:assert/strict";
import { guardParser } from "../../src/agent/guarded-parser.ts";
import type { LineParser } from "../../src/agent/types.ts";

const broken: LineParser = {
  parseLine: (line) => {
    if (line.startsWith("bad")) throw new TypeError("Cannot read properties of null");
    return [{ type: "message", data: { message_id: "m1", role: "assistant", text: line } }];
  },
  parseStderr: () => {
    throw new Error("stderr boom");
  },
  end: () => {
    throw new Error("end boom");
  },
  outcome: () => {
    throw new Error("outcome boom");
  },
};

test("a throwing parser never throws through the guard and never loses a line", () => {
  const errors: string[] = [];
  const p = guardParser(broken, (err, where) => errors.push(`${where}: ${(err as Error).message}`));
  assert.deepEqual(p.parseLine("fine"), [{ type: "message", data: { message_id: "m1", role: "assistant", text: "fine" } }]);
  assert.deepEqual(p.parseLine('bad {"content":[null]}'), [{ type: "log", data: { stream: "stdout", text: 'bad {"content":[null]}' } }]);
  assert.deepEqual(p.parseStderr("warn"), [{ type: "log", data: { stream: "stderr", text: "warn" } }]);
  assert.deepEqual(p.end(), []);
  const o = p.outcome({ exit_code: 0, stderr_tail: "" });
  assert.equal(o.kind, "failed");
  assert.equal(o.kind === "failed" && o.code, "internal");
  assert.deepEqual(errors, ["parseLine: Cannot read properties of null", "parseStderr: stderr boom", "end: end boom", "outcome: outcome boom"]);
});
