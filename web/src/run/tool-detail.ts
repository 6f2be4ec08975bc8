/**
 * What the run page reads out of a tool call's free-form `input` and
 * `output` (their shapes are the agent's own): the command it ran, the exit
 * code, the text of the output, and the file changes with their diffs where
 * the event carries them (Claude Code's `Edit`/`Write`, codex's
 * `file_change`, ACP `diff` content, OpenCode's `filePath` writes). Pure.
 */
import { structuredPatch } from "diff";

/** One changed file: its path, how it changed, and the diff's lines (`+`, `-` or ` ` first). */
export interface FileChange {
  path: string;
  kind: string;
  lines: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** A value as text: strings as they are, anything else as indented JSON. */
export function formatValue(v: unknown): string {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** The shell command of a tool call's input (`command`, `cmd`, an argv array), if it has one. */
export function commandOf(input: unknown): string | undefined {
  if (!isObj(input)) return undefined;
  const c = input.command ?? input.cmd;
  if (typeof c === "string") return c;
  if (Array.isArray(c) && c.every((x) => typeof x === "string")) return c.join(" ");
  return undefined;
}

/**
 * The exit code of a tool result: an `exit_code`/`exitCode` field of the
 * output or of the agent's original object (`raw`), searched three levels deep.
 * @example exitCodeOf({ exit_code: 2 }, undefined) // 2
 */
export function exitCodeOf(output: unknown, raw: unknown): number | undefined {
  const find = (v: unknown, depth: number): number | undefined => {
    if (!isObj(v) || depth > 3) return undefined;
    for (const k of ["exit_code", "exitCode"]) if (typeof v[k] === "number") return v[k] as number;
    for (const child of Object.values(v)) {
      const found = find(child, depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return find(output, 0) ?? find(raw, 0);
}

/** The text of a tool result: a string as it is, ACP content blocks' text, `stdout`/`output` fields, else JSON. */
export function outputText(output: unknown): string {
  if (typeof output === "string") return output;
  if (Array.isArray(output)) {
    const texts = output.map((c) => (isObj(c) && isObj(c.content) ? str(c.content.text) : isObj(c) ? str(c.text) : undefined));
    if (texts.length > 0 && texts.every((t) => t !== undefined)) return texts.join("\n");
  }
  if (isObj(output)) {
    const s = str(output.stdout) ?? str(output.output) ?? str(output.aggregated_output) ?? str(output.content);
    if (s !== undefined) return s + (str(output.stderr) ? `\n${output.stderr as string}` : "");
  }
  return formatValue(output);
}

const split = (text: string): string[] => (text === "" ? [] : text.replace(/\n$/, "").split("\n"));

/**
 * A line diff of two texts for display: the changed lines (`-`/`+`) with three lines of context
 * (` `), hunks from jsdiff's `structuredPatch`, a `…` line between hunks.
 */
export function diffLines(oldText: string, newText: string): string[] {
  const { hunks } = structuredPatch("", "", oldText, newText, undefined, undefined, { context: 3 });
  return hunks.flatMap((h, i) => [...(i > 0 ? ["…"] : []), ...h.lines.filter((l) => !l.startsWith("\\"))]);
}

/** The lines of a unified diff text, without its `---`/`+++`/`@@` headers kept out. */
function unifiedLines(diff: string): string[] {
  return split(diff).filter((l) => !l.startsWith("diff --git") && !l.startsWith("index "));
}

/** One change from an object that names a file (ACP `diff`, codex `changes[]`), if it is one. */
function changeOf(v: unknown): FileChange | undefined {
  if (!isObj(v)) return undefined;
  const path = str(v.path) ?? str(v.file_path) ?? str(v.filePath);
  if (!path) return undefined;
  if (v.type === "diff" && typeof v.newText === "string") {
    const old = str(v.oldText);
    return { path, kind: old === undefined || old === null ? "add" : "update", lines: diffLines(old ?? "", v.newText) };
  }
  const kind = str(v.kind) ?? (isObj(v.kind) ? str(v.kind.type) : undefined);
  if (kind !== undefined) return { path, kind, lines: typeof v.diff === "string" ? unifiedLines(v.diff) : typeof v.unified_diff === "string" ? unifiedLines(v.unified_diff) : [] };
  return undefined;
}

/**
 * The file changes a tool call and its result carry, in order: an edit
 * (`old_string`/`new_string`), a whole-file write (`content` with a path),
 * a list of changes, or ACP `diff` blocks. Empty when there are none.
 */
export function fileChangesOf(input: unknown, output: unknown): FileChange[] {
  const out: FileChange[] = [];
  if (isObj(input)) {
    const path = str(input.file_path) ?? str(input.filePath) ?? str(input.path);
    if (path && typeof input.new_string === "string") out.push({ path, kind: "edit", lines: diffLines(str(input.old_string) ?? "", input.new_string) });
    else if (path && typeof input.content === "string") out.push({ path, kind: "write", lines: split(input.content).map((l) => `+${l}`) });
    if (Array.isArray(input.edits)) for (const e of input.edits) if (isObj(e) && path && typeof e.new_string === "string") out.push({ path, kind: "edit", lines: diffLines(str(e.old_string) ?? "", e.new_string) });
    if (Array.isArray(input.changes)) for (const c of input.changes) pushChange(out, changeOf(c));
    if (typeof input.patch === "string" || typeof input.input === "string") {
      const patch = (str(input.patch) ?? str(input.input))!;
      if (/^\*\*\* Begin Patch/m.test(patch) || /^@@/m.test(patch)) out.push({ path: /^\*\*\* (?:Add|Update|Delete) File: (.+)$/m.exec(patch)?.[1] ?? "(patch)", kind: "patch", lines: split(patch) });
    }
  }
  if (Array.isArray(output)) for (const c of output) pushChange(out, changeOf(c));
  return out;
}

/** Adds a change unless the same path and kind is already listed (a call and its result often repeat it). */
function pushChange(out: FileChange[], c: FileChange | undefined): void {
  if (!c) return;
  const same = out.find((o) => o.path === c.path && o.kind === c.kind);
  if (!same) out.push(c);
  else if (same.lines.length === 0 && c.lines.length > 0) same.lines = c.lines;
}
