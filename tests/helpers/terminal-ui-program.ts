/**
 * A tiny program for lib/terminal-ui's tests: opens the UI (prompt `> `), prints a red `ready`, echoes each
 * submitted line as `got: …`, and exits with the input loop's exit code once it ends (`close` closes the UI
 * from the program's side). With stdin not a terminal, prints the error's name and exits 2. `--redraw`: the
 * screen redraws every row on each message (the book's way).
 */
import { openTerminalUi } from "../../lib/terminal-ui.ts";

let ui: ReturnType<typeof openTerminalUi>;
try {
  ui = openTerminalUi("> ", { redrawEveryRow: process.argv.includes("--redraw") });
} catch (error) {
  console.log((error as Error).name);
  process.exit(2);
}
ui.screen.print([{ text: "ready", style: { color: "red" } }]);
for await (const line of ui.lines) {
  ui.screen.print(`got: ${line}`);
  if (line === "close") ui.close();
}
ui.close();
console.log(`ending: ${ui.lines.ending}`);
process.exit(ui.lines.exitCode);
