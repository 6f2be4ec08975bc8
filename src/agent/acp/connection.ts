/**
 * The ACP client side of one agent process: a JSON-RPC 2.0 stream over the child's stdio
 * (newline-delimited JSON, ACP's stdio transport) and the SDK's `ClientApp`
 * (`@agentclientprotocol/sdk` 2.x; the 0.x `ClientSideConnection` class is gone) wired to
 * OpenRunner's handlers.
 *
 * The stream is strict where the SDK's `ndJsonStream` is lenient: a stdout line that is not
 * a JSON-RPC 2.0 message (not JSON, not an object, no `jsonrpc:"2.0"`, neither a method nor
 * an id with a result or error) is reported to `onMalformed` instead of being answered with
 * a parse error, so the run can fail with `protocol_error` rather than hang.
 *
 * `session/update` notifications are tapped from the stream as they are read, unparsed, and
 * handed to `onUpdate` synchronously: the SDK dispatches notifications asynchronously (its
 * fallback handlers can run after a later request or even after the `session/prompt`
 * response), while the protocol promises that updates precede the prompt's response; reading
 * them at the stream keeps their order. Update kinds newer than this SDK, and fields its
 * schema would strip, are kept for `data.raw`.
 */
import type { Readable, Writable } from "node:stream";
import * as acp from "@agentclientprotocol/sdk";
import { createLineSplitter } from "../line-splitter.ts";

/** Longest accepted message line, characters (file contents travel inside messages). */
export const MAX_MESSAGE_CHARS = 32 * 1024 * 1024;

/**
 * Messages read but not yet taken by the connection before the agent's stdout is paused:
 * with {@link MAX_MESSAGE_CHARS}, a run holds at most about this many times 32 Mi
 * characters of unread messages however fast the agent writes.
 */
export const MAX_QUEUED_MESSAGES = 8;

/** `fs/*` requests of one agent served at once; more at the same time are refused (each may hold a 10 MiB file). */
export const MAX_CONCURRENT_FS_REQUESTS = 8;

/** The requests OpenRunner serves to the agent. Handlers may throw `acp.RequestError`. */
export interface AcpClientHandlers {
  requestPermission(params: acp.RequestPermissionRequest, signal: AbortSignal): Promise<acp.RequestPermissionResponse>;
  readTextFile(params: acp.ReadTextFileRequest): Promise<acp.ReadTextFileResponse>;
  writeTextFile(params: acp.WriteTextFileRequest): Promise<acp.WriteTextFileResponse>;
  createTerminal(params: acp.CreateTerminalRequest): Promise<acp.CreateTerminalResponse>;
  terminalOutput(params: acp.TerminalOutputRequest): Promise<acp.TerminalOutputResponse>;
  waitForTerminalExit(params: acp.WaitForTerminalExitRequest): Promise<acp.WaitForTerminalExitResponse>;
  killTerminal(params: acp.KillTerminalRequest): Promise<acp.KillTerminalResponse>;
  releaseTerminal(params: acp.ReleaseTerminalRequest): Promise<acp.ReleaseTerminalResponse>;
}

/** Why a line from the agent is not a JSON-RPC message, or undefined when it is one. */
export function checkJsonRpc(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== "2.0") return 'no "jsonrpc": "2.0"';
  if (typeof m.method === "string") return undefined;
  if ("id" in m && ("result" in m || "error" in m)) return undefined;
  return "neither a request, a notification nor a response";
}

/**
 * A JSON-RPC stream over a child's stdin/stdout. `onMalformed(line, why)` hears of every
 * stdout line that is not a JSON-RPC message (the line is dropped); `onUpdate` gets every
 * `session/update` notification's params, in order, as it is read.
 */
export function createStdioStream(stdin: Writable, stdout: Readable, taps: { onMalformed: (line: string, why: string) => void; onUpdate?: (params: unknown) => void }): acp.Stream {
  const { onMalformed, onUpdate } = taps;
  stdin.on("error", () => {}); // EPIPE once the agent is gone: the connection sees the close
  let cancelRead = () => {};
  const readable = new ReadableStream<acp.AnyMessage>({
    cancel() {
      cancelRead();
    },
    pull() {
      if (stdout.isPaused()) stdout.resume(); // the connection caught up
    },
    start(controller) {
      let open = true;
      const splitter = createLineSplitter((line) => {
        const trimmed = line.trim();
        if (!trimmed || !open) return;
        let value: unknown;
        try {
          value = JSON.parse(trimmed);
        } catch {
          return onMalformed(line, "not JSON");
        }
        const why = checkJsonRpc(value);
        if (why) return onMalformed(line, why);
        const msg = value as { method?: unknown; id?: unknown; params?: unknown };
        if (msg.method === acp.CLIENT_METHODS.session_update && msg.id === undefined) onUpdate?.(msg.params);
        try {
          controller.enqueue(value as acp.AnyMessage);
          // Backpressure: stop reading while the connection has not taken what was read (resumed in pull).
          if ((controller.desiredSize ?? 0) < -MAX_QUEUED_MESSAGES) stdout.pause();
        } catch {
          open = false; // the connection is closed: nobody reads any more
        }
      }, MAX_MESSAGE_CHARS);
      stdout.setEncoding("utf8");
      stdout.on("data", (chunk: string) => splitter.push(chunk));
      const close = () => {
        if (!open) return;
        splitter.end();
        open = false;
        try {
          controller.close();
        } catch {
          // already closed or cancelled by the connection
        }
      };
      cancelRead = () => {
        open = false;
        stdout.destroy();
      };
      stdout.once("end", close);
      stdout.once("close", close);
    },
  });
  const writable = new WritableStream<acp.AnyMessage>({
    write(message) {
      return new Promise<void>((resolve, reject) => {
        if (stdin.destroyed || stdin.writableEnded) return reject(new Error("agent stdin is closed"));
        stdin.write(`${JSON.stringify(message)}\n`, (err) => (err ? reject(err) : resolve()));
      });
    },
  });
  return { readable, writable };
}

/**
 * Runs `serve` unless {@link MAX_CONCURRENT_FS_REQUESTS} are already in flight.
 * @throws acp.RequestError -32603 (internal error) when over the limit; the agent may retry.
 */
function limited<T>(inFlight: { n: number }, method: string, serve: () => Promise<T>): Promise<T> {
  if (inFlight.n >= MAX_CONCURRENT_FS_REQUESTS) {
    return Promise.reject(acp.RequestError.internalError({ method, limit: MAX_CONCURRENT_FS_REQUESTS }, `too many concurrent file requests (at most ${MAX_CONCURRENT_FS_REQUESTS}); retry when one has answered`));
  }
  inFlight.n += 1;
  return serve().finally(() => {
    inFlight.n -= 1;
  });
}

/** The client app serving `h`; connect it with `.connect(stream)`. File requests are bounded (see {@link MAX_CONCURRENT_FS_REQUESTS}). */
export function createAcpClient(h: AcpClientHandlers): acp.ClientApp {
  const fsInFlight = { n: 0 };
  return acp
    .client({ name: "openrunner" })
    .onNotification("*", () => {}) // session/update is read at the stream (createStdioStream)
    .onRequest("session/request_permission", ({ params, signal }) => h.requestPermission(params, signal))
    .onRequest("fs/read_text_file", ({ params }) => limited(fsInFlight, "fs/read_text_file", () => h.readTextFile(params)))
    .onRequest("fs/write_text_file", ({ params }) => limited(fsInFlight, "fs/write_text_file", () => h.writeTextFile(params)))
    .onRequest("terminal/create", ({ params }) => h.createTerminal(params))
    .onRequest("terminal/output", ({ params }) => h.terminalOutput(params))
    .onRequest("terminal/wait_for_exit", ({ params }) => h.waitForTerminalExit(params))
    .onRequest("terminal/kill", ({ params }) => h.killTerminal(params))
    .onRequest("terminal/release", ({ params }) => h.releaseTerminal(params));
}

/** The capabilities OpenRunner advertises at `initialize`. */
export const CLIENT_CAPABILITIES: acp.ClientCapabilities = { fs: { readTextFile: true, writeTextFile: true }, terminal: true };
