/**
 * lib/chat-cluster/cluster-scripts.ts — the Lua scripts that make each cluster-wide change atomic.
 *
 * Redis runs a script as one step: no other client's command runs in between. That is what makes "claim
 * the name if free, add it to this node's set" one change that happens entirely or not at all,
 * and what lets many nodes race to clean up one dead node while exactly one of them does it (the first
 * script to run removes the node from the set, so the next finds nothing to do) — see Redis's manual,
 * "Scripting with Lua" (atomicity of scripts). Each script is run by its SHA-1 (EVALSHA), and sent whole
 * (EVAL) only when Redis answers NOSCRIPT — after a restart it has forgotten its script cache
 * (cluster-node.ts `#eval`).
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
 * The fence every script that speaks for this node runs first — the lease check. A node's lease is its key
 * `alive:ID`, whose value is the session token the node set when it (re)connected, and which expires
 * after --node-timeout unless renewed. Returns nil when the caller is this node's current session, else
 * why not: `epoch` (Redis lost its data: the node must register again), `dead` (the lease ran out: this
 * incarnation has been — or is about to be — declared dead and its users announced; it must not speak
 * for them again), `stale` (a command from an older connection of this node, arriving late).
 * Redis runs a script as one step, so nothing can change between the check and the write that follows.
 */
const FENCE = `
local function fence(epochKey, epoch, aliveKey, session)
  if redis.call('GET', epochKey) ~= epoch then return 'epoch' end
  local holder = redis.call('GET', aliveKey)
  if not holder then return 'dead' end
  if holder ~= session then return 'stale' end
  return nil
end
`;

/**
 * Adds one line to the room — fenced, in order, at most once.
 *
 * Fenced: only while this node holds its lease (see FENCE), and, for a line that speaks for a name, only
 * while the name is still this node's (ARGV[8] = `speaks`: `name:NAME` must hold this node's id). A
 * departure (ARGV[8] = `departs`) frees the name in the same step, and is added only if it did free it:
 * the name is announced once, by this node or by the survivor that reaps it — never by both.
 *
 * In order, at most once: each line carries the node's own line number ARGV[2]; `seq:ID` holds the last
 * number added. A number not above it is a resend of a line that did arrive (its reply was lost with the
 * connection): `dup`, skipped. A number more than one above it means a line before it is missing (its
 * command failed with an error reply): `gap`, refused, and the node sends again from the missing one — a
 * line can never overtake the one before. A line refused by its name check still uses up its number.
 *
 * `seq:ID` is only a number another client could overwrite; the node says what it knows: ARGV[3] the
 * highest number Redis acknowledged, ARGV[4] the highest it ever sent. A stored value outside that range
 * was not written by this node: it is reset to ARGV[3] and the reply says `repaired` — a forged
 * `999999999999` cannot silence a node's lines. A missing one (a new node, or Redis lost its data)
 * counts as ARGV[3].
 *
 * Returns `added`, `repaired` (added, after resetting a forged `seq:ID`), `dup`, `gap`, `name`, or the
 * fence's `epoch` / `dead` / `stale`.
 * KEYS: room, seq(node), alive(node), epoch[, name(lowercase), names(node)]
 * ARGV: maxlen, seq, acked, top, epoch, session, node, mode ('' | 'speaks' | 'departs'), name, field, value, …
 */
export const APPEND = `${FENCE}
local refused = fence(KEYS[4], ARGV[5], KEYS[3], ARGV[6])
if refused then return refused end
local seq, acked, top = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[2])
local last, repaired = acked, false
if stored then
  local number = tonumber(stored)
  if number and number >= acked and number <= top then last = number else repaired = true end
end
if seq <= last then return 'dup' end
if seq > last + 1 then return 'gap' end
local ours = true
if ARGV[8] == 'speaks' then ours = redis.call('GET', KEYS[5]) == ARGV[7] end
if ARGV[8] == 'departs' then ours = redis.call('SISMEMBER', KEYS[6], ARGV[9]) == 1 end
if not ours then
  redis.call('SET', KEYS[2], ARGV[2])
  return 'name'
end
-- XADD first: if it fails (WRONGTYPE: another client replaced the stream), nothing has been written, and
-- the same line can be sent again. (A script's writes before an error are not undone.)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 10))
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[8] == 'departs' then
  redis.call('SREM', KEYS[6], ARGV[9])
  if redis.call('GET', KEYS[5]) == ARGV[7] then redis.call('DEL', KEYS[5]) end
end
if repaired then return 'repaired' end
return 'added'
`;

/**
 * Joins node ARGV[2] to the cluster, or brings it back after a reconnect. Sets the epoch if there is none.
 * With ARGV[5] = `resume` and the epoch unchanged, the node must still hold its lease: then its session
 * token becomes ARGV[4] (commands of older connections are fenced off from now on) and it is `resumed`;
 * if the lease ran out it is `dead` — its users are announced `left (server lost)` here, unless a survivor
 * did so already, and it is forgotten. Otherwise (a new node, or Redis lost its data) it is registered
 * afresh: `new`. Returns {epoch, status, the room's last stream ID or "0-0", its first}.
 * KEYS: epoch, nodes, alive(node), room · ARGV: candidate epoch, node, ttl ms, session, mode, known epoch,
 * prefix, maxlen
 */
export const REGISTER = `${REMOVE_NODE}
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local status = 'new'
if ARGV[5] == 'resume' and epoch == ARGV[6] then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    status = 'resumed'
  else
    removeNode(ARGV[7], KEYS[4], ARGV[8], ARGV[2], '* %s left (server lost)', ARGV[2])
    status = 'dead'
  end
end
if status ~= 'dead' then
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
end
local function edge(entries) if #entries > 0 then return entries[1][1] end return '0-0' end
local lastId = edge(redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1))
local firstId = edge(redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1))
return {epoch, status, lastId, firstId}
`;

/**
 * A node's heartbeat, every quarter of --node-timeout (250 ms at most): renews its lease if it still holds
 * it (fenced: a lease that ran out is never renewed — the node is dead, whether or not anyone has
 * noticed yet), and removes every node whose lease has expired, announcing each of its users as
 * `* NAME left (server lost)` — this node too, if its own lease ran out. Returns {fence status or 'ok',
 * users reaped}.
 * KEYS: nodes, alive(node), epoch, room · ARGV: prefix, node, ttl ms, epoch, maxlen, session
 */
export const HEARTBEAT = `${REMOVE_NODE}${FENCE}
local prefix, self = ARGV[1], ARGV[2]
local status = fence(KEYS[3], ARGV[4], KEYS[2], ARGV[6]) or 'ok'
if status == 'ok' then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
local reaped = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. 'alive:' .. node) == 0 then
    reaped = reaped + removeNode(prefix, KEYS[4], ARGV[5], node, '* %s left (server lost)', self)
  end
end
return {status, reaped}
`;

/**
 * Claims a name for node ARGV[1], ignoring case — fenced (see FENCE): a node that lost its lease claims
 * nothing. Returns {"ok", users online in the cluster, this one included}, {"taken"}, or {fence status}.
 * KEYS: name(lowercase), names(node), nodes, alive(node), epoch · ARGV: node, name, prefix, session, epoch
 */
export const CLAIM = `${FENCE}
local refused = fence(KEYS[5], ARGV[5], KEYS[4], ARGV[4])
if refused then return {refused} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return {'taken'} end
redis.call('SADD', KEYS[2], ARGV[2])
local online = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  online = online + redis.call('SCARD', ARGV[3] .. 'names:' .. node)
end
return {'ok', online}
`;

/**
 * After a reconnect, makes Redis's idea of this node's names match the users it really has (ARGV[3…]):
 * a name Redis lists for the node but no user here holds — a claim that ran in Redis while its reply was
 * lost with the connection — is freed (nobody was told it joined, so nobody is told it left); a name a
 * user here holds but Redis lost (it restarted empty) is claimed again, unless another node took it
 * meanwhile: then it is returned, and its user here must go. Returns {names lost, names freed}.
 * KEYS: names(node) · ARGV: prefix, node, name…
 */
export const RECONCILE = `
local prefix, node = ARGV[1], ARGV[2]
local online = {}
for i = 3, #ARGV do online[string.lower(ARGV[i])] = true end
local freed = 0
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not online[string.lower(name)] then
    redis.call('SREM', KEYS[1], name)
    local nameKey = prefix .. 'name:' .. string.lower(name)
    if redis.call('GET', nameKey) == node then redis.call('DEL', nameKey) end
    freed = freed + 1
  end
end
local lost = {}
for i = 3, #ARGV do
  local name = ARGV[i]
  local nameKey = prefix .. 'name:' .. string.lower(name)
  local holder = redis.call('GET', nameKey)
  if holder and holder ~= node then
    table.insert(lost, name)
  else
    redis.call('SET', nameKey, node)
    redis.call('SADD', KEYS[1], name)
  end
end
return {lost, freed}
`;

/**
 * Frees a name node ARGV[1] holds without announcing it (a claim whose user left before it was welcomed).
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
