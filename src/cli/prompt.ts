/**
 * Reading secrets and answers from the user: a whole stdin (`--password-stdin`),
 * a visible prompt, and a prompt that does not echo (raw mode on a TTY).
 * Prompts are written to stderr so stdout stays clean.
 */
import { createInterface } from "node:readline/promises";
import type { CliContext } from "./context.ts";

/** The user pressed Ctrl-C or Ctrl-D at a prompt. */
export class PromptCancelledError extends Error {
  constructor() {
    super("cancelled");
    this.name = "PromptCancelledError";
  }
}

/**
 * Reads all of stdin and drops one trailing newline (as `docker login --password-stdin`).
 * @example echo "s3cret" | openrunner login --password-stdin
 */
export async function readStdinText(ctx: CliContext): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** Asks a question and returns the trimmed answer (echoed as typed). */
export async function promptLine(ctx: CliContext, question: string): Promise<string> {
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr as NodeJS.WritableStream, terminal: true });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

/**
 * Asks for a secret without echoing it. Needs stdin to be a TTY (raw mode).
 * Enter ends the input, Backspace deletes, Ctrl-C / Ctrl-D (on empty input) cancel.
 */
export function promptHidden(ctx: CliContext, question: string): Promise<string> {
  const stdin = ctx.stdin;
  if (!stdin.isTTY || typeof stdin.setRawMode !== "function") {
    return Promise.reject(new Error("cannot prompt without a terminal"));
  }
  const setRaw = stdin.setRawMode.bind(stdin);
  ctx.stderr.write(question);
  return new Promise<string>((resolve, reject) => {
    let value = "";
    const done = (err?: Error) => {
      stdin.removeListener("data", onData);
      setRaw(false);
      stdin.pause();
      ctx.stderr.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003" || (ch === "\u0004" && value === "")) return done(new PromptCancelledError());
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (ch >= " ") value += ch;
      }
    };
    setRaw(true);
    stdin.resume();
    stdin.on("data", onData);
  });
}
