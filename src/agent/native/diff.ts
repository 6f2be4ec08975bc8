/**
 * A unified diff (the `diff -u` format, as `patch` and `git apply` read it) between two versions
 * of one text file, for the `edit_file` result. The hunks come from jsdiff (`diff`'s
 * `structuredPatch`, Myers' algorithm) with three lines of context; this module only writes them
 * in the `diff -u` layout (`--- a/<file>`, `+++ b/<file>`, `@@ -l,n +l,n @@`, and a start line
 * one lower for an empty side, as GNU diff does). Pure.
 */
import { structuredPatch } from "diff";

/** Lines of context around each change, as `diff -u`. */
const CONTEXT = 3;

/**
 * The unified diff of `before` -> `after` for `file`; empty when they are equal.
 * @example
 * unifiedDiff("a.txt", "x\ny\n", "x\nz\n")
 * // "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n"
 */
export function unifiedDiff(file: string, before: string, after: string): string {
  if (before === after) return "";
  const { hunks } = structuredPatch(`a/${file}`, `b/${file}`, before, after, undefined, undefined, { context: CONTEXT });
  let out = `--- a/${file}\n+++ b/${file}\n`;
  for (const h of hunks) {
    const oldStart = h.oldLines === 0 ? h.oldStart - 1 : h.oldStart;
    const newStart = h.newLines === 0 ? h.newStart - 1 : h.newStart;
    out += `@@ -${oldStart},${h.oldLines} +${newStart},${h.newLines} @@\n${h.lines.join("\n")}\n`;
  }
  return out;
}
