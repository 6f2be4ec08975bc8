/**
 * A unified diff (the `diff -u` format, as `patch` and `git apply` read it) between two versions
 * of one text file, for the `edit_file` result. The changed region is found by trimming the
 * lines both versions share at the start and at the end, which is exact for the one localized
 * change an exact-string edit makes (a `replace_all` edit gives one hunk from its first to its
 * last change). Pure.
 */

/** Lines of context around the change, as `diff -u`. */
const CONTEXT = 3;

/**
 * The unified diff of `before` -> `after` for `file`; empty when they are equal.
 * @example
 * unifiedDiff("a.txt", "x\ny\n", "x\nz\n")
 * // "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n"
 */
export function unifiedDiff(file: string, before: string, after: string): string {
  if (before === after) return "";
  const a = splitLines(before);
  const b = splitLines(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const from = Math.max(0, start - CONTEXT);
  const toA = Math.min(a.length, endA + CONTEXT);
  const toB = Math.min(b.length, endB + CONTEXT);
  const lines: string[] = [`--- a/${file}`, `+++ b/${file}`, `@@ -${range(from, toA - from)} +${range(from, toB - from)} @@`];
  for (let i = from; i < start; i++) lines.push(` ${a[i]}`);
  for (let i = start; i < endA; i++) lines.push(`-${a[i]}`);
  for (let i = start; i < endB; i++) lines.push(`+${b[i]}`);
  for (let i = endA; i < toA; i++) lines.push(` ${a[i]}`);
  return lines.join("\n").replace(/\n?$/, "\n");
}

/** `start,count` of a hunk header, 1-based (`diff -u` writes `0,0` for an empty side). */
function range(from: number, count: number): string {
  return count === 0 ? `${from},0` : `${from + 1},${count}`;
}

/** The lines of a text; a missing final newline is marked the way `diff` does. */
function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  else lines[lines.length - 1] += "\n\\ No newline at end of file";
  return lines;
}
