/**
 * lib/http-demo-server.ts — a small HTTP server on this machine, so lessons 01 and 02 run offline.
 */

/** How long the demo's `/chunked` pauses before each part: 5 ms. */
export const CHUNK_PAUSE_MS = 5;

/**
 * Starts `Bun.serve` on a free loopback port. `/chunked` streams its body in three parts (so Bun sends it
 * with `Transfer-Encoding: chunked`, and it takes ~20 ms); any other path answers at once with one line.
 * Stop it with `server.stop(true)`.
 */
export function startDemoServer() {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname === "/chunked") {
        // A streamed body has no length up front: Bun sends it with Transfer-Encoding: chunked.
        // (The pauses make Bun send each part as it comes instead of buffering the whole body.)
        const parts = ["streamed ", "in ", "chunks\n"];
        const body = new ReadableStream({
          async pull(controller) {
            await Bun.sleep(CHUNK_PAUSE_MS);
            const part = parts.shift();
            if (part === undefined) controller.close();
            else controller.enqueue(part);
          },
        });
        return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
      }
      return new Response(`hello from ${pathname} — served by Bun.serve on this machine\n`, {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    },
  });
}
