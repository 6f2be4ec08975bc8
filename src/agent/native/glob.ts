/**
 * Glob patterns for the `glob` and `grep` tools, compiled to a RegExp over `/`-separated paths
 * relative to the search folder: `*` (any characters but `/`), `**` (any number of folders,
 * also none), `?` (one character but `/`), `[abc]` / `[!abc]`, `{a,b}` (alternatives, nested).
 * A pattern without `/` matches the file's base name in any folder (`*.ts` finds `src/a.ts`),
 * as ripgrep's `--glob` does. Pure.
 */

/**
 * Compiles a glob.
 * @example
 * globToRegExp("src/**\/*.ts").test("src/a/b.ts") // true
 * globToRegExp("*.md").test("docs/x.md")           // true (no `/`: any folder)
 */
export function globToRegExp(glob: string): RegExp {
  const anywhere = !glob.includes("/");
  const body = compile(glob.replace(/^\.\//, ""));
  return new RegExp(`^${anywhere ? "(?:.*/)?" : ""}${body}$`);
}

function compile(g: string): string {
  let out = "";
  let depth = 0;
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === "*") {
      if (g[i + 1] === "*") {
        const slashAfter = g[i + 2] === "/";
        out += slashAfter ? "(?:.*/)?" : ".*";
        i += slashAfter ? 2 : 1;
      } else out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const end = g.indexOf("]", i + 1);
      if (end < 0) out += "\\[";
      else {
        const set = g.slice(i + 1, end).replace(/\\/g, "\\\\");
        out += set.startsWith("!") ? `[^/${set.slice(1)}]` : `[${set}]`;
        i = end;
      }
    } else if (c === "{") {
      depth++;
      out += "(?:";
    } else if (c === "}" && depth > 0) {
      depth--;
      out += ")";
    } else if (c === "," && depth > 0) out += "|";
    else out += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return out + ")".repeat(depth);
}
