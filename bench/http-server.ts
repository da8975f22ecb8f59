/**
 * The local server the HTTP benchmark talks to, in its own process (the other core).
 *
 * A canned keep-alive response written straight from Bun.listen's `data` handler: the server's share of
 * each round trip is as small as it gets, so the benchmark compares the *clients*. (Behind Bun.serve all
 * three clients measured ~22–24k requests/s: the server, not the client, was the bottleneck.)
 */
export const CANNED_RESPONSE = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 17\r\nConnection: keep-alive\r\n\r\nhello, benchmark\n",
);
const END_OF_HEAD = "\r\n\r\n";

function listen() {
  return Bun.listen<{ pending: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { pending: "" };
      },
      data(socket, chunk) {
        // Answer each complete request head (GETs have no body).
        let pending = socket.data.pending + chunk.toString("latin1");
        for (let end = pending.indexOf(END_OF_HEAD); end !== -1; end = pending.indexOf(END_OF_HEAD)) {
          pending = pending.slice(end + END_OF_HEAD.length);
          socket.write(CANNED_RESPONSE); // tiny, and the client waits for it: the kernel always takes it whole
        }
        socket.data.pending = pending;
      },
    },
  });
}

if (import.meta.main) {
  const server = listen();
  console.log(`listening on ${server.hostname}:${server.port}`);
}
