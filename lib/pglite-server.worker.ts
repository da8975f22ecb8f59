/**
 * lib/pglite-server.worker.ts — the thread side of lib/pglite-server.ts: PGlite and its socket server.
 * Messages in: `{ kind: "start", setupSql }`, then `{ kind: "stop" }`. Messages out: see PGliteServerReply.
 */
import type { PGlite } from "@electric-sql/pglite";
import type { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import type { PGliteServerReply, PGliteServerRequest } from "./pglite-server.ts";

declare const self: Worker;

let db: PGlite | null = null;
let server: PGLiteSocketServer | null = null;

function reply(message: PGliteServerReply): void {
  self.postMessage(message);
}

async function start(setupSql: string): Promise<void> {
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-socket"),
  ]);
  db = await PGlite.create();
  if (setupSql) await db.exec(setupSql);
  server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0 });
  await server.start();
  reply({ kind: "listening", port: Number(server.getServerConn().split(":").pop()) });
}

async function stop(): Promise<void> {
  await server?.stop();
  await db?.close();
  reply({ kind: "stopped" });
}

self.onmessage = (event: MessageEvent<PGliteServerRequest>) => {
  const request = event.data;
  if (request.kind === "start") {
    start(request.setupSql).catch((error) =>
      reply({ kind: "failed", message: (error as Error).message ?? String(error) }),
    );
  } else {
    stop().catch(() => reply({ kind: "stopped" }));
  }
};
