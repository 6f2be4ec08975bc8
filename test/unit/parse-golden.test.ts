/**
 * Replays every golden transcript (`test/golden/<agent>[@<version>]/<case>.jsonl`, recorded from the real CLI
 * by `scripts/record-golden.ts`) through its agent's parser and deep-compares the events and the
 * outcome with the hand-checked `<case>.expected.json`. Every produced event must also validate
 * against its `data` schema in `EVENT_DATA_SCHEMAS` (the event contract).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { EVENT_DATA_SCHEMAS, type RunEventInput, type RunEventType } from "../../src/protocol/events.ts";
import type { AgentOutcome, ProcessExit } from "../../src/agent/types.ts";
import { GOLDEN_AGENTS, createGoldenParser, listGoldenFolders } from "../golden/agents.ts";

const GOLDEN_DIR = new URL("../golden/", import.meta.url).pathname;
const ajv = new Ajv({ strict: false, allErrors: true });
const validators = new Map<string, ValidateFunction>();

function validatorFor(type: string): ValidateFunction {
  let v = validators.get(type);
  if (!v) {
    const schema = EVENT_DATA_SCHEMAS[type as RunEventType];
    assert.ok(schema, `unknown event type ${type}`);
    v = ajv.compile(schema);
    validators.set(type, v);
  }
  return v;
}

/** Events, stderr replay and outcome for one recorded case. */
function replay(agent: (typeof GOLDEN_AGENTS)[number], dir: string, name: string) {
  const lines = readFileSync(join(dir, `${name}.jsonl`), "utf8").split("\n").filter((l) => l !== "");
  const meta = JSON.parse(readFileSync(join(dir, `${name}.meta.json`), "utf8")) as { exit: ProcessExit };
  const parser = createGoldenParser(agent);
  const events: RunEventInput[] = [...lines.flatMap((l) => parser.parseLine(l)), ...parser.end()];
  const stderr = meta.exit.stderr_tail.split("\n").filter(Boolean).flatMap((l) => parser.parseStderr(l));
  return { lines, events, stderr, outcome: parser.outcome(meta.exit) };
}

for (const { agent, folder } of listGoldenFolders(GOLDEN_DIR)) {
  const dir = join(GOLDEN_DIR, folder);
  const cases = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).map((f) => f.slice(0, -".jsonl".length));
  for (const name of cases) {
    test(`golden ${folder}/${name}`, () => {
      const expected = JSON.parse(readFileSync(join(dir, `${name}.expected.json`), "utf8")) as { events: RunEventInput[]; outcome: AgentOutcome };
      const { lines, events, stderr, outcome } = replay(agent, dir, name);
      assert.deepEqual(events, expected.events);
      assert.deepEqual(outcome, expected.outcome);
      for (const ev of [...events, ...stderr]) {
        const validate = validatorFor(ev.type);
        assert.ok(validate(ev.data), `${ev.type} data invalid: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(ev.data).slice(0, 300)}`);
      }
      for (const ev of stderr) assert.equal(ev.type === "log" && ev.data.stream, "stderr");
      if (lines.length > 0) assert.ok(events.length > 0, "a non-empty transcript yields events");
    });
  }
}

test("golden: an unknown stdout line becomes a log event, never dropped", () => {
  for (const agent of GOLDEN_AGENTS) {
    const parser = createGoldenParser(agent);
    assert.deepEqual(parser.parseLine("plain text"), [{ type: "log", data: { stream: "stdout", text: "plain text" } }], agent);
    const odd = '{"type":"something_new","x":1}';
    assert.deepEqual(parser.parseLine(odd), [{ type: "log", data: { stream: "stdout", text: odd, raw: { type: "something_new", x: 1 } } }], agent);
  }
});

test("golden: exit 0 after a signal without a terminal event is not success", () => {
  for (const agent of GOLDEN_AGENTS) {
    const outcome = createGoldenParser(agent).outcome({ exit_code: 0, stderr_tail: "" });
    assert.equal(outcome.kind, "failed", agent);
  }
});
