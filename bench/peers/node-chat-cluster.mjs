// The tutorial way to scale a chat server, run by Node.js: one node:net server per node, relaying every
// line through Redis PUBLISH/SUBSCRIBE, and one socket.write() per recipient per message. Node's default
// socket options, a string buffer split on "\n", names unique only on this node — as most tutorials have it.
// Redis is spoken in RESP over node:net itself (two connections: one publishes, one is subscribed).
//
//   node bench/peers/node-chat-cluster.mjs REDIS_PORT [PORT] [CHANNEL]   → prints "listening on HOST:PORT"
import net from "node:net";

const [redisPort, listenPort = "0", channel = "chat"] = process.argv.slice(2);

/** A RESP command as bytes. */
function command(...words) {
  let text = `*${words.length}\r\n`;
  for (const word of words) text += `$${Buffer.byteLength(word)}\r\n${word}\r\n`;
  return text;
}

/**
 * The subscriber's reader: pushes are `*3 $7 message $N channel $N payload`. Parses whole replies out of
 * the buffer; returns the payloads of `message` pushes.
 */
function makePushReader(onMessage) {
  let buffer = Buffer.alloc(0);
  /** Parses one RESP value at `at`: [value, next offset], or null if incomplete. */
  const parse = (at) => {
    const end = buffer.indexOf("\r\n", at);
    if (end === -1) return null;
    const type = String.fromCharCode(buffer[at]);
    const head = buffer.toString("utf8", at + 1, end);
    if (type === "$") {
      const length = Number(head);
      if (length < 0) return [null, end + 2];
      if (buffer.length < end + 2 + length + 2) return null;
      return [buffer.toString("utf8", end + 2, end + 2 + length), end + 2 + length + 2];
    }
    if (type === "*") {
      const items = [];
      let next = end + 2;
      for (let i = 0; i < Number(head); i++) {
        const item = parse(next);
        if (item === null) return null;
        items.push(item[0]);
        next = item[1];
      }
      return [items, next];
    }
    return [head, end + 2]; // + - :
  };
  return (chunk) => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
    let at = 0;
    for (let value = parse(at); value !== null; value = parse(at)) {
      at = value[1];
      if (Array.isArray(value[0]) && value[0][0] === "message") onMessage(value[0][2]);
    }
    buffer = buffer.subarray(at);
  };
}

const users = new Map();
const publisher = net.connect(Number(redisPort), "127.0.0.1");
publisher.on("data", () => {}); // PUBLISH replies (subscriber counts): read and ignored
const subscriber = net.connect(Number(redisPort), "127.0.0.1");
subscriber.on(
  "data",
  makePushReader((text) => {
    for (const user of users.values()) user.write(`${text}\n`);
  }),
);
subscriber.write(command("SUBSCRIBE", channel));
const publish = (text) => publisher.write(command("PUBLISH", channel, text));

const server = net.createServer((socket) => {
  let pending = "";
  let name = null;
  socket.setEncoding("utf8");
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
          publish(`* ${name} joined`);
          users.set(name.toLowerCase(), socket);
        }
      } else {
        publish(`${name}: ${line}`);
      }
    }
  });
  const leave = () => {
    if (name !== null && users.get(name.toLowerCase()) === socket) {
      users.delete(name.toLowerCase());
      publish(`* ${name} left`);
    }
    name = null;
  };
  socket.on("end", leave);
  socket.on("close", leave);
  socket.on("error", () => {});
});
subscriber.once("data", () => {
  server.listen(Number(listenPort), "127.0.0.1", () => {
    console.log(`listening on 127.0.0.1:${server.address().port}`);
  });
});
