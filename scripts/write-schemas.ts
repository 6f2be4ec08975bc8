/**
 * Writes `schemas/run-events.schema.json`, the committed JSON Schema of the run
 * event contract, from the table in `src/protocol/events.ts`. Run after changing an
 * event type (`npm run schema`); `test/unit/events-schema.test.ts` fails while
 * the committed file and the table disagree.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildRunEventJsonSchema } from "../src/protocol/events.ts";

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../schemas/run-events.schema.json");
writeFileSync(file, `${JSON.stringify(buildRunEventJsonSchema(), null, 2)}\n`);
console.log(`wrote ${file}`);
