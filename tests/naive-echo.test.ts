import { describe, expect, test } from "bun:test";
import { attack, peakResidentBytes, startServer } from "./helpers/break-it.ts";
import { residentBytes } from "./helpers/servers.ts";

const MIB = 1024 * 1024;

describe("break it, lesson 04: a client that sends 64 MiB and reads nothing back", () => {
  test("the echo without drain() takes it all and its memory grows by the amount; lesson 04 stops taking", async () => {
    const naive = await startServer("scripts/naive/echo-no-drain.ts");
    const lesson = await startServer("scripts/04-echo-server.ts", ["--quiet"]);
    try {
      const naiveBefore = residentBytes(naive.pid);
      const [naiveVerdict, naivePeak] = await peakResidentBytes(naive.pid, () =>
        attack("no-read", naive.port),
      );
      expect(naiveVerdict).toMatch(
        /^no-read: BROKEN: the server took all 64\.0 MiB while I read nothing back — it holds the echoes in its memory \(server pid \d+: rss [\d.]+ MiB → [\d.]+ MiB\)$/,
      );
      // 64 MiB queued: what it took is in its memory (the lines read, and a copy queued for each echo).
      expect(naivePeak - naiveBefore).toBeGreaterThan(48 * MIB);

      const lessonBefore = residentBytes(lesson.pid);
      const [lessonVerdict, lessonPeak] = await peakResidentBytes(lesson.pid, () =>
        attack("no-read", lesson.port),
      );
      const taken = /^no-read: HOLDS: the server stopped taking after ([\d.]+) MiB of 64\.0 MiB/.exec(
        lessonVerdict,
      );
      expect(taken, lessonVerdict).not.toBeNull();
      // What it took sits in the kernel's socket buffers, bar 64 KiB queued and 128 KiB read ahead.
      expect(Number(taken![1])).toBeLessThan(32);
      expect(lessonPeak - lessonBefore).toBeLessThan(24 * MIB);
    } finally {
      naive.kill();
      lesson.kill();
    }
  });
});
