import { expect, test } from "bun:test";
import { FRAME_MS, fitRow, SPINNER_FRAMES, startSpinner } from "../lib/spinner.ts";

/** A stand-in for the terminal that keeps what is written (the spinner only ever calls write). */
function capture(columns = 80) {
  const written: string[] = [];
  const output = {
    columns,
    write: (text: string) => written.push(text) > 0,
  } as unknown as NodeJS.WriteStream;
  return { output, text: () => written.join("") };
}

test("draws a new frame every 80 ms until stopped, then one final line with the cursor shown again", async () => {
  const { output, text } = capture();
  const spinner = startSpinner("Starting", output);
  await Bun.sleep(FRAME_MS * 4 + 40);
  spinner.stop("Connected");
  const frames = text().match(/\r\x1b\[2K[◒◐◓◑] {2}Starting/g) ?? [];
  expect(frames.length).toBeGreaterThanOrEqual(3);
  expect(frames.slice(0, 3).map((frame) => frame.at(-11))).toEqual([...SPINNER_FRAMES.slice(0, 3)]);
  expect(text()).toStartWith("\x1b[?25l");
  expect(text()).toEndWith("\r\x1b[2K◇  Connected\n\x1b[?25h");
  const length = text().length;
  await Bun.sleep(FRAME_MS * 2);
  spinner.stop("again", "failed");
  expect(text().length).toBe(length); // stopped once, for good
});

test("shows a message's control characters instead of sending them to the terminal", () => {
  const { output, text } = capture();
  const spinner = startSpinner("Connecting to \x1b]0;title\x07", output);
  spinner.stop("Cannot connect: \x1b[2J", "failed");
  expect(text()).toContain("Connecting to ␛]0;title␇");
  expect(text()).toContain("▲  Cannot connect: ␛[2J\n");
});

test("SIGINT while spinning resolves `interrupted` with 130, SIGTERM with 143, SIGHUP with 129; stop() removes its handlers", async () => {
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const before = signals.map((signal) => process.listenerCount(signal));
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    const spinner = startSpinner("Waiting", capture().output);
    process.emit(signal);
    expect(await spinner.interrupted).toBe(code);
    spinner.stop("Interrupted.", "failed");
  }
  expect(signals.map((signal) => process.listenerCount(signal))).toEqual(before);
});

test("a frame never wraps in a narrow terminal: it is cut to the width, wide characters counted as two", () => {
  const { output, text } = capture(20);
  const spinner = startSpinner("Starting the embedded database (PGlite)", output);
  spinner.stop("done");
  expect(text()).toContain("\r\x1b[2K◒  Starting the em…\r");
  expect(fitRow("日本語のテキスト", 10)).toBe("日本語の…");
  expect(Bun.stringWidth(fitRow("日本語のテキスト", 10))).toBeLessThanOrEqual(9);
  expect(fitRow("short", 10)).toBe("short");
  expect(fitRow("anything", 1)).toBe("…");
});
