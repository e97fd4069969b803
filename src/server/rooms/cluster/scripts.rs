//! The Lua scripts that change cluster state. Each runs atomically in Redis, so a duplicate
//! check, a capacity check and the sequence number they stamp can never interleave with
//! another instance's (docs/cluster-design.md explains the keys and the order).
//!
//! Scripts that work on keys named inside them (the reaper) need a single Redis or Valkey,
//! not Redis Cluster; docs/cluster-design.md says so.

use std::sync::LazyLock;

use redis::Script;

/// Reads `instance` and `connection` from a record (see `wire::Record`).
const OWNER: &str = r"
local function owner(record)
  local _, _, instance, connection = string.find(record, '^%d+\t%d+\t([^\t]*)\t([^\t]*)\t')
  return instance, connection
end
local function left(room, peer, reason, instance, connection)
  -- Whatever removes a member ends its grace (PROTOCOL §14).
  redis.call('HDEL', 'rdv:p:' .. room, peer)
  local seq = redis.call('INCR', 'rdv:s:' .. room)
  redis.call('PUBLISH', 'rdv:r:' .. room,
    'L\t' .. seq .. '\t' .. peer .. '\t' .. reason .. '\t' .. instance .. '\t' .. connection)
  if redis.call('HLEN', 'rdv:m:' .. room) == 0 then
    -- An empty room's counter outlives any instance's view of it, then goes.
    redis.call('PEXPIRE', 'rdv:s:' .. room, 86400000)
    -- The size its opener's token set ends with it.
    redis.call('DEL', 'rdv:cap:' .. room)
  end
end
-- Whether a record (or a record tail, `instance \t connection \t verified \t key`) says
-- its holder proved possession of the key.
local function verified(record)
  return string.find(record, '^%d+\t%d+\t[^\t]*\t[^\t]*\t1\t') ~= nil
end
local function tail_verified(tail)
  return string.find(tail, '^[^\t]*\t[^\t]*\t1\t') ~= nil
end
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
-- `since` orders members oldest first; it survives a re-announce, the sequence does not.
local function joined(room, peer, since, tail)
  local seq = redis.call('INCR', 'rdv:s:' .. room)
  redis.call('PERSIST', 'rdv:s:' .. room)
  local record = seq .. '\t' .. since .. '\t' .. tail
  redis.call('HSET', 'rdv:m:' .. room, peer, record)
  redis.call('PUBLISH', 'rdv:r:' .. room, 'J\t' .. seq .. '\t' .. peer .. '\t' .. record)
end
";

fn script(body: &str) -> Script {
    Script::new(&format!("{OWNER}\n{body}"))
}

/// KEYS: members, sequence, instances, the room's size, the room's parked members. ARGV:
/// room, peer, instance, connection, record tail, verified (`1` replaces a live holder of
/// the ID), max peers, `1` for a snapshot, the room's size if this join opens it (a token's
/// `max_peers`) or empty, the connection that holds the ID parked on this very instance or
/// empty. Returns `{status, seq before the join, snapshot}`; status `ok`, `resumed`,
/// `duplicate`, `held` (parked by a verified holder, and this join is not verified), `full`
/// or `lost` (this instance has no lease: it must re-announce first).
///
/// A resume keeps the member's record (its place in `welcome` order too), points it at the
/// new connection and publishes `M`, which no view turns into presence.
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local room, peer, instance, connection = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not redis.call('ZSCORE', KEYS[3], instance) then return {'lost', 0, {}} end
local existing = redis.call('HGET', KEYS[1], peer)
local parked_by = false
if existing then
  local holder, held_by = owner(existing)
  local mark = redis.call('HGET', KEYS[5], peer)
  if mark == holder .. '\t' .. held_by or (holder == instance and held_by == ARGV[10]) then
    parked_by = {holder, held_by}
  end
end
if existing and not parked_by and ARGV[6] == '1' then
  local old_instance, old_connection = owner(existing)
  redis.call('HDEL', KEYS[1], peer)
  redis.call('HDEL', 'rdv:i:' .. old_instance, room .. '\t' .. peer)
  left(room, peer, 'replaced', old_instance, old_connection)
  existing = false
end
local before = tonumber(redis.call('GET', KEYS[2]) or '0')
local snapshot = {}
if ARGV[8] == '1' then snapshot = redis.call('HGETALL', KEYS[1]) end
if parked_by then
  if verified(existing) and ARGV[6] ~= '1' then return {'held', before, snapshot} end
  local _, _, since = string.find(existing, '^%d+\t(%d+)\t')
  redis.call('HDEL', KEYS[5], peer)
  redis.call('HDEL', 'rdv:i:' .. parked_by[1], room .. '\t' .. peer)
  local seq = redis.call('INCR', KEYS[2])
  local record = seq .. '\t' .. since .. '\t' .. ARGV[5]
  redis.call('HSET', KEYS[1], peer, record)
  redis.call('HSET', 'rdv:i:' .. instance, room .. '\t' .. peer, connection)
  redis.call('PUBLISH', 'rdv:r:' .. room,
    'M\t' .. seq .. '\t' .. peer .. '\t' .. parked_by[1] .. '\t' .. parked_by[2] .. '\t' .. record)
  return {'resumed', before, snapshot}
end
if existing then return {'duplicate', before, snapshot} end
local count = redis.call('HLEN', KEYS[1])
if count == 0 then
  if ARGV[9] ~= '' then redis.call('SET', KEYS[4], ARGV[9]) else redis.call('DEL', KEYS[4]) end
end
local limit = tonumber(ARGV[7])
local size = tonumber(redis.call('GET', KEYS[4]) or '0')
if size > 0 and size < limit then limit = size end
if count >= limit then return {'full', before, snapshot} end
joined(room, peer, now_ms(), ARGV[5])
redis.call('HSET', 'rdv:i:' .. instance, room .. '\t' .. peer, connection)
return {'ok', before, snapshot}
",
    )
});

/// KEYS: members, the room's parked members. ARGV: peer, instance, connection. Marks the
/// member held for a resume if that connection of this instance still holds it, so a
/// register on any instance can resume it; returns 1 if it did.
pub static PARK: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local peer, instance, connection = ARGV[1], ARGV[2], ARGV[3]
local existing = redis.call('HGET', KEYS[1], peer)
if not existing then return 0 end
local holder, held_by = owner(existing)
if holder ~= instance or held_by ~= connection then return 0 end
redis.call('HSET', KEYS[2], peer, instance .. '\t' .. connection)
return 1
",
    )
});

/// KEYS: members. ARGV: room, peer, instance, connection. Removes the member if that
/// connection still holds it; returns 1 if it did.
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local room, peer, instance, connection = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local existing = redis.call('HGET', KEYS[1], peer)
if not existing then return 0 end
local holder, held_by = owner(existing)
if holder ~= instance or held_by ~= connection then return 0 end
redis.call('HDEL', KEYS[1], peer)
redis.call('HDEL', 'rdv:i:' .. instance, room .. '\t' .. peer)
left(room, peer, 'left', instance, connection)
return 1
",
    )
});

/// KEYS: instances, generation. ARGV: instance, lease in ms. Extends the lease (Redis's
/// clock) and advances the generation. Returns `{known, generation}`: known is 0 if the
/// instance had no lease (new, reaped, or Redis lost its data): it must re-announce.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local until_ms = now_ms() + tonumber(ARGV[2])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
local generation = redis.call('INCR', KEYS[2])
if known then return {1, generation} end
return {0, generation}
",
    )
});

/// KEYS: instances, generation. ARGV: an instance to remove (graceful shutdown), or empty
/// for every instance whose lease has ended; the reason its members left (`left` or
/// `lost`); the generation the caller last saw, or empty. Returns how many members were
/// removed, or -1 without removing anything if the generation went backwards (Redis came
/// back with older data, whose leases are stale: nobody is reaped on their word).
pub static REAP: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if ARGV[3] ~= '' and redis.call('INCR', KEYS[2]) <= tonumber(ARGV[3]) then return -1 end
local dead
if ARGV[1] ~= '' then
  dead = {ARGV[1]}
else
  dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms())
end
local removed = 0
for _, instance in ipairs(dead) do
  local index = 'rdv:i:' .. instance
  local held = redis.call('HGETALL', index)
  for i = 1, #held, 2 do
    local _, _, room, peer = string.find(held[i], '^(.*)\t([^\t]*)$')
    local record = redis.call('HGET', 'rdv:m:' .. room, peer)
    if record then
      local holder, connection = owner(record)
      if holder == instance then
        redis.call('HDEL', 'rdv:m:' .. room, peer)
        left(room, peer, ARGV[2], instance, connection)
        removed = removed + 1
      end
    end
  end
  redis.call('DEL', index)
  redis.call('ZREM', KEYS[1], instance)
end
return removed
",
    )
});

/// After a reconnect: makes Redis agree with what this instance holds in one room.
/// KEYS: members, sequence, instances. ARGV: room, instance, `1` if Redis kept its
/// numbering (it did not lose its data, though it may have reloaded older data; else
/// empty), the number of local members, then (peer, connection, since or empty,
/// record tail, seq of its latest record or 0, `1` if held for a resume) for each local
/// member, then (peer, seq) for
/// each member this instance places elsewhere. Refused (an error) if
/// the instance holds no lease. Removes this instance's members it no longer holds, adds the
/// missing ones (past the room cap if need be: they are connected already). A verified
/// member takes its ID back from an unverified holder that got in meanwhile (Redis lost its
/// data, or this instance was cut off): a verified incumbent is never displaced by an
/// unverified claimant (PROTOCOL §9).
///
/// Older data can hold records older than what the instances saw since: a member that moved
/// (a resume, PROTOCOL §14) is still recorded where it was. Such a record, with a lower
/// sequence number than the instance knows, is stale: where the member is now takes it over
/// with `M` (not presence), and where it was leaves it to that, instead of announcing the
/// member gone. Returns `{peers held by another connection, sequence, snapshot}`.
pub static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local room, instance, same_numbering = ARGV[1], ARGV[2], ARGV[3] == '1'
-- Members re-added for an instance without a lease would belong to nobody a reaper knows.
if not redis.call('ZSCORE', KEYS[3], instance) then return redis.error_reply('rdv: no lease') end
local last_member = 4 + 6 * tonumber(ARGV[4])
local listed = {}
-- The latest record sequence this instance saw for each member, here or elsewhere.
local known = {}
for i = 5, last_member, 6 do
  listed[ARGV[i]] = ARGV[i + 1]
  known[ARGV[i]] = tonumber(ARGV[i + 4])
end
for i = last_member + 1, #ARGV, 2 do known[ARGV[i]] = tonumber(ARGV[i + 1]) end
local function seq_of(record) return tonumber(string.match(record, '^(%d+)')) end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local peer = all[i]
  local holder, connection = owner(all[i + 1])
  local stale = same_numbering and known[peer] and known[peer] > seq_of(all[i + 1])
  if holder == instance and listed[peer] ~= connection and not stale then
    redis.call('HDEL', KEYS[1], peer)
    redis.call('HDEL', 'rdv:i:' .. instance, room .. '\t' .. peer)
    left(room, peer, 'left', instance, connection)
  end
end
local conflicts = {}
for i = 5, last_member, 6 do
  local peer, connection, tail = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local since = ARGV[i + 2]
  if since == '' then since = now_ms() end
  local record = redis.call('HGET', KEYS[1], peer)
  if record then
    local holder, held_by = owner(record)
    if holder == instance and held_by == connection then
      redis.call('HSET', 'rdv:i:' .. instance, room .. '\t' .. peer, connection)
    elseif same_numbering and tonumber(ARGV[i + 4]) > seq_of(record) then
      local _, _, kept_since = string.find(record, '^%d+\t(%d+)\t')
      redis.call('HDEL', 'rdv:i:' .. holder, room .. '\t' .. peer)
      redis.call('HDEL', 'rdv:p:' .. room, peer)
      local seq = redis.call('INCR', KEYS[2])
      local moved = seq .. '\t' .. kept_since .. '\t' .. tail
      redis.call('HSET', KEYS[1], peer, moved)
      redis.call('HSET', 'rdv:i:' .. instance, room .. '\t' .. peer, connection)
      redis.call('PUBLISH', 'rdv:r:' .. room,
        'M\t' .. seq .. '\t' .. peer .. '\t' .. holder .. '\t' .. held_by .. '\t' .. moved)
    elseif tail_verified(tail) and not verified(record) then
      redis.call('HDEL', KEYS[1], peer)
      redis.call('HDEL', 'rdv:i:' .. holder, room .. '\t' .. peer)
      left(room, peer, 'replaced', holder, held_by)
      joined(room, peer, since, tail)
      redis.call('HSET', 'rdv:i:' .. instance, room .. '\t' .. peer, connection)
    else
      table.insert(conflicts, peer)
    end
  else
    joined(room, peer, since, tail)
    redis.call('HSET', 'rdv:i:' .. instance, room .. '\t' .. peer, connection)
  end
  -- Held for a resume: marked again (Redis may have lost the mark), if still ours.
  if ARGV[i + 5] == '1' then
    local now = redis.call('HGET', KEYS[1], peer)
    local holder, held_by = owner(now)
    if holder == instance and held_by == connection then
      redis.call('HSET', 'rdv:p:' .. room, peer, instance .. '\t' .. connection)
    end
  end
end
return {conflicts, tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
",
    )
});

/// After a reconnect: removes this instance's members in rooms it no longer has anyone in.
/// KEYS: the instance's index. ARGV: instance, then the rooms it still has members in.
pub static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local instance = ARGV[1]
local keep = {}
for i = 2, #ARGV do keep[ARGV[i]] = true end
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local _, _, room, peer = string.find(held[i], '^(.*)\t([^\t]*)$')
  if not keep[room] then
    redis.call('HDEL', KEYS[1], held[i])
    local record = redis.call('HGET', 'rdv:m:' .. room, peer)
    if record then
      local holder, connection = owner(record)
      if holder == instance then
        redis.call('HDEL', 'rdv:m:' .. room, peer)
        left(room, peer, 'left', instance, connection)
      end
    end
  end
end
return 0
",
    )
});

/// KEYS: the epoch key. ARGV: a fresh random value. Returns Redis's epoch, setting it to
/// ARGV[1] if it has none: a different epoch after a reconnect means Redis lost its data.
pub static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
",
    )
});
