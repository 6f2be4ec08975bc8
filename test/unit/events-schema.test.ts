import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildRunEventJsonSchema, RUN_EVENT_TYPES } from "../../src/protocol/events.ts";

const committed = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../schemas/run-events.schema.json");

test("the committed run-event schema matches the event table (run `npm run schema` after changing an event)", () => {
  const onDisk = JSON.parse(readFileSync(committed, "utf8")) as { oneOf: Array<{ title: string }> };
  assert.deepEqual(onDisk, buildRunEventJsonSchema());
  assert.deepEqual(onDisk.oneOf.map((s) => s.title), RUN_EVENT_TYPES);
});
