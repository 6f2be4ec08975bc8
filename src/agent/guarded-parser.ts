/**
 * Wraps an adapter's {@link LineParser} so that a parser bug can never take the
 * server down or lose a line: a line whose parsing throws becomes a `log`
 * event carrying the line itself, `end()` that throws yields nothing, and an
 * `outcome()` that throws fails the run with `internal` and the error message.
 */
import type { RunEventInput } from "../protocol/events.ts";
import { logEvent } from "./cli-support.ts";
import type { AgentOutcome, LineParser, ProcessExit } from "./types.ts";

/** Returns a parser with the same behaviour that never throws; `onError` hears of each failure. */
export function guardParser(parser: LineParser, onError: (err: unknown, where: string) => void = () => {}): LineParser {
  const asLog = (stream: "stdout" | "stderr", line: string): RunEventInput[] => [logEvent(stream, line)];
  return {
    parseLine(line: string): RunEventInput[] {
      try {
        return parser.parseLine(line);
      } catch (err) {
        onError(err, "parseLine");
        return asLog("stdout", line);
      }
    },
    parseStderr(line: string): RunEventInput[] {
      try {
        return parser.parseStderr(line);
      } catch (err) {
        onError(err, "parseStderr");
        return asLog("stderr", line);
      }
    },
    end(): RunEventInput[] {
      try {
        return parser.end();
      } catch (err) {
        onError(err, "end");
        return [];
      }
    },
    outcome(exit: ProcessExit): AgentOutcome {
      try {
        return parser.outcome(exit);
      } catch (err) {
        onError(err, "outcome");
        return { kind: "failed", code: "internal", message: `output parser failed: ${err instanceof Error ? err.message : String(err)}`, ...(exit.exit_code !== undefined ? { exit_code: exit.exit_code } : {}) };
      }
    },
  };
}
