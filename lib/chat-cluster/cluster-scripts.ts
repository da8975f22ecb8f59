/**
 * lib/chat-cluster/cluster-scripts.ts — the Lua scripts that make each cluster-wide change atomic.
 *
 * Redis runs a script as one step: no other client's command runs in between. That is what makes "claim
 * the name if free, add it to this node's set" one change that happens entirely or not at all,
 * and what lets many nodes race to clean up one dead node while exactly one of them does it (the first
 * script to run removes the node from the set, so the next finds nothing to do) — see Redis's manual,
 * "Scripting with Lua" (atomicity of scripts). Each script is sent with EVAL every time, not EVALSHA: a
 * Redis restarted empty has also forgotten its script cache, and these scripts are small.
 *
 * Every stream entry the scripts add has the fields `line` (the text users see) and `node` (who added it),
 * the same shape `encodeEntry()` gives the room's messages.
 */

/**
 * Removes node `node` and its users: frees each name still held by it, announces each user with `notice`
 * (`%s` is the name) in the room's stream, in name order, then forgets the node. Returns how many users.
 */
const REMOVE_NODE = `
local function removeNode(prefix, room, maxlen, node, notice, by)
  local namesKey = prefix .. 'names:' .. node
  local names = redis.call('SMEMBERS', namesKey)
  table.sort(names, function(a, b) return string.lower(a) < string.lower(b) end)
  for _, name in ipairs(names) do
    local nameKey = prefix .. 'name:' .. string.lower(name)
    if redis.call('GET', nameKey) == node then redis.call('DEL', nameKey) end
    if notice ~= '' then
      redis.call('XADD', room, 'MAXLEN', '~', maxlen, '*', 'line', string.format(notice, name), 'node', by)
    end
  end
  redis.call('DEL', namesKey, prefix .. 'alive:' .. node, prefix .. 'seq:' .. node)
  redis.call('SREM', prefix .. 'nodes', node)
  return #names
end
`;

/**
 * Adds one line to the room, at most once: node lines carry the node's own sequence number ARGV[2], and a
 * line whose number is not above the last one added for the node is a resend of a line that did arrive
 * (its reply was lost with the connection) — skipped. Whatever order an old connection's last commands and
 * a new connection's resends reach Redis in, each line is added once. Returns 1 if added, 0 if skipped.
 * KEYS: room, seq(node) · ARGV: maxlen, seq, field, value, …
 */
export const APPEND = `
if tonumber(ARGV[2]) <= tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
return 1
`;

/**
 * Joins node ARGV[2] to the cluster (or again, after Redis lost it): sets the epoch if there is none,
 * adds the node to the set, starts its liveness. Returns {epoch, 1 if it was already a member, the
 * room's last stream ID or "0-0"}.
 * KEYS: epoch, nodes, alive(node), room · ARGV: candidate epoch, node, ttl ms
 */
export const REGISTER = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local wasMember = redis.call('SADD', KEYS[2], ARGV[2]) == 0
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
local function edge(entries) if #entries > 0 then return entries[1][1] end return '0-0' end
local lastId = edge(redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1))
local firstId = edge(redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1))
return {epoch, wasMember and 1 or 0, lastId, firstId}
`;

/**
 * A node's heartbeat, every quarter of --node-timeout (250 ms at most): renews its liveness if Redis still
 * knows it (same epoch, still in the set), and removes every node whose liveness key has expired,
 * announcing each of its users as `* NAME left (server lost)`. Returns {1 if renewed else 0, users reaped}.
 * KEYS: nodes, alive(node), epoch, room · ARGV: prefix, node, ttl ms, epoch, maxlen
 */
export const HEARTBEAT = `${REMOVE_NODE}
local prefix, self = ARGV[1], ARGV[2]
local known = redis.call('GET', KEYS[3]) == ARGV[4] and redis.call('SISMEMBER', KEYS[1], self) == 1
if known then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
local reaped = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. 'alive:' .. node) == 0 then
    reaped = reaped + removeNode(prefix, KEYS[4], ARGV[5], node, '* %s left (server lost)', self)
  end
end
return {known and 1 or 0, reaped}
`;

/**
 * Claims a name for node ARGV[1], ignoring case. Returns {"ok", users online in the cluster, this one
 * included}, {"taken"}, or {"unknown node"} when Redis no longer lists this node (it was cleaned up while
 * cut off, or Redis lost its data): it must register again before it claims anything.
 * KEYS: name(lowercase), names(node), nodes · ARGV: node, name, prefix
 */
export const CLAIM = `
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 0 then return {'unknown node'} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return {'taken'} end
redis.call('SADD', KEYS[2], ARGV[2])
local online = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  online = online + redis.call('SCARD', ARGV[3] .. 'names:' .. node)
end
return {'ok', online}
`;

/**
 * Claims again, after Redis lost them or cleaned this node up, the names of the users still online here.
 * A name another node took meanwhile is not taken back: it is returned, and its user here must go.
 * With ARGV[4] = "announce", each name kept is announced as joined again (the others were told it left).
 * KEYS: names(node), room · ARGV: prefix, node, maxlen, announce?, name…  · Returns the names lost.
 */
export const RECLAIM = `
local prefix, node, lost = ARGV[1], ARGV[2], {}
for i = 5, #ARGV do
  local name = ARGV[i]
  local nameKey = prefix .. 'name:' .. string.lower(name)
  local holder = redis.call('GET', nameKey)
  if holder and holder ~= node then
    table.insert(lost, name)
  else
    redis.call('SET', nameKey, node)
    if redis.call('SADD', KEYS[1], name) == 1 and ARGV[4] == 'announce' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'line', '* ' .. name .. ' joined', 'node', node)
    end
  end
end
return lost
`;

/**
 * Frees a name node ARGV[1] holds (a departure; the room announces it through the stream itself).
 * KEYS: name(lowercase), names(node) · ARGV: node, name
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('SREM', KEYS[2], ARGV[2])
`;

/**
 * A node leaving on purpose (graceful shutdown): its users are announced with ARGV[5] and their names
 * freed, then the node is forgotten. KEYS: room · ARGV: prefix, node, maxlen, by, notice with %s.
 */
export const UNREGISTER = `${REMOVE_NODE}
return removeNode(ARGV[1], KEYS[1], ARGV[3], ARGV[2], ARGV[5], ARGV[4])
`;

/**
 * Everyone online on every node, sorted ignoring case: returns {total, the first ARGV[2] names}.
 * KEYS: nodes · ARGV: prefix, limit
 */
export const WHO = `
local names = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, name in ipairs(redis.call('SMEMBERS', ARGV[1] .. 'names:' .. node)) do table.insert(names, name) end
end
table.sort(names, function(a, b) return string.lower(a) < string.lower(b) end)
local first = {}
for i = 1, math.min(#names, tonumber(ARGV[2])) do first[i] = names[i] end
return {#names, first}
`;
