import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createLineSplitter } from "../../src/agent/line-splitter.ts";

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Feeds `chunks` (then end()) and returns the lines. */
function split(chunks: string[], max?: number): string[] {
  const lines: string[] = [];
  const s = max === undefined ? createLineSplitter((l) => lines.push(l)) : createLineSplitter((l) => lines.push(l), max);
  for (const c of chunks) s.push(c);
  s.end();
  return lines;
}

describe("createLineSplitter", () => {
  test("LF and CRLF terminated lines, terminator stripped", () => {
    assert.deepEqual(split(["a\nb\r\nc\n"]), ["a", "b", "c"]);
  });

  test("empty lines are kept", () => {
    assert.deepEqual(split(["\n\r\nx\n\n"]), ["", "", "x", ""]);
  });

  test("a line split across chunks is delivered once, whole", () => {
    assert.deepEqual(split(["hel", "lo wo", "rld\nnext", " line\n"]), ["hello world", "next line"]);
  });

  test("CR and LF of a CRLF in different chunks", () => {
    assert.deepEqual(split(["one\r", "\ntwo\r", "\n"]), ["one", "two"]);
  });

  test("a bare CR inside a line is kept", () => {
    assert.deepEqual(split(["50%\r100%\n"]), ["50%\r100%"]);
  });

  test("end() flushes an unterminated last line (CR stripped) and only once", () => {
    const lines: string[] = [];
    const s = createLineSplitter((l) => lines.push(l));
    s.push("a\nlast\r");
    s.end();
    s.end();
    assert.deepEqual(lines, ["a", "last"]);
  });

  test("end() with nothing pending delivers nothing", () => {
    assert.deepEqual(split(["a\n"]), ["a"]);
    assert.deepEqual(split([]), []);
    assert.deepEqual(split([""]), []);
  });

  test("lines are delivered synchronously, in order, as soon as terminated", () => {
    const lines: string[] = [];
    const s = createLineSplitter((l) => lines.push(l));
    s.push("x\ny");
    assert.deepEqual(lines, ["x"]);
    s.push("z\n");
    assert.deepEqual(lines, ["x", "yz"]);
  });

  test("multi-byte text survives (chunks are decoded strings)", () => {
    assert.deepEqual(split(["héllo wörld 😀\n", "日本", "語\n"]), ["héllo wörld 😀", "日本語"]);
  });

  test("default limit is 1 MiB of characters", () => {
    const big = "a".repeat((1 << 20) + 5);
    assert.deepEqual(
      split([big]).map((l) => l.length),
      [1 << 20, 5],
    );
  });

  describe("long lines (maxLineChars)", () => {
    test("a long unterminated line arriving in small chunks comes in pieces of max size", () => {
      assert.deepEqual(split(["abc", "def", "ghij"], 4), ["abcd", "efgh", "ij"]);
    });

    test("a long line fed one char at a time", () => {
      assert.deepEqual(split([..."abcdefghij\n"], 4), ["abcd", "efgh", "ij"]);
    });

    test("a line exactly max long is delivered whole, not followed by an empty piece", () => {
      assert.deepEqual(split(["abcd\n", "efgh", "\n"], 4), ["abcd", "efgh"]);
    });

    test("a long line whose terminator is in the same chunk is still split into pieces of max size", () => {
      // BUG: push() delivers `rest + chunk.slice(0, nl)` whole; pieces only happen for the unterminated tail.
      assert.deepEqual(split(["abcdefghij\n"], 4), ["abcd", "efgh", "ij"]);
    });

    test("a long line in the middle of a chunk is split too", () => {
      assert.deepEqual(split(["ok\nabcdefghij\nend\n"], 4), ["ok", "abcd", "efgh", "ij", "end"]);
    });

    test("a long line completed by a later chunk never yields a line over max", () => {
      const lines = split(["abc", "defghijk\n"], 4);
      assert.ok(lines.every((l) => l.length <= 4), `a piece is over the limit: ${JSON.stringify(lines)}`);
      assert.equal(lines.join(""), "abcdefghijk");
    });

    test("a CRLF whose CR lands at a piece boundary does not produce an extra empty line", () => {
      // Same text with LF only gives ["abcd"]; with CRLF split as "abcd\r" + "\n" it must too.
      assert.deepEqual(split(["abcd", "\n"], 4), ["abcd"]);
      // BUG: "abcd\r" (5 chars) is cut at 4, leaving "\r", and the "\n" then ends an empty line.
      assert.deepEqual(split(["abcd\r", "\n"], 4), ["abcd"]);
    });

    test("pieces never split a UTF-16 surrogate pair (an emoji stays intact)", () => {
      // BUG: slicing at a UTF-16 index cuts "😀" into two lone surrogates, which become U+FFFD once encoded as UTF-8.
      const lines = split(["ab😀cdef"], 3);
      assert.equal(lines.join(""), "ab😀cdef");
      for (const l of lines) assert.equal(LONE_SURROGATE.test(l), false, `piece ${JSON.stringify(l)} has a lone surrogate`);
    });
  });
});
