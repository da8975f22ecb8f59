import { describe, expect, test } from "bun:test";
import { parseFlags, UsageError } from "../lib/args.ts";
import { newHeaders } from "../lib/http.ts";
import { countUrls, formatResponse, HTTP_CLIENT_FLAGS, URL_ARGUMENTS } from "../lib/http-cli.ts";

function response(reason: string, fields: [string, string][], body: string) {
  const headers = newHeaders();
  for (const [name, value] of fields) headers[name] = value;
  return { version: "HTTP/1.1", status: 200, reason, headers, body: new TextEncoder().encode(body) };
}

describe("the HTTP lessons' command line", () => {
  test("takes URLs, --timeout in seconds and --body", () => {
    const flags = parseFlags(
      ["http://a/", "--timeout", "2.5", "--body", "http://b/"],
      HTTP_CLIENT_FLAGS,
      URL_ARGUMENTS,
    );
    expect(flags.positionals).toEqual(["http://a/", "http://b/"]);
    expect(flags.timeout).toBe(2.5);
    expect(flags.body).toBe(true);
    expect(parseFlags([], HTTP_CLIENT_FLAGS, URL_ARGUMENTS).timeout).toBe(10);
  });

  test("refuses a --timeout a timer cannot hold (over 2^31 − 1 ms), which would fire at once", () => {
    expect(parseFlags(["--timeout", "2147483"], HTTP_CLIENT_FLAGS, URL_ARGUMENTS).timeout).toBe(2147483);
    expect(() => parseFlags(["--timeout", "3000000"], HTTP_CLIENT_FLAGS, URL_ARGUMENTS)).toThrow(
      new UsageError('--timeout needs a number > 0 and ≤ 2147483, got "3000000"'),
    );
  });

  test("prints status, fields and body size, and the body only when asked", () => {
    const printed = response("OK", [["content-type", "text/plain"]], "line one\r\nline two\n");
    expect(formatResponse("http://x/", printed, false)).toBe(
      "http://x/ → 200 OK\n  content-type: text/plain\n  (19 bytes of body)",
    );
    expect(formatResponse("http://x/", printed, true)).toEndWith("(19 bytes of body)\nline one\nline two");
  });

  test("shows a server's control characters instead of sending them to the terminal", () => {
    const hostile = response("OK\x1b]0;title\x07", [["x-evil", "\x1b[2J"]], "\x1b[31mred\x08\n");
    const printed = formatResponse("http://x/", hostile, true);
    expect(printed).not.toMatch(/[\x00-\x09\x0b-\x1f]/);
    expect(printed).toContain("OK␛]0;title␇");
    expect(printed).toContain("x-evil: ␛[2J");
    expect(printed).toContain("␛[31mred␈");
  });

  test("counts URLs in good English", () => {
    expect(countUrls(1)).toBe("1 URL");
    expect(countUrls(4)).toBe("4 URLs");
  });
});
