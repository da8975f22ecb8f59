/** The bare-Bun baseline: Bun.listen echoing every chunk straight back. No framing, no queue, no greeting. */
const server = Bun.listen({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  socket: {
    data(socket, chunk) {
      socket.write(chunk); // one short line in flight per connection: the kernel always takes it whole
    },
  },
});
console.log(`listening on ${server.hostname}:${server.port}`);
