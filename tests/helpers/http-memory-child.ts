/**
 * Child process for the memory test of lesson 02's HttpClient: GETs a small body (to warm up), prints
 * `before`, GETs a big body on the same kept-alive connection and drops it, prints `after`, then idles
 * until killed — so the parent reads this process's RSS at both points from /proc/PID/status.
 * Usage: bun http-memory-child.ts URL
 */
import { HttpClient } from "../../scripts/02-http-streams.ts";

const url = process.argv[2]!;
const client = new HttpClient({ maxConnectionsPerOrigin: 1 });
await client.get(`${url}/small`);
Bun.gc(true);
console.log("before");
await Bun.sleep(200);
// In a function of its own, so that nothing keeps the body once it is counted.
const received = await (async () => (await client.get(`${url}/big`)).body.length)();
console.log(`got ${received} bytes`);
Bun.gc(true);
await Bun.sleep(100);
Bun.gc(true);
console.log("after");
await Bun.sleep(60_000);
client.close();
