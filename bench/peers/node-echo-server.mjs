// The node:net baseline, run by Node.js: a line echo server the way most people write one.
import net from "node:net";

const server = net.createServer((socket) => {
  let pending = "";
  socket.setEncoding("utf8");
  socket.on("data", (data) => {
    pending += data;
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      socket.write(`${pending.slice(0, newline)}\n`);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  });
  socket.on("error", () => {});
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
