/**
 * A private redis-server for the tests (lib/redis-server.ts): a free port, no persistence, a temporary
 * folder — and whether the tests can have one at all. Without `redis-server` on the PATH the Redis tests
 * are skipped with one printed line, except under CI (CI=true), where it is a failure: `.ci/run` installs it.
 */
import { findRedisServer, REDIS_INSTALL_HINT } from "../../lib/redis-server.ts";

export { type RedisServer, startRedisServer } from "../../lib/redis-server.ts";

export function redisAvailability(): { bin: string } | { skipReason: string } {
  const bin = findRedisServer();
  if (bin) return { bin };
  if (process.env.CI) throw new Error(`CI is set and ${REDIS_INSTALL_HINT}`);
  return { skipReason: REDIS_INSTALL_HINT };
}
