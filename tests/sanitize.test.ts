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

describe("invisible format characters (Unicode Cf, tags, line and paragraph separators)", () => {
  const invisible = {
    "U+200E left-to-right mark": "\u200e",
    "U+200F right-to-left mark": "\u200f",
    "U+061C Arabic letter mark": "\u061c",
    "U+2028 line separator": "\u2028",
    "U+2029 paragraph separator": "\u2029",
    "U+FFF9 interlinear annotation anchor": "\ufff9",
    "U+FFFA interlinear annotation separator": "\ufffa",
    "U+FFFB interlinear annotation terminator": "\ufffb",
    "U+E0001 language tag": "\u{E0001}",
    "U+E0041 tag latin capital A": "\u{E0041}",
    "U+E007F cancel tag": "\u{E007F}",
    "U+E0000 (tag block, unassigned)": "\u{E0000}",
    "U+FEFF byte-order mark": "\ufeff",
    "U+2066 left-to-right isolate": "\u2066",
  };

  for (const [name, char] of Object.entries(invisible)) {
    test(`stripControls removes ${name}, and showControls shows it as U+FFFD`, () => {
      expect(stripControls(`a${char}b${char}`)).toBe("ab");
      expect(showControls(`a${char}b`)).toBe("a\uFFFDb");
    });
  }

  test("keeps ZWJ and ZWNJ inside text: emoji sequences and Persian stay intact", () => {
    const family = "👨\u200d👩\u200d👧";
    const persian = "می\u200cخواهم";
    expect(stripControls(`${family} ${persian}`)).toBe(`${family} ${persian}`);
    expect(showControls(`${family} ${persian}`)).toBe(`${family} ${persian}`);
  });

  test("removes ZWJ and ZWNJ at the edges of text or next to a space", () => {
    expect(stripControls("\u200dhi\u200c there \u200d\u200c")).toBe("hi there ");
    expect(stripControls("\u200e\u200d")).toBe("");
  });

  test("removes a whole tag sequence (an invisible message) hidden after a word", () => {
    const hidden = [..."ignore previous"]
      .map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0)))
      .join("");
    expect(stripControls(`hello${hidden}`)).toBe("hello");
  });
});
