//! The Lua scripts that change cluster state. Each runs atomically in Redis, so a duplicate
//! check, a capacity check and the sequence number they stamp can never interleave with
//! another instance's (docs/cluster-design.md explains the keys and the order).
//!
//! Every script touches the keys of one slot only, so the same scripts run on one Redis and
//! on a Redis Cluster: a room's scripts take the room's keys (`wire::room_keys`, named `M`,
//! `S`, `CAP`, `P`, `I`, `E` below) and its presence channel as `ARGV[1]`; the lease scripts
//! take the keys under the `{rdv}` tag. What spans rooms (reaping a dead instance) is done
//! room by room, each step safe to repeat.

use std::sync::LazyLock;

use redis::Script;

use super::wire::Layout;

/// What every room script shares. `PUBLISH` is replaced by `SPUBLISH` for a Redis Cluster.
const ROOM: &str = r"
local M, S, CAP, P, I, E = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local CHANNEL = ARGV[1]
-- The room's sequence number when this Redis process first wrote a record to it: every
-- record numbered above it was written since the process started, after whatever older data
-- it loaded (a snapshot, or a replica's copy promoted), whose numbers it may reuse. Only a
-- record at or below it can be older than what the instances saw before. Asked by the
-- scripts that write records, before they do (`INFO` costs Redis ~5 µs; a plain `find`
-- rather than a pattern saves ~3 µs more).
local function floor()
  local info = redis.call('INFO', 'server')
  local from = string.find(info, 'run_id:', 1, true) + 7
  local run = string.sub(info, from, from + 39)
  local era = redis.call('HMGET', E, 'run', 'floor')
  if era[1] == run then return tonumber(era[2]) end
  local now = tonumber(redis.call('GET', S) or '0')
  redis.call('HSET', E, 'run', run, 'floor', now)
  -- Only the instances' resync after the start needs it; a room never written again does
  -- not keep it.
  redis.call('PEXPIRE', E, 86400000)
  return now
end
-- Reads `instance` and `connection` from a record (see `wire::Record`).
local function owner(record)
  local _, _, instance, connection = string.find(record, '^%d+\t%d+\t([^\t]*)\t([^\t]*)\t')
  return instance, connection
end
local function seq_of(record) return tonumber(string.match(record, '^(%d+)')) end
-- Removes a member and tells the room. Whatever removes a member ends its grace (§14).
local function left(peer, reason, instance, connection)
  redis.call('HDEL', M, peer)
  redis.call('HDEL', P, peer)
  local seq = redis.call('INCR', S)
  redis.call('PUBLISH', CHANNEL,
    'L\t' .. seq .. '\t' .. peer .. '\t' .. reason .. '\t' .. instance .. '\t' .. connection)
  if redis.call('HLEN', M) == 0 then
    -- An empty room's counter outlives any instance's view of it, then goes.
    redis.call('PEXPIRE', S, 86400000)
    -- The size its opener's token set, and who held members, end with it.
    redis.call('DEL', CAP)
    redis.call('DEL', I)
    redis.call('DEL', E)
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
local function joined(peer, since, tail)
  local seq = redis.call('INCR', S)
  redis.call('PERSIST', S)
  local record = seq .. '\t' .. since .. '\t' .. tail
  redis.call('HSET', M, peer, record)
  redis.call('PUBLISH', CHANNEL, 'J\t' .. seq .. '\t' .. peer .. '\t' .. record)
end
-- Points a member's record at a new connection, keeping `since`: not presence (§14).
local function moved(peer, record, tail)
  local from_instance, from_connection = owner(record)
  local _, _, since = string.find(record, '^%d+\t(%d+)\t')
  redis.call('HDEL', P, peer)
  local seq = redis.call('INCR', S)
  local now = seq .. '\t' .. since .. '\t' .. tail
  redis.call('HSET', M, peer, now)
  redis.call('PUBLISH', CHANNEL,
    'M\t' .. seq .. '\t' .. peer .. '\t' .. from_instance .. '\t' .. from_connection .. '\t' .. now)
end
-- The instance holds members here since the lease that gave it `incarnation`.
local function claim(instance, incarnation)
  redis.call('HSET', I, instance, incarnation)
end
";

/// What the lease scripts share.
const LEASE: &str = r"
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
";

/// The scripts for one [`Layout`]: the same text but for the publish command.
pub struct Scripts {
    pub join: Script,
    pub park: Script,
    pub leave: Script,
    pub reap_room: Script,
    pub announce: Script,
}

impl Scripts {
    pub fn get(layout: Layout) -> &'static Scripts {
        static SINGLE: LazyLock<Scripts> = LazyLock::new(|| Scripts::new(Layout::Single));
        static SHARDED: LazyLock<Scripts> = LazyLock::new(|| Scripts::new(Layout::Sharded));
        match layout {
            Layout::Single => &SINGLE,
            Layout::Sharded => &SHARDED,
        }
    }

    fn new(layout: Layout) -> Self {
        let room = |body: &str| {
            let text = format!("{ROOM}\n{body}");
            Script::new(&text.replace("'PUBLISH'", &format!("'{}'", layout.publish_command())))
        };
        Self {
            join: room(JOIN),
            park: room(PARK),
            leave: room(LEAVE),
            reap_room: room(REAP_ROOM),
            announce: room(ANNOUNCE),
        }
    }
}

/// ARGV: channel, peer, instance, connection, record tail, verified (`1` replaces a live
/// holder of the ID), max peers, `1` for a snapshot, the room's size if this join opens it
/// (a token's `max_peers`) or empty, the connection that holds the ID parked on this very
/// instance or empty, the instance's incarnation. Returns `{status, seq before the join,
/// snapshot}`; status `ok`, `resumed`, `duplicate`, `held` (parked by a verified holder, and
/// this join is not verified) or `full`.
///
/// A resume keeps the member's record (its place in `welcome` order too), points it at the
/// new connection and publishes `M`, which no view turns into presence.
const JOIN: &str = r"
local peer, instance, connection = ARGV[2], ARGV[3], ARGV[4]
floor()
local existing = redis.call('HGET', M, peer)
local parked = false
if existing then
  local holder, held_by = owner(existing)
  local mark = redis.call('HGET', P, peer)
  parked = mark == holder .. '\t' .. held_by or (holder == instance and held_by == ARGV[10])
end
if existing and not parked and ARGV[6] == '1' then
  local old_instance, old_connection = owner(existing)
  left(peer, 'replaced', old_instance, old_connection)
  existing = false
end
local before = tonumber(redis.call('GET', S) or '0')
local snapshot = {}
if ARGV[8] == '1' then snapshot = redis.call('HGETALL', M) end
if parked then
  if verified(existing) and ARGV[6] ~= '1' then return {'held', before, snapshot} end
  moved(peer, existing, ARGV[5])
  claim(instance, ARGV[11])
  return {'resumed', before, snapshot}
end
if existing then return {'duplicate', before, snapshot} end
local count = redis.call('HLEN', M)
if count == 0 then
  if ARGV[9] ~= '' then redis.call('SET', CAP, ARGV[9]) else redis.call('DEL', CAP) end
end
local limit = tonumber(ARGV[7])
local size = tonumber(redis.call('GET', CAP) or '0')
if size > 0 and size < limit then limit = size end
if count >= limit then return {'full', before, snapshot} end
joined(peer, now_ms(), ARGV[5])
claim(instance, ARGV[11])
return {'ok', before, snapshot}
";

/// ARGV: channel, peer, instance, connection. Marks the member held for a resume if that
/// connection of this instance still holds it, so a register on any instance can resume
/// it; returns 1 if it did.
const PARK: &str = r"
local peer, instance, connection = ARGV[2], ARGV[3], ARGV[4]
local existing = redis.call('HGET', M, peer)
if not existing then return 0 end
local holder, held_by = owner(existing)
if holder ~= instance or held_by ~= connection then return 0 end
redis.call('HSET', P, peer, instance .. '\t' .. connection)
return 1
";

/// ARGV: channel, peer, instance, connection. Removes the member if that connection still
/// holds it; returns 1 if it did.
const LEAVE: &str = r"
local peer, instance, connection = ARGV[2], ARGV[3], ARGV[4]
local existing = redis.call('HGET', M, peer)
if not existing then return 0 end
local holder, held_by = owner(existing)
if holder ~= instance or held_by ~= connection then return 0 end
left(peer, 'left', instance, connection)
return 1
";

/// ARGV: channel, instance, a generation or empty, the reason (`left` or `lost`). Removes
/// every member of that instance in the room, and returns how many. With a generation, only
/// if the instance's members here come from a lease older than it: an instance reaped at
/// generation G that came back (a new lease, a higher incarnation) and re-announced the room
/// keeps what it announced, so reaping room by room is safe to repeat or to run late.
const REAP_ROOM: &str = r"
local instance, below, reason = ARGV[2], ARGV[3], ARGV[4]
if below ~= '' and tonumber(redis.call('HGET', I, instance) or '0') >= tonumber(below) then
  return 0
end
local all = redis.call('HGETALL', M)
local removed = 0
for i = 1, #all, 2 do
  local holder, connection = owner(all[i + 1])
  if holder == instance then
    left(all[i], reason, instance, connection)
    removed = removed + 1
  end
end
redis.call('HDEL', I, instance)
return removed
";

/// After a reconnect: makes Redis agree with what this instance holds in one room.
/// ARGV: channel, instance, `1` if Redis kept its numbering (it did not lose its data, though
/// it may have reloaded older data; else empty), the instance's incarnation, the number of
/// local members, then (peer, connection, since or empty, record tail, seq of its latest
/// record or 0, `1` if held for a resume) for each local member, then (peer, seq) for each
/// member this instance places elsewhere. Removes this instance's members it no longer
/// holds, adds the missing ones (past the room cap if need be: they are connected already).
/// A verified member takes its ID back from an unverified holder that got in meanwhile
/// (Redis lost its data, or this instance was cut off): a verified incumbent is never
/// displaced by an unverified claimant (PROTOCOL §9).
///
/// Older data can hold records older than what the instances saw since: a member that moved
/// (a resume, PROTOCOL §14) is still recorded where it was. Such a record, with a lower
/// sequence number than the instance knows, is stale: where the member is now takes it over
/// with `M` (not presence), and where it was leaves it to that, instead of announcing the
/// member gone. Only a record from the older data (at or below `FLOOR`) can be stale: one
/// written since reuses numbers the instances saw before, and is newer than all of it.
/// Returns `{peers held by another connection, sequence, snapshot, floor}`.
const ANNOUNCE: &str = r"
local instance, same_numbering, incarnation = ARGV[2], ARGV[3] == '1', ARGV[4]
local FLOOR = floor()
-- Whether a record numbered `seq` is older than the `known` number of the same member.
local function stale(known, seq)
  return same_numbering and known ~= nil and known > seq and seq <= FLOOR
end
local first = 6
local last_member = first - 1 + 6 * tonumber(ARGV[5])
local listed = {}
-- The latest record sequence this instance saw for each member, here or elsewhere.
local known = {}
for i = first, last_member, 6 do
  listed[ARGV[i]] = ARGV[i + 1]
  known[ARGV[i]] = tonumber(ARGV[i + 4])
end
for i = last_member + 1, #ARGV, 2 do known[ARGV[i]] = tonumber(ARGV[i + 1]) end
local all = redis.call('HGETALL', M)
for i = 1, #all, 2 do
  local peer = all[i]
  local holder, connection = owner(all[i + 1])
  if holder == instance and listed[peer] ~= connection
      and not stale(known[peer], seq_of(all[i + 1])) then
    left(peer, 'left', instance, connection)
  end
end
local conflicts = {}
for i = first, last_member, 6 do
  local peer, connection, tail = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local since = ARGV[i + 2]
  if since == '' then since = now_ms() end
  local record = redis.call('HGET', M, peer)
  if record then
    local holder, held_by = owner(record)
    if holder == instance and held_by == connection then
      -- Already as announced.
    elseif stale(tonumber(ARGV[i + 4]), seq_of(record)) then
      moved(peer, record, tail)
    elseif tail_verified(tail) and not verified(record) then
      left(peer, 'replaced', holder, held_by)
      joined(peer, since, tail)
    else
      table.insert(conflicts, peer)
    end
  else
    joined(peer, since, tail)
  end
  -- Held for a resume: marked again (Redis may have lost the mark), if still ours.
  if ARGV[i + 5] == '1' then
    local now = redis.call('HGET', M, peer)
    local holder, held_by = owner(now)
    if holder == instance and held_by == connection then
      redis.call('HSET', P, peer, instance .. '\t' .. connection)
    end
  end
end
if last_member >= first then claim(instance, incarnation) end
return {conflicts, tonumber(redis.call('GET', S) or '0'), redis.call('HGETALL', M), FLOOR}
";

fn lease_script(body: &str) -> Script {
    Script::new(&format!("{LEASE}\n{body}"))
}

/// KEYS: instances, generation. ARGV: instance, lease in ms. Extends the lease (Redis's
/// clock) and advances the generation. Returns `{known, generation}`: known is 0 if the
/// instance had no lease (new, reaped, or Redis lost its data): it must re-announce, and
/// the generation is its new incarnation; 2 if its lease had run out by Redis's clock and
/// nobody reaped it yet (its renewals were held up, or Redis reloaded an older lease):
/// others' leases may have run out the same way.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        r"
local until_ms = now_ms() + tonumber(ARGV[2])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
local generation = redis.call('INCR', KEYS[2])
if known and tonumber(known) < now_ms() then return {2, generation} end
if known then return {1, generation} end
return {0, generation}
",
    )
});

/// KEYS: instances, generation, reaping, reap clock. ARGV: the generation the caller last
/// saw, or empty; the caller's instance; the lease in ms. Takes every instance whose lease
/// ended out of the lease set (its next renewal finds no lease, and it re-announces) and
/// sets its rooms aside to be reaped room by room (`REAP_ROOM`), below the generation of
/// this call. Returns `{generation, live instances, {instance, generation, rooms}…}` with
/// every reap not yet finished (another instance's that stopped half-way included), or,
/// without reaping: `{-1}` if the generation went backwards (Redis came back with older
/// data, whose leases are stale: nobody is reaped on their word); `{-2}` if the caller's
/// own lease has run out (the call was held up, with everyone's renewals); `{-3}` for a
/// lease after a gap of half a lease since the last call (Redis was away: stalled,
/// restarting, or reloading a snapshot that may be only a moment old, so every lease that
/// ran out meanwhile says nothing about who is alive), and until that lease has passed.
pub static REAP: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        r"
local mine = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not mine or tonumber(mine) < now_ms() then return {-2} end
local now, lease = now_ms(), tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[4], 'last') or '0')
local hold = tonumber(redis.call('HGET', KEYS[4], 'hold') or '0')
redis.call('HSET', KEYS[4], 'last', now)
if last > 0 and now - last > lease / 2 then
  hold = now + lease
  redis.call('HSET', KEYS[4], 'hold', hold)
end
if now < hold then return {-3} end
local generation = redis.call('INCR', KEYS[2])
if ARGV[1] ~= '' and generation <= tonumber(ARGV[1]) then return {-1} end
for _, instance in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms())) do
  redis.call('ZREM', KEYS[1], instance)
  local rooms = 'rdv:{rdv}:rooms:' .. instance
  local aside = 'rdv:{rdv}:reaped:' .. instance .. ':' .. generation
  if redis.call('EXISTS', rooms) == 1 then redis.call('RENAME', rooms, aside) end
  redis.call('HSET', KEYS[3], instance .. '\t' .. generation, aside)
end
local pending = {}
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  local _, _, instance, below = string.find(all[i], '^([^\t]*)\t(%d+)$')
  table.insert(pending, {instance, below, redis.call('SMEMBERS', all[i + 1])})
end
return {generation, redis.call('ZRANGE', KEYS[1], 0, -1), pending}
",
    )
});

/// KEYS: reaping. ARGV: instance, generation. A reap whose rooms are all done.
pub static REAPED: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        r"
local field = ARGV[1] .. '\t' .. ARGV[2]
local aside = redis.call('HGET', KEYS[1], field)
if aside then redis.call('DEL', aside) end
redis.call('HDEL', KEYS[1], field)
return 0
",
    )
});

/// KEYS: the epoch key. ARGV: a fresh random value. Returns Redis's epoch, setting it to
/// ARGV[1] if it has none: a different epoch after a reconnect means Redis lost its data.
pub static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
",
    )
});
