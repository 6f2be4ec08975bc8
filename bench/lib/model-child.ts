/**
 * The scripted model server (`test/fixtures/model-server/`) in a child process of its own, so a
 * benchmark's SDK client and the model server do not share an event loop. Prints its URL as
 * the first stdout line; each stdin line is a scenario (JSON), answered with `ok` on stdout
 * once it is set.
 */
import { createInterface } from "node:readline";
import { startModelServer } from "../../test/fixtures/model-server/index.ts";

const server = await startModelServer();
process.stdout.write(`${server.url}\n`);
createInterface({ input: process.stdin }).on("line", (line) => {
  server.setScenario(JSON.parse(line));
  process.stdout.write("ok\n");
});
process.stdin.on("end", () => void server.close().then(() => process.exit(0)));
