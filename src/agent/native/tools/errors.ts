/**
 * The message a tool failure shows the model: a refused path (`WorkspacePathError`), a
 * terminal that could not start (`TerminalError`) or a file system error, with the host
 * workspace's location replaced by the model's view of it (a containerized agent is not told
 * where its workspace lies on the host).
 */
import { WorkspacePathError } from "../../acp/fs.ts";
import { TerminalError } from "../../acp/terminal-core.ts";
import type { WorkspaceFs } from "../workspace-fs.ts";
import { toolError, type ToolResult } from "./types.ts";

/** A failed tool's result for `err`, thrown while working on `path` (as the model named it). */
export function toolFailure(err: unknown, fs: Pick<WorkspaceFs, "root" | "hostRoot">, path?: string): ToolResult {
  const inModelTerms = (m: string) => (fs.root === fs.hostRoot ? m : m.split(fs.hostRoot).join(fs.root));
  if (err instanceof WorkspacePathError && err.reason === "not_found") return toolError(`${path ?? err.requested}: no such file or folder`, { reason: "not_found" });
  if (err instanceof WorkspacePathError) return toolError(inModelTerms(err.message), { reason: err.reason, ...(path !== undefined ? { path } : {}) });
  if (err instanceof TerminalError) return toolError(inModelTerms(err.message), { reason: err.reason });
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === "ENOENT") return toolError(`${path ?? "the path"}: no such file or folder`, { reason: "not_found" });
  if (code === "EISDIR") return toolError(`${path ?? "the path"} is a folder`, { reason: "is_a_folder" });
  if (code === "ENOTDIR") return toolError(`${path ?? "the path"}: a part of it is not a folder`, { reason: "not_a_folder" });
  if (code === "EACCES" || code === "EPERM") return toolError(`${path ?? "the path"}: permission denied`, { reason: "permission_denied" });
  return toolError(inModelTerms(err instanceof Error ? err.message : String(err)));
}
