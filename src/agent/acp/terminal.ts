/**
 * The ACP client's terminal capability (`terminal/create|output|wait_for_exit|kill|release`)
 * for one run on the host: each terminal is a command started with execa in its own process
 * group, in the run's workspace (or a folder inside it), as the run's user, with the run's
 * environment (which carries OPENRUNNER_RUN_ID, so the orphan sweep finds it). The semantics
 * (output tail and its byte limit, exit status, kill, release, the per-run cap) are
 * `terminal-core.ts`'s; this file binds them to host processes. {@link TerminalSet.disposeAll}
 * kills every terminal when the run ends.
 *
 * {@link AcpTerminals} is what the request handlers use; `terminal-container.ts` implements it
 * for runs in a container (commands exec'd there instead of spawned on the host).
 */
import { execa } from "execa";
import type { RunAs } from "../run-as.ts";
import { resolveInWorkspace } from "./fs.ts";
import { TerminalCore, TerminalError, type TerminalBinding } from "./terminal-core.ts";

/** What `create` needs from the run. */
export interface TerminalSetOptions {
  /** The run's workspace (terminals run there or below). */
  root: string;
  /** The run's complete environment (PATH, HOME …, OPENRUNNER_RUN_ID). */
  env: Record<string, string>;
  runAs?: RunAs;
  /** Called when a terminal starts, with its command line (for a `log` event). */
  onStart?: (id: string, commandLine: string) => void;
}

const killGroup = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pid, signal);
  } catch {
    // gone
  }
};

/** Host processes for {@link TerminalCore}: execa, detached (own group), stdin ignored, as `runAs`. */
function hostBinding(opts: TerminalSetOptions): TerminalBinding {
  return {
    resolveCwd: (cwd) => resolveInWorkspace(opts.root, cwd ?? opts.root),
    async start({ file, args, env, cwd }, onOutput) {
      const child = execa(file, args, {
        cwd,
        env,
        extendEnv: false,
        detached: true,
        stdin: "ignore",
        buffer: false,
        reject: false,
        all: true,
        ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
      });
      const pid = child.pid;
      if (pid === undefined) {
        const r = await child;
        throw new TerminalError("spawn_failed", `could not start ${file}: ${r.message ?? "spawn failed"}`);
      }
      child.all?.on("data", onOutput);
      const killTree = () => killGroup(pid, "SIGKILL");
      return {
        exited: child.then((r) => ({ exitCode: typeof r.exitCode === "number" ? r.exitCode : null, signal: r.signal ?? null })),
        kill: killTree,
        reap: killTree, // what the command left in its group
        discard: async () => killTree(),
      };
    },
    describe: ({ file, args }) => [file, ...args].join(" "),
  };
}

/** The terminals of one run on the host; see the module comment. */
export class TerminalSet extends TerminalCore {
  constructor(opts: TerminalSetOptions) {
    super(hostBinding(opts), opts);
  }
}
