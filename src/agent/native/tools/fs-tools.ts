/**
 * The file tools of the native agent, confined to the run's workspace (`../workspace-fs.ts`):
 * `read_file` (a line range), `write_file` (create or replace), `edit_file` (an exact string
 * replacement, its result carrying a unified diff), `list_dir`.
 */
import { lstat } from "node:fs/promises";
import { Type } from "@sinclair/typebox";
import { unifiedDiff } from "../diff.ts";
import { toolFailure } from "./errors.ts";
import { toolError, type NativeTool } from "./types.ts";

/** Characters of a file `read_file` returns at most (the rest is cut with a note). */
export const MAX_READ_CHARS = 256 * 1024;
/** Lines `read_file` returns when the model names no limit. */
export const DEFAULT_READ_LINES = 2000;
/** Entries `list_dir` returns at most. */
export const MAX_LIST_ENTRIES = 1000;

const PathSchema = Type.String({ minLength: 1, maxLength: 4096, description: "File path, relative to the workspace or absolute inside it" });

const ReadFileInput = Type.Object(
  {
    path: PathSchema,
    offset: Type.Optional(Type.Integer({ minimum: 1, description: "First line to read, 1-based" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: "Number of lines to read" })),
  },
  { additionalProperties: false },
);

/** `read_file`: a file's text, from line `offset` (1-based) for `limit` lines; cut past {@link MAX_READ_CHARS}. */
export const readFileTool: NativeTool<typeof ReadFileInput> = {
  name: "read_file",
  description: `Reads a text file of the workspace. \`offset\` is the first line (1-based), \`limit\` the number of lines (default ${DEFAULT_READ_LINES}). Output is cut after ${MAX_READ_CHARS} characters.`,
  schema: ReadFileInput,
  mutating: false,
  async run(input, ctx) {
    try {
      const text = await ctx.fs.read(input.path, input.offset ?? 1, input.limit ?? DEFAULT_READ_LINES);
      const cut = text.length > MAX_READ_CHARS;
      return { output: cut ? `${text.slice(0, MAX_READ_CHARS)}\n[cut at ${MAX_READ_CHARS} characters; read a smaller range]` : text, is_error: false, detail: { chars: text.length, ...(cut ? { cut: true } : {}) } };
    } catch (err) {
      return toolFailure(err, ctx.fs, input.path);
    }
  },
};

const WriteFileInput = Type.Object({ path: PathSchema, content: Type.String({ maxLength: 10 * 1024 * 1024, description: "The whole new content of the file" }) }, { additionalProperties: false });

/** `write_file`: creates or replaces a file (parents created, given to the run's user); mutating. */
export const writeFileTool: NativeTool<typeof WriteFileInput> = {
  name: "write_file",
  description: "Creates a file, or replaces its whole content, creating missing folders. Prefer edit_file to change part of an existing file.",
  schema: WriteFileInput,
  mutating: true,
  async run(input, ctx) {
    try {
      const existed = await ctx.fs.resolve(input.path).then(
        (p) => lstat(p).then(() => true, () => false),
        () => false,
      );
      const file = await ctx.fs.write(input.path, input.content);
      const bytes = Buffer.byteLength(input.content);
      return { output: `${existed ? "Replaced" : "Created"} ${ctx.fs.show(file)} (${bytes} bytes).`, is_error: false, detail: { path: ctx.fs.show(file), bytes, created: !existed } };
    } catch (err) {
      return toolFailure(err, ctx.fs, input.path);
    }
  },
};

const EditFileInput = Type.Object(
  {
    path: PathSchema,
    old_string: Type.String({ minLength: 1, description: "The exact text to replace (whitespace included); must occur exactly once unless replace_all" }),
    new_string: Type.String({ description: "The replacement text" }),
    replace_all: Type.Optional(Type.Boolean({ description: "Replace every occurrence (default false)" })),
  },
  { additionalProperties: false },
);

/** `edit_file`: exact replacement of `old_string` (unique unless `replace_all`); the result's `detail.diff` is a unified diff; mutating. */
export const editFileTool: NativeTool<typeof EditFileInput> = {
  name: "edit_file",
  description: "Replaces an exact string in a file of the workspace. `old_string` must occur exactly once (or set replace_all). The result is a unified diff of the change.",
  schema: EditFileInput,
  mutating: true,
  async run(input, ctx) {
    try {
      const before = await ctx.fs.read(input.path);
      const count = before.split(input.old_string).length - 1;
      if (count === 0) return toolError(`old_string was not found in ${input.path}; read the file and copy the text exactly`, { reason: "no_match" });
      if (count > 1 && !input.replace_all) return toolError(`old_string occurs ${count} times in ${input.path}; add surrounding lines to make it unique, or set replace_all`, { reason: "ambiguous", count });
      if (input.old_string === input.new_string) return toolError("old_string and new_string are the same", { reason: "no_change" });
      const after = input.replace_all ? before.split(input.old_string).join(input.new_string) : before.replace(input.old_string, () => input.new_string);
      const file = await ctx.fs.write(input.path, after);
      const diff = unifiedDiff(input.path.replace(/^\/+/, ""), before, after);
      return { output: `Edited ${ctx.fs.show(file)} (${count} replacement${count > 1 ? "s" : ""}):\n${diff}`, is_error: false, detail: { path: ctx.fs.show(file), replacements: count, diff } };
    } catch (err) {
      return toolFailure(err, ctx.fs, input.path);
    }
  },
};

const ListDirInput = Type.Object({ path: Type.Optional(PathSchema) }, { additionalProperties: false });

/** `list_dir`: a folder's entries, folders with `/`, symlinks marked (never followed). */
export const listDirTool: NativeTool<typeof ListDirInput> = {
  name: "list_dir",
  description: `Lists a folder of the workspace (default: the workspace itself): one entry per line, folders with a trailing \`/\`, symlinks with \` -> (link)\`. At most ${MAX_LIST_ENTRIES} entries.`,
  schema: ListDirInput,
  mutating: false,
  async run(input, ctx) {
    try {
      const entries = await ctx.fs.list(input.path ?? ".");
      const shown = entries.slice(0, MAX_LIST_ENTRIES).map((e) => (e.type === "dir" ? `${e.name}/` : e.type === "symlink" ? `${e.name} -> (link)` : e.name));
      if (entries.length > MAX_LIST_ENTRIES) shown.push(`[${entries.length - MAX_LIST_ENTRIES} more entries not shown]`);
      return { output: shown.length > 0 ? shown.join("\n") : "(empty folder)", is_error: false, detail: { entries: entries.length } };
    } catch (err) {
      return toolFailure(err, ctx.fs, input.path);
    }
  },
};
