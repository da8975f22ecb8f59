/** A test's own processes, found through /proc: never another test's, never another user's. */
import { readdirSync, readFileSync } from "node:fs";

/** The parent pid of `pid`, from /proc/PID/stat (the field after the command's closing parenthesis). */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null; // it ended while we looked
  }
}

/**
 * The descendants of `ancestor` (children, their children, …) whose command line starts with `prefix`
 * (arguments separated by NUL, e.g. `bun\0scripts/03-sql-client.ts`).
 */
export function descendantsRunning(ancestor: number, prefix: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let command: string;
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, "latin1");
    } catch {
      continue;
    }
    if (!command.startsWith(prefix)) continue;
    for (let parent = parentOf(pid); parent !== null && parent > 1; parent = parentOf(parent)) {
      if (parent === ancestor) {
        found.push(pid);
        break;
      }
    }
  }
  return found;
}

/** Whether `pid` is still running (a zombie, ended but not yet reaped, counts as ended). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
