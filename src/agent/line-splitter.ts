/**
 * Splits a text stream into lines (LF or CRLF), calling `onLine` for each line
 * without its terminator. A line longer than `maxLineChars` is delivered in
 * pieces of at most that size (never splitting a surrogate pair), so one
 * runaway line never holds unbounded memory.
 */
export interface LineSplitter {
  /** Feed a decoded chunk. */
  push: (chunk: string) => void;
  /** Flush a last unterminated line, if any. */
  end: () => void;
}

/** Length of the longest prefix of `s` of at most `max` chars that does not end inside a surrogate pair. */
function pieceLength(s: string, max: number): number {
  if (s.length <= max) return s.length;
  const code = s.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff && max > 1 ? max - 1 : max;
}

/** Creates a splitter; `maxLineChars` defaults to 1 MiB of characters. */
export function createLineSplitter(onLine: (line: string) => void, maxLineChars = 1 << 20): LineSplitter {
  let rest = "";
  const emitLine = (raw: string) => {
    let line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    while (line.length > maxLineChars) {
      const n = pieceLength(line, maxLineChars);
      onLine(line.slice(0, n));
      line = line.slice(n);
    }
    onLine(line);
  };
  return {
    push(chunk: string) {
      let start = 0;
      let nl = chunk.indexOf("\n");
      if (nl !== -1) {
        emitLine(rest + chunk.slice(0, nl));
        rest = "";
        start = nl + 1;
        while ((nl = chunk.indexOf("\n", start)) !== -1) {
          emitLine(chunk.slice(start, nl));
          start = nl + 1;
        }
      }
      rest += chunk.slice(start);
      // Cut pieces off an unterminated line that is already too long; keep a
      // trailing CR back, since its LF may come in the next chunk.
      while (rest.length > maxLineChars && !(rest.length === maxLineChars + 1 && rest.endsWith("\r"))) {
        const n = pieceLength(rest, maxLineChars);
        onLine(rest.slice(0, n));
        rest = rest.slice(n);
      }
    },
    end() {
      if (rest.length > 0) emitLine(rest);
      rest = "";
    },
  };
}
