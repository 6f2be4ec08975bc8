/**
 * Reading inside one agent home without leaving it: every directory is opened one component at a time
 * and every file with `O_NOFOLLOW` through `../safe-fs.ts`, so a symlink or hard link planted by an agent
 * (which owns its home) is skipped, never followed. Files are read up to a size limit.
 */
import type { FileHandle } from "node:fs/promises";
import { readdir } from "node:fs/promises";
import { openDir, openDirPath, openFileAt, pathAt, readAtMost } from "../safe-fs.ts";

/** Largest session file read, bytes (a longer one is read up to this size). */
export const MAX_SESSION_FILE_BYTES = 64 * 1024 * 1024;

/** A file found inside a home: its name, the directory names leading to it from the home, and how to read it. */
export interface HomeFile {
  /** Directory names from the home to the file's folder. */
  dirs: string[];
  name: string;
}

/** Entries of an open directory: names of subdirectories and of regular files (symlinks are neither). */
async function entries(dir: FileHandle): Promise<{ dirs: string[]; files: string[] }> {
  const list = await readdir(pathAt(dir), { withFileTypes: true });
  return { dirs: list.filter((e) => e.isDirectory()).map((e) => e.name), files: list.filter((e) => e.isFile()).map((e) => e.name) };
}

/**
 * The files under `home/<start…>` whose depth below it is `depth` directories and whose name matches `pattern`
 * (e.g. Claude Code's `.claude/projects/<slug>/<id>.jsonl`: start `[".claude", "projects"]`, depth 1). Missing
 * folders give none; a symlinked folder anywhere is skipped.
 */
export async function findFiles(home: string, start: readonly string[], depth: number, pattern: RegExp): Promise<HomeFile[]> {
  let root: FileHandle;
  try {
    root = await openDir(home);
  } catch {
    return [];
  }
  const out: HomeFile[] = [];
  async function walk(dirs: string[], level: number): Promise<void> {
    let dir: FileHandle;
    try {
      dir = await openDirPath(root, dirs);
    } catch {
      return; // missing, or a symlink on the way
    }
    try {
      const e = await entries(dir);
      if (level === depth) for (const name of e.files) if (pattern.test(name)) out.push({ dirs, name });
      if (level < depth) for (const d of e.dirs.sort()) await walk([...dirs, d], level + 1);
    } finally {
      await dir.close();
    }
  }
  try {
    await walk([...start], 0);
  } finally {
    await root.close();
  }
  return out;
}

/**
 * The text of a file found by {@link findFiles}, at most {@link MAX_SESSION_FILE_BYTES}; undefined when it is gone or refused
 * (a symlink, a hard link, not a regular file).
 */
export async function readHomeFile(home: string, f: HomeFile): Promise<string | undefined> {
  return (await readHomeFileBytes(home, f))?.toString("utf8");
}

/** {@link readHomeFile} as bytes; `whole`: undefined rather than a cut copy of a longer file (a database). */
export async function readHomeFileBytes(home: string, f: HomeFile, whole = false): Promise<Buffer | undefined> {
  let root: FileHandle | undefined;
  let dir: FileHandle | undefined;
  let fh: FileHandle | undefined;
  try {
    root = await openDir(home);
    dir = await openDirPath(root, f.dirs);
    fh = await openFileAt(dir, f.name);
    const { data, over } = await readAtMost(fh, MAX_SESSION_FILE_BYTES);
    return over && whole ? undefined : data;
  } catch {
    return undefined;
  } finally {
    await fh?.close();
    await dir?.close();
    await root?.close();
  }
}

/** The JSON objects of a JSON Lines text; lines that are not JSON objects are left out. */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (v && typeof v === "object" && !Array.isArray(v)) out.push(v as Record<string, unknown>);
    } catch {
      // a torn last line of a live session, or junk: skipped
    }
  }
  return out;
}
