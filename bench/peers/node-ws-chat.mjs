// The `ws` baseline for `bun run bench websocket`, run by Node.js (under Bun, `import "ws"` is Bun's own
// stand-in, not the package): lesson 05's protocol on the `ws` package the way its tutorials write a chat
// room — a Set of clients, and one `client.send()` per recipient per message.
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const NAME = /^CONNECT ([A-Za-z0-9_-]{1,32})$/;
const users = new Map();
const http = createServer((_request, response) => response.writeHead(404).end("not found"));
const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
http.on("upgrade", (request, socket, head) => {
  if (request.url !== "/chat") return socket.destroy();
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws));
});
const broadcast = (text) => {
  for (const user of users.values()) user.send(text);
};
wss.on("connection", (ws) => {
  let name = null;
  ws.on("message", (data) => {
    const text = data.toString();
    if (name !== null) return broadcast(`${name}: ${text}`);
    const match = NAME.exec(text);
    if (!match) return ws.send("ERR send CONNECT <name> first");
    if (users.has(match[1].toLowerCase())) return ws.send(`ERR name taken: ${match[1]}`);
    name = match[1];
    ws.send(`OK welcome ${name}, ${users.size + 1} users online`);
    broadcast(`* ${name} joined`);
    users.set(name.toLowerCase(), ws);
  });
  ws.on("close", () => {
    if (name === null) return;
    users.delete(name.toLowerCase());
    broadcast(`* ${name} left`);
  });
  ws.on("error", () => {});
});
http.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${http.address().port}`);
});
