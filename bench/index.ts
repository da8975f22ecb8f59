/**
 * `bun run bench` — every benchmark, each measured side by side with its peers in this one run.
 * `bun run bench http lines` runs only the named ones.
 */
import { cpus } from "node:os";
import { benchCluster } from "./cluster.ts";
import { benchHttp } from "./http.ts";
import { benchLines } from "./lines.ts";
import { benchPg } from "./pg.ts";
import { benchScreen } from "./screen.ts";
import { benchChat, benchEcho, benchMemory } from "./servers.ts";
import { benchWebSocket } from "./websocket.ts";
import { benchWebSocketFrames } from "./websocket-frames.ts";

const benches: Record<string, () => Promise<void>> = {
  lines: () => benchLines(),
  http: () => benchHttp(),
  echo: () => benchEcho(),
  chat: () => benchChat(),
  memory: () => benchMemory(),
  pg: () => benchPg(),
  cluster: () => benchCluster(),
  screen: () => benchScreen(),
  websocket: () => benchWebSocket(),
  "websocket-frames": () => benchWebSocketFrames(),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in benches));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(", ")}; choose from: ${Object.keys(benches).join(", ")}`);
  process.exit(2);
}
console.log(
  `Bun ${Bun.version} · ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"} · ${process.platform}`,
);
for (const [name, run] of Object.entries(benches)) {
  if (wanted.length === 0 || wanted.includes(name)) await run();
}
