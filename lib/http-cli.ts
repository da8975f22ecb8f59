/**
 * lib/http-cli.ts — the command line that lessons 01 and 02 share: the same arguments (`[URL…]
 * [--timeout SECONDS] [--body]`) and the same printout of a response.
 *
 * What a server sends is shown, never obeyed: its status reason, header fields and body pass through
 * `showControls` (lib/sanitize.ts), so an ESC or BEL in them appears as ␛ or ␇ instead of recolouring,
 * clearing or retitling your terminal.
 */
import type { FlagSpec, Positionals } from "./args.ts";
import { MAX_TIMER_MS } from "./deadline.ts";
import { DEFAULT_TIMEOUT_MS, type HttpResponse, parseTarget } from "./http.ts";
import { showControls } from "./sanitize.ts";

/**
 * The longest --timeout: 2,147,483 s (24.8 days), as a timer holds at most 2^31 − 1 ms — a longer one fires
 * at once (Node's and Bun's setTimeout: "TimeoutOverflowWarning … set to 1").
 */
export const MAX_TIMEOUT_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** The flags of both HTTP lessons. */
export const HTTP_CLIENT_FLAGS = {
  timeout: {
    kind: "number",
    default: DEFAULT_TIMEOUT_MS / 1000,
    above: 0,
    max: MAX_TIMEOUT_SECONDS,
    value: "SECONDS",
    help: "seconds before one request gives up",
  },
  body: { kind: "boolean", help: "print each response's body too" },
} as const satisfies Record<string, FlagSpec>;

/** Their positional arguments: URLs, each checked before any is fetched (`ftp://…` is a usage error). */
export const URL_ARGUMENTS: Positionals = {
  name: "URL…",
  help: "http:// or https:// URLs to GET (none: a local demo, offline)",
  check(url) {
    try {
      parseTarget(url);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  },
};

const utf8 = new TextDecoder();

/**
 * The status line, the header fields, the body's size, and with `showBody` the body (as UTF-8 text), all
 * with control characters made visible.
 */
export function formatResponse(url: string, response: HttpResponse, showBody: boolean): string {
  const lines = [`${url} → ${response.status} ${showControls(response.reason)}`];
  for (const [name, value] of Object.entries(response.headers))
    lines.push(`  ${showControls(name)}: ${showControls(value)}`);
  lines.push(`  (${response.body.length} bytes of body)`);
  if (showBody) {
    const text = utf8.decode(response.body).trimEnd();
    // Line by line: showControls would turn the newlines themselves into ␊.
    for (const line of text.split("\n"))
      lines.push(showControls(line.endsWith("\r") ? line.slice(0, -1) : line));
  }
  return lines.join("\n");
}

/** `1 URL`, `4 URLs`. */
export function countUrls(count: number): string {
  return `${count} URL${count === 1 ? "" : "s"}`;
}
