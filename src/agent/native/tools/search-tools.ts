/**
 * The search tools of the native agent, over the confined walk of `../workspace-fs.ts` (never
 * through a symlink; `.git` and `node_modules` skipped): `glob` (paths matching a pattern) and
 * `grep` (lines matching a JavaScript regular expression, optionally in files matching a glob).
 */
import { Type } from "@sinclair/typebox";
import { BoundedMatcher, MatchBudgetExceeded } from "../bounded-match.ts";
import { globToRegExp } from "../glob.ts";
import { toolFailure } from "./errors.ts";
import { toolError, type NativeTool } from "./types.ts";

/** Entries a search visits at most. */
export const MAX_WALK_ENTRIES = 50_000;
/** Paths `glob` returns at most. */
export const MAX_GLOB_RESULTS = 500;
/** Files larger than this are not searched by `grep`, bytes. */
export const MAX_GREP_FILE_BYTES = 1024 * 1024;
/** Characters of one matching line `grep` shows. */
const MAX_LINE_CHARS = 300;
/**
 * Matching time one `glob` or `grep` call may spend in its patterns, ms (see `../bounded-match.ts`): the longest the
 * server's event loop can be held by one pathological pattern.
 */
export const MATCH_BUDGET_MS = 1000;

/** A tool error for a pattern that ran out of matching time; other errors are rethrown. */
function budgetError(err: unknown) {
  if (err instanceof MatchBudgetExceeded) return toolError(err.message, { reason: "pattern_too_slow" });
  throw err;
}

const join = (base: string, rel: string) => (base === "." || base === "" ? rel : `${base.replace(/\/+$/, "")}/${rel}`);

const GlobInput = Type.Object(
  {
    pattern: Type.String({ minLength: 1, maxLength: 1000, description: "Glob such as `**/*.ts` or `src/*.{js,json}`; without `/` it matches names in any folder" }),
    path: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "Folder to search (default: the workspace)" })),
  },
  { additionalProperties: false },
);

/** `glob`: workspace paths matching a glob (`../glob.ts`), sorted, at most {@link MAX_GLOB_RESULTS}. */
export const globTool: NativeTool<typeof GlobInput> = {
  name: "glob",
  description: `Finds files of the workspace whose path (relative to \`path\`) matches a glob. At most ${MAX_GLOB_RESULTS} paths, sorted.`,
  schema: GlobInput,
  mutating: false,
  async run(input, ctx) {
    const base = input.path ?? ".";
    try {
      const re = new BoundedMatcher(globToRegExp(input.pattern), MATCH_BUDGET_MS);
      const files: string[] = [];
      const cut = await ctx.fs.walk(base, (rel, e) => void (e.type !== "dir" && files.push(rel)), MAX_WALK_ENTRIES);
      let hits: number[];
      try {
        hits = re.matching(files, MAX_GLOB_RESULTS + 1);
      } catch (err) {
        return budgetError(err);
      }
      const more = hits.length > MAX_GLOB_RESULTS;
      const found = hits.slice(0, MAX_GLOB_RESULTS).map((i) => join(base, files[i]!));
      const notes = [...(more ? [`[more than ${MAX_GLOB_RESULTS} matches; narrow the pattern]`] : []), ...(cut ? [`[search stopped after ${MAX_WALK_ENTRIES} entries]`] : [])];
      return { output: found.length > 0 ? [...found, ...notes].join("\n") : ["No files match.", ...notes].join("\n"), is_error: false, detail: { matches: found.length } };
    } catch (err) {
      return toolFailure(err, ctx.fs, base);
    }
  },
};

const GrepInput = Type.Object(
  {
    pattern: Type.String({ minLength: 1, maxLength: 1000, description: "JavaScript regular expression" }),
    path: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "Folder or file to search (default: the workspace)" })),
    glob: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: "Only files whose path matches this glob" })),
    ignore_case: Type.Optional(Type.Boolean()),
    max_results: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: "Matching lines to return (default 100)" })),
  },
  { additionalProperties: false },
);

/** `grep`: `path:line: text` for lines matching a JavaScript regex, in text files up to {@link MAX_GREP_FILE_BYTES}. */
export const grepTool: NativeTool<typeof GrepInput> = {
  name: "grep",
  description: "Searches text files of the workspace for lines matching a regular expression; answers `path:line: text` per match.",
  schema: GrepInput,
  mutating: false,
  async run(input, ctx) {
    const base = input.path ?? ".";
    let re: BoundedMatcher;
    try {
      re = new BoundedMatcher(new RegExp(input.pattern, input.ignore_case ? "i" : ""), MATCH_BUDGET_MS);
    } catch (err) {
      return toolError(`invalid regular expression: ${(err as Error).message}`, { reason: "bad_pattern" });
    }
    const only = input.glob ? new BoundedMatcher(globToRegExp(input.glob), MATCH_BUDGET_MS) : undefined;
    const max = input.max_results ?? 100;
    const hits: string[] = [];
    try {
      const files: string[] = [];
      // A file as `path` is searched alone (listing it fails with ENOTDIR).
      const single = await ctx.fs.list(base).then(
        () => false,
        (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== "ENOTDIR") throw err;
          return true;
        },
      );
      if (single) files.push(base);
      else {
        const all: string[] = [];
        await ctx.fs.walk(base, (rel, e) => void (e.type === "file" && all.push(rel)), MAX_WALK_ENTRIES);
        const kept = only ? only.matching(all).map((i) => all[i]!) : all;
        for (const rel of kept) files.push(join(base, rel));
      }
      for (const f of files) {
        if (hits.length >= max) break;
        let text: string;
        try {
          text = await ctx.fs.read(f);
        } catch {
          continue; // too large, not a regular file, vanished: not searched
        }
        if (text.length > MAX_GREP_FILE_BYTES || text.includes("\u0000")) continue;
        const lines = text.split("\n");
        for (const i of re.matching(lines, max - hits.length)) hits.push(`${f}:${i + 1}: ${lines[i]!.slice(0, MAX_LINE_CHARS)}`);
      }
      return { output: hits.length > 0 ? hits.join("\n") + (hits.length >= max ? `\n[stopped at ${max} matches]` : "") : "No matches.", is_error: false, detail: { matches: hits.length } };
    } catch (err) {
      if (err instanceof MatchBudgetExceeded) return budgetError(err);
      return toolFailure(err, ctx.fs, base);
    }
  },
};
