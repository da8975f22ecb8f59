import { describe, expect, test } from "bun:test";
import { showControls, stripControls } from "../lib/sanitize.ts";

describe("stripControls", () => {
  test("leaves ordinary text, emoji and wide characters alone", () => {
    expect(stripControls("héllo 日本語 🎉 <b>&amp;")).toBe("héllo 日本語 🎉 <b>&amp;");
  });

  test("removes colour, cursor-movement and screen-clearing sequences", () => {
    expect(stripControls("\x1b[31mred\x1b[0m \x1b[2J\x1b[Hhome \x1b[10;20Hmoved")).toBe("red home moved");
  });

  test("removes window-title (OSC) and device-control strings, terminated or not", () => {
    expect(stripControls("a\x1b]0;pwned\x07b\x1b]8;;http://x\x1b\\c\x1bPq#0\x1b\\d")).toBe("abcd");
    expect(stripControls("tail\x1b]0;never ends")).toBe("tail");
  });

  test("removes C0 and C1 controls, DEL and bidi overrides; turns a tab into a space", () => {
    expect(stripControls("a\rb\bc\x07d\x7fe\x9bf\u202eg\u2066h\ti")).toBe("abcdefgh i");
  });

  test("removes a lone ESC at the end", () => {
    expect(stripControls("bye\x1b")).toBe("bye");
  });
});

describe("showControls", () => {
  test("shows an escape sequence as inert text", () => {
    expect(showControls("\x1b[2Jgone?")).toBe("␛[2Jgone?");
  });

  test("shows C0 controls as control pictures and C1/bidi controls as U+FFFD", () => {
    expect(showControls("a\rb\x00c\x7fd\x9be\u202ef")).toBe("a␍b␀c␡d\uFFFDe\uFFFDf");
  });

  test("returns ordinary text unchanged", () => {
    expect(showControls("plain 🎉")).toBe("plain 🎉");
  });
});
