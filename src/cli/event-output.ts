/**
 * Writes run events to the terminal for `run` and `logs`: rendered text (see
 * `render.ts`) or, with `--json`, one JSON object per line. On a terminal a
 * spinner (nanospinner, on stderr) shows while the run is quiet and nothing is
 * half-printed; it is cleared before any output.
 */
import { createSpinner, type Spinner } from "nanospinner";
import type { RunEvent } from "../protocol/events.ts";
import { shouldUseColor, type CliContext } from "./context.ts";
import { createRenderer } from "./render.ts";

/** Prints events and reconnect notes; `finish()` ends the line and stops the spinner. */
export interface EventOutput {
  print(event: RunEvent): void;
  note(text: string): void;
  finish(): void;
}

const SPINNER_IDLE_MS = 300;

/**
 * Creates the output for one command.
 * @param opts.json one JSON line per event, no spinner, no notes on stdout.
 * @param opts.spinner allow the spinner (it still needs stdout and stderr to be terminals).
 */
export function createEventOutput(ctx: CliContext, opts: { json: boolean; spinner: boolean }): EventOutput {
  if (opts.json) {
    return {
      print: (event) => void ctx.stdout.write(`${JSON.stringify(event)}\n`),
      note: (text) => void ctx.stderr.write(`${text}\n`),
      finish: () => {},
    };
  }
  const renderer = createRenderer({ color: shouldUseColor(ctx) });
  // nanospinner divides by the width to clear its lines: a terminal of unknown width (0) would loop forever.
  const useSpinner =
    opts.spinner && ctx.stdout.isTTY === true && ctx.stderr.isTTY === true && (ctx.stderr.columns ?? 0) > 0 && ctx.env.TERM !== "dumb";
  const spinner: Spinner | undefined = useSpinner
    ? createSpinner("waiting", { stream: ctx.stderr as NodeJS.WriteStream })
    : undefined;
  let timer: NodeJS.Timeout | undefined;
  let status = "waiting";
  let finished = false;

  const stopSpinner = () => {
    clearTimeout(timer);
    timer = undefined;
    if (spinner?.isSpinning()) spinner.stop();
  };
  const scheduleSpinner = () => {
    if (!spinner || finished || renderer.midLine) return;
    clearTimeout(timer);
    timer = setTimeout(() => spinner.start({ text: status }), SPINNER_IDLE_MS);
  };
  const write = (text: string) => {
    if (text === "") return;
    stopSpinner();
    ctx.stdout.write(text);
  };

  scheduleSpinner();
  return {
    print(event) {
      status = describeStatus(event, status);
      write(renderer.render(event));
      scheduleSpinner();
    },
    note(text) {
      write(renderer.flush());
      stopSpinner();
      ctx.stderr.write(`${text}\n`);
      scheduleSpinner();
    },
    finish() {
      finished = true;
      stopSpinner();
      write(renderer.flush());
    },
  };
}

/** The spinner text after an event: what the run is doing now. */
function describeStatus(event: RunEvent, previous: string): string {
  switch (event.type) {
    case "run.queued":
      return "queued";
    case "run.started":
      return "running";
    case "tool.call":
      return `running ${event.data.name}`;
    case "tool.result":
    case "message":
    case "usage":
      return "thinking";
    case "permission.request":
      return "waiting for permission";
    default:
      return previous === "waiting" ? "running" : previous;
  }
}
