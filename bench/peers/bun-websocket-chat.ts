/**
 * The Bun-native baseline for `bun run bench websocket`: Bun.serve's own WebSocket server (uWebSockets,
 * C++), running lesson 05's protocol — `CONNECT name`, `OK welcome …`, then every line to everyone as
 * `name: text` through one topic with `server.publish` (which batches the copies for each subscriber) —
 * and an echo at /echo. No limits, no flood control, no /who: the least a chat room can do.
 */
import type { ServerWebSocket } from "bun";

const NAME = /^CONNECT ([A-Za-z0-9_-]{1,32})$/;
interface Client {
  route: "chat" | "echo";
  name: string | null;
}
const names = new Set<string>();

const server = Bun.serve<Client>({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch(request, server) {
    const { pathname } = new URL(request.url);
    const route = pathname === "/chat" ? "chat" : pathname === "/echo" ? "echo" : null;
    if (route && server.upgrade(request, { data: { route, name: null } })) return undefined;
    return new Response("not found", { status: 404 });
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    message(ws: ServerWebSocket<Client>, message) {
      if (ws.data.route === "echo") return void ws.send(message);
      const text = String(message);
      if (ws.data.name !== null) return void server.publish("room", `${ws.data.name}: ${text}`);
      const match = NAME.exec(text);
      if (!match) return void ws.send("ERR send CONNECT <name> first");
      const name = match[1]!;
      if (names.has(name.toLowerCase())) return void ws.send(`ERR name taken: ${name}`);
      names.add(name.toLowerCase());
      ws.data.name = name;
      ws.send(`OK welcome ${name}, ${names.size} users online`);
      server.publish("room", `* ${name} joined`);
      ws.subscribe("room");
    },
    close(ws) {
      if (ws.data.name === null) return;
      names.delete(ws.data.name.toLowerCase());
      server.publish("room", `* ${ws.data.name} left`);
    },
  },
});
console.log(`listening on ${server.hostname}:${server.port}`);
