import { describe, expect, test } from "bun:test";
import { Deadline } from "../lib/deadline.ts";

describe("Deadline", () => {
  test("goes off once when armed and not disarmed in time", async () => {
    let fired = 0;
    const deadline = new Deadline(() => fired++);
    deadline.arm(20);
    await Bun.sleep(60);
    expect(fired).toBe(1);
    expect(deadline.expired).toBe(true);
    deadline.clear();
  });

  test("does nothing when disarmed before it goes off, or when it goes off between requests", async () => {
    let fired = 0;
    const deadline = new Deadline(() => fired++);
    deadline.arm(20);
    deadline.disarm();
    await Bun.sleep(60);
    expect(fired).toBe(0);
    expect(deadline.expired).toBe(false);
    deadline.clear();
  });

  test("re-arming restarts the countdown, with the same or another length", async () => {
    let fired = 0;
    const deadline = new Deadline(() => fired++);
    deadline.arm(80);
    await Bun.sleep(50);
    deadline.arm(80); // refreshed: 80 ms from now, not 30
    await Bun.sleep(50);
    expect(fired).toBe(0);
    deadline.arm(10); // another length: a new timer
    await Bun.sleep(60);
    expect(fired).toBe(1);
    expect(deadline.expired).toBe(true);
    deadline.arm(10);
    expect(deadline.expired).toBe(false);
    deadline.clear();
    await Bun.sleep(40);
    expect(fired).toBe(1);
  });
});
