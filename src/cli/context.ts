/**
 * What a client command gets from the composition root (`src/main.ts`): the
 * environment and the three standard streams. Commands never read `process`
 * themselves, so tests can hand them fakes.
 */

/** A writable text stream, possibly a terminal. */
export interface TextOutput {
  write(chunk: string): boolean;
  isTTY?: boolean;
  /** Terminal width; 0 or absent when unknown. */
  columns?: number;
}

/** A readable stream, possibly a terminal (`setRawMode` exists only on a TTY). */
export type TextInput = NodeJS.ReadableStream & {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
};

/** The environment and streams of one CLI invocation. */
export interface CliContext {
  env: Readonly<Record<string, string | undefined>>;
  stdin: TextInput;
  stdout: TextOutput;
  stderr: TextOutput;
}

/** Thrown for bad command-line usage found after commander's own checks; exits 2. */
export class CliUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliUsageError";
  }
}

/**
 * True when output to `stdout` should be coloured: a TTY, and neither
 * `NO_COLOR` set nor `TERM=dumb`; `FORCE_COLOR` (not "0") forces it on.
 */
export function shouldUseColor(ctx: CliContext): boolean {
  const force = ctx.env.FORCE_COLOR;
  if (force !== undefined && force !== "" && force !== "0") return true;
  if (ctx.env.NO_COLOR !== undefined && ctx.env.NO_COLOR !== "") return false;
  return ctx.stdout.isTTY === true && ctx.env.TERM !== "dumb";
}

/** Writes one line (a newline appended) to stdout. */
export function printLine(ctx: CliContext, line: string): void {
  ctx.stdout.write(`${line}\n`);
}
