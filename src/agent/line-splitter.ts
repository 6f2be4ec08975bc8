/**
 * Splits a text stream into lines (LF or CRLF), calling `onLine` for each line
 * without its terminator. A line longer than `maxLineChars` is delivered in
 * pieces of that size, so one runaway line never holds unbounded memory.
 */
export interface LineSplitter {
  /** Feed a decoded chunk. */
  push: (chunk: string) => void;
  /** Flush a last unterminated line, if any. */
  end: () => void;
}

/** Creates a splitter; `maxLineChars` defaults to 1 MiB of characters. */
export function createLineSplitter(onLine: (line: string) => void, maxLineChars = 1 << 20): LineSplitter {
  let rest = "";
  const emit = (line: string) => onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  return {
    push(chunk: string) {
      let start = 0;
      let nl = chunk.indexOf("\n");
      if (nl === -1) {
        rest += chunk;
      } else {
        emit(rest + chunk.slice(0, nl));
        rest = "";
        start = nl + 1;
        while ((nl = chunk.indexOf("\n", start)) !== -1) {
          emit(chunk.slice(start, nl));
          start = nl + 1;
        }
        rest = chunk.slice(start);
      }
      while (rest.length > maxLineChars) {
        onLine(rest.slice(0, maxLineChars));
        rest = rest.slice(maxLineChars);
      }
    },
    end() {
      if (rest.length > 0) emit(rest);
      rest = "";
    },
  };
}
