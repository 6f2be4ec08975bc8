/**
 * Baseline relay for the pipeline benchmark (a child process, so it has its
 * own event loop like the server): waits for "go\n" on stdin, then spawns
 * `seq 1 N` and pipes its stdout through a loopback TCP socket to the reader
 * at 127.0.0.1:PORT. argv: PORT N.
 */
import { spawn } from "node:child_process";
import net from "node:net";

const port = Number(process.argv[2]);
const n = Number(process.argv[3]);
process.stdin.setEncoding("utf8");
process.stdin.once("data", () => {
  const socket = net.connect({ host: "127.0.0.1", port, noDelay: true }, () => {
    const seq = spawn("seq", ["1", String(n)], { stdio: ["ignore", "pipe", "inherit"] });
    seq.stdout.pipe(socket);
    seq.once("exit", () => undefined);
  });
  socket.on("close", () => process.exit(0));
});
process.stdout.write("ready\n");
