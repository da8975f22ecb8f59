// The node:net chat baseline, run by Node.js: lesson 05's protocol written the way most people write it —
// a string buffer split on "\n", and one socket.write() per recipient per message.
import net from "node:net";

const users = new Map();
const server = net.createServer((socket) => {
  let pending = "";
  let name = null;
  socket.setEncoding("utf8");
  const broadcast = (text) => {
    for (const user of users.values()) user.write(`${text}\n`);
  };
  socket.on("data", (data) => {
    pending += data;
    let newline = pending.indexOf("\n");
    while (newline !== -1) {
      const line = pending.slice(0, newline).replace(/\r$/, "");
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
      if (name === null) {
        const match = /^CONNECT ([A-Za-z0-9_-]{1,32})$/.exec(line);
        if (!match) socket.write("ERR send CONNECT <name> first\n");
        else if (users.has(match[1].toLowerCase())) socket.write(`ERR name taken: ${match[1]}\n`);
        else {
          name = match[1];
          socket.write(`OK welcome ${name}, ${users.size + 1} users online\n`);
          broadcast(`* ${name} joined`);
          users.set(name.toLowerCase(), socket);
        }
      } else {
        broadcast(`${name}: ${line}`);
      }
    }
  });
  const leave = () => {
    if (name !== null && users.get(name.toLowerCase()) === socket) {
      users.delete(name.toLowerCase());
      broadcast(`* ${name} left`);
    }
    name = null;
  };
  socket.on("end", leave);
  socket.on("close", leave);
  socket.on("error", () => {});
});
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
