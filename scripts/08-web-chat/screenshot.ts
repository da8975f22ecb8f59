/**
 * Makes docs/08-web-chat.png, the README's picture of lesson 08: starts the lesson on free ports, has two
 * browser users (ann, bob, in headless Chromium) and an `nc`-style TCP user (carl) chat, and photographs
 * ann's page.
 *
 *   bun scripts/08-web-chat/screenshot.ts [OUTPUT.png]      (default docs/08-web-chat.png)
 *
 * Needs Debian's chromium (/usr/bin/chromium) and playwright-core (a dev dependency).
 */
import { openConnection } from "../../lib/streams.ts";
import { launchChromium } from "../../tests/helpers/chromium.ts";

const ROOT = `${import.meta.dir}/../..`;
const OUTPUT = process.argv[2] ?? `${ROOT}/docs/08-web-chat.png`;
const FIRST_LINE = /^listening on http:\/\/127\.0\.0\.1:(\d+) \(line protocol on 127\.0\.0\.1:(\d+)\)/;

const child = Bun.spawn(
  ["bun", `${ROOT}/scripts/08-web-chat.ts`, "--port", "0", "--tcp-port", "0", "--quiet"],
  {
    stdout: "pipe",
    stderr: "inherit",
  },
);
const browser = await launchChromium();
try {
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  const match = FIRST_LINE.exec(new TextDecoder().decode(value));
  if (!match) throw new Error("the lesson did not say where it listens");
  const [httpPort, tcpPort] = [Number(match[1]), Number(match[2])];

  const context = await browser.newContext({ viewport: { width: 760, height: 520 }, deviceScaleFactor: 2 });
  const join = async (name: string) => {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    await page.fill("#name", name);
    await page.click("#name-form button");
    await page.waitForSelector(`#messages li.ok >> text=OK welcome ${name}`);
    return page;
  };
  const say = async (page: Awaited<ReturnType<typeof join>>, text: string) => {
    await page.fill("#input", text);
    await page.press("#input", "Enter");
    await page.waitForSelector(`#messages li.own >> text=${text}`);
  };
  const ann = await join("ann");
  const bob = await join("bob");
  const [carlReader, carl] = await openConnection("127.0.0.1", tcpPort);
  carl.write("CONNECT carl\n");
  await carlReader.readLine();
  await say(ann, "hi bob! this page is lesson 06 in a browser");
  await say(bob, "and carl is on nc, over the line protocol");
  carl.write("hello from the terminal. <img src=x onerror=alert(1)> stays text\n");
  await ann.waitForSelector("#messages li >> text=hello from the terminal");
  await ann.fill("#input", "/who");
  await ann.press("#input", "Enter");
  await ann.waitForSelector("#messages li >> text=* online (3)");
  await ann.fill("#input", "typing while messages roll in above…");
  await ann.screenshot({ path: OUTPUT });
  carl.close();
  console.log(`wrote ${OUTPUT}`);
} finally {
  await browser.close();
  child.kill("SIGINT");
  await child.exited;
}
