/**
 * A tiny program for lib/cbreak's PTY tests: enters cbreak mode, prints the terminal's settings (`stty -a`),
 * its pid and `ready`, then reads keys one at a time (`readKey()`) and prints each as JSON. On the text key `q` it restores and exits 0; on `!` it throws
 * (an uncaught exception); on `?` it rejects a promise nobody handles.
 */
import { enterCbreak } from "../../lib/cbreak.ts";

const session = enterCbreak();
const stty = Bun.spawnSync(["stty", "-a"], { stdin: "inherit" });
console.log(`${new TextDecoder().decode(stty.stdout).replaceAll("\n", " ")}\r`);
console.log(`pid ${process.pid}\r`);
console.log("ready\r");
for (let key = await session.keys.readKey(); key !== null; key = await session.keys.readKey()) {
  console.log(`${JSON.stringify(key)}\r`);
  if (key.kind === "text" && key.text === "q") {
    session.restore();
    process.exit(0);
  }
  if (key.kind === "text" && key.text === "!") throw new Error("boom");
  if (key.kind === "text" && key.text === "?") void Promise.reject(new Error("unhandled boom"));
}
