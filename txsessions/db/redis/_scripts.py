r"""
The Lua scripts the Redis database runs, one per operation, and their
C{EVALSHA} names.

A session is one hash at C{prefix + key}, each field a session field with
its JSON text, plus L{CREATED} and L{EXPIRES} (in the manager's clock).

The owner index is a set per owner, at C{OWNERS + prefix + owner}, of the
Redis keys of the owner's sessions: kept by L{SAVE}, L{RENAME} and
L{DESTROY} from each session's owner field (C{"\\0o"}), and pruned of
sessions that ended by TTL by L{OWNED}, the lookup.  It lives outside the
prefix, so that no C{SCAN} of the sessions meets it.
"""

from __future__ import annotations

import functools
import hashlib

CREATED = "\x00\x00c"
"""
The field holding when a session was created.
"""

EXPIRES = "\x00\x00e"
"""
The field holding when a session expires, if it does.
"""

OWNERS = "\x00owners\x00"
"""
What the key of an owner's set of sessions starts with, before the prefix.
"""

_OWNER_OF = """
local function ownerOf(key)
  local text = redis.call('HGET', key, '\\0o')
  if not text then return nil end
  local ok, mark = pcall(cjson.decode, text)
  if ok and type(mark) == 'table' and type(mark.owner) == 'string' then
    return mark.owner
  end
  return nil
end
"""

LOAD = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
local pairs = {}
for i = 1, #fields, 2 do
  pairs[#pairs + 1] = cjson.encode(fields[i]) .. ':' .. cjson.encode(fields[i + 1])
end
return '{' .. table.concat(pairs, ',') .. '}'
"""
"""
Load a session: its hash as one JSON object, or nothing.  One bulk string is
cheaper to read than C{HGETALL}'s reply (txredisapi's own parser, used when
hiredis is missing, reads each element of a multi-element reply in a turn of
the reactor of its own), and an object is read straight into the fields'
C{dict}.  Written pair by pair, in the hash's order (a Lua table has none):
a small hash keeps its keys in the order they were set.
"""

_INT64 = """
local function fits(negative, high, low)
  -- 2^63 - 1 is 9223372036854775807, and -2^63 is an int64 too.
  if high ~= 9223372036 then return high < 9223372036 end
  return low <= (negative and 854775808 or 854775807)
end
local function int64(text)
  -- An integer as HINCRBY reads it (Redis's string2ll: no sign but '-', no
  -- leading zero, no '-0'): its sign and its magnitude, in the two parts a
  -- Lua number holds exactly (the digits above the last nine, and those);
  -- nil when HINCRBY would refuse it.
  if text == '0' then return 1, 0, 0 end
  local sign, digits = string.match(text, '^(%-?)([1-9]%d*)$')
  if not digits or #digits > 19 then return nil end
  local high = tonumber(string.sub(digits, 1, -10)) or 0
  local low = tonumber(string.sub(digits, -9))
  if not fits(sign == '-', high, low) then return nil end
  return (sign == '-') and -1 or 1, high, low
end
local function sumFits(text, delta)
  -- Whether HINCRBY takes delta, and adds it to text without overflow.
  local s1, h1, l1 = int64(text)
  local s2, h2, l2 = int64(delta)
  if not s1 or not s2 then return false end
  if s1 ~= s2 then return true end
  local high, low = h1 + h2, l1 + l2
  if low >= 1000000000 then high, low = high + 1, low - 1000000000 end
  return fits(s1 < 0, high, low)
end
"""

SAVE = (
    _OWNER_OF
    + _INT64
    + """
local owners = ARGV[2]
local ARGV = cjson.decode(ARGV[1])
local key = KEYS[1]
local create, created, expires = ARGV[1], ARGV[2], ARGV[3]
local lifetime, clear = ARGV[4], ARGV[5]
local now, ttl, deadline = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local ownerMayChange = ARGV[9] == '1'
local clock = redis.call('TIME')
if tonumber(clock[1]) + tonumber(clock[2]) / 1000000 > deadline then
  return redis.error_reply('STALE write refused: it reached Redis past its deadline')
end
local stored = nil
if create ~= '1' then
  if redis.call('EXISTS', key) == 0 then return false end
  stored = redis.call('HGET', key, '\\0\\0e')
  if stored and tonumber(stored) <= now then return false end
end
local i = 10
local deleted, updated, increments = {}, {}, {}
local gone, set = {}, {}
local n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  table.insert(deleted, ARGV[i]); gone[ARGV[i]] = true; i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  table.insert(updated, {ARGV[i], ARGV[i + 1]}); set[ARGV[i]] = ARGV[i + 1]; i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
-- Every increment is checked before the first write: Redis keeps the writes
-- of a script that fails half way.  Each adds to its field as the changes
-- before it leave it; a field holding no integer counts as 0, as JSON reads
-- it ('-0', '007'), but one too large for HINCRBY cannot be counted on.
for j = 1, n do
  local field, delta = ARGV[i], ARGV[i + 1]
  i = i + 2
  local current = set[field]
  if current == nil and create ~= '1' and clear ~= '1' and not gone[field] then
    current = redis.call('HGET', key, field)
  end
  local zero = false
  if not current then
    current = '0'
  elseif not int64(current) and not string.match(current, '^%-?[1-9]%d*$') then
    zero, current = true, '0'
  end
  if not sumFits(current, delta) then
    return redis.error_reply('RANGE increment refused: a counter would leave '
      .. 'the 64-bit integers Redis counts in; nothing was saved')
  end
  table.insert(increments, {field, delta, zero})
end
local function expire(at)
  if at then
    redis.call('PEXPIRE', key, math.max(1, math.floor((tonumber(at) - now) * 1000)))
  else
    redis.call('PEXPIRE', key, ttl)
  end
end
local ownerBefore = nil
if ownerMayChange then ownerBefore = ownerOf(key) end
if create == '1' then
  redis.call('DEL', key)
  redis.call('HSET', key, '\\0\\0c', created)
  if expires ~= '' then
    redis.call('HSET', key, '\\0\\0e', expires)
    stored = expires
  end
  -- The key has its TTL from its first write.
  expire(stored)
end
if clear == '1' then
  local fields = redis.call('HKEYS', key)
  for _, field in ipairs(fields) do
    if string.sub(field, 1, 2) ~= '\\0\\0' then redis.call('HDEL', key, field) end
  end
end
for _, field in ipairs(deleted) do redis.call('HDEL', key, field) end
for _, pair in ipairs(updated) do redis.call('HSET', key, pair[1], pair[2]) end
local result = {}
for _, increment in ipairs(increments) do
  local field = increment[1]
  if increment[3] then redis.call('HSET', key, field, '0') end
  redis.call('HINCRBY', key, field, increment[2])
  table.insert(result, field)
  -- Read back as text: Lua holds HINCRBY's answer as a double.
  table.insert(result, redis.call('HGET', key, field))
end
if create ~= '1' then
  if lifetime == '1' then
    if expires == '' then redis.call('HDEL', key, '\\0\\0e'); stored = nil
    else redis.call('HSET', key, '\\0\\0e', expires); stored = expires end
  end
  -- No application field starts with NUL: the changes above left '\\0\\0e'
  -- as it was read, or as just set.
  expire(stored)
end
local owner = ownerOf(key)
-- ownerBefore is nil when the owner field was left alone: no owner changed.
if ownerBefore and ownerBefore ~= owner then
  redis.call('SREM', owners .. ownerBefore, key)
end
if owner then
  local index = owners .. owner
  redis.call('SADD', index, key)
  local ttl = redis.call('PTTL', key)
  if ttl > redis.call('PTTL', index) then redis.call('PEXPIRE', index, ttl) end
end
if #result == 0 then return 1 end
return result
"""
)
"""
Save one request's changes, never re-creating a session deleted meanwhile,
and never after its deadline (in Redis's clock): a write refused then has
no effect at all.  Nor does one with an increment C{HINCRBY} would refuse
(a counter, or its sum, beyond the 64-bit integers): every increment is
checked before the first write, and the script answers the error C{RANGE}.
A new session's key has its TTL from its first write.
The changes come as one JSON array of strings: one argument to frame rather
than one per change.  The reply: nothing when the session is gone; else
each incremented field and its new value, or 1 when there were none (an
integer reply, which the client takes as it is, with no list to go through).
"""

RENAME = (
    _OWNER_OF
    + """
local old, new, channel = KEYS[1], KEYS[2], ARGV[2]
local clock = redis.call('TIME')
if tonumber(clock[1]) + tonumber(clock[2]) / 1000000 > tonumber(ARGV[5]) then
  return redis.error_reply('STALE rename refused: it reached Redis past its deadline')
end
local stored = redis.call('HGET', old, '\\0\\0e')
if redis.call('EXISTS', old) == 0 then return 0 end
if stored and tonumber(stored) <= tonumber(ARGV[1]) then return 0 end
if redis.call('RENAMENX', old, new) == 0 then return 0 end
local owner = ownerOf(new)
if owner then
  redis.call('SREM', ARGV[6] .. owner, old)
  redis.call('SADD', ARGV[6] .. owner, new)
end
redis.call('PUBLISH', channel, 'regenerated@' .. ARGV[4] .. ' ' .. ARGV[3])
return 1
"""
)
"""
Move a live session to a new key with C{RENAMENX}, and publish the event;
refused, with no effect, after its deadline (in Redis's clock).
"""

DESTROY = (
    _OWNER_OF
    + """
local channel, reason, origin = ARGV[1], ARGV[2], ARGV[4]
local prefixLength = tonumber(ARGV[3])
local removed = {}
for _, key in ipairs(KEYS) do
  -- A key that is no hash is no session: something else put it there.
  if redis.call('TYPE', key).ok == 'hash' then
    local owner = ownerOf(key)
    if owner then redis.call('SREM', ARGV[5] .. owner, key) end
    redis.call('DEL', key)
    local name = string.sub(key, prefixLength + 1)
    table.insert(removed, name)
    redis.call('PUBLISH', channel, reason .. '@' .. origin .. ' ' .. name)
  end
end
return removed
"""
)
"""
Delete sessions, publish an event for each, and answer with the keys
removed.  A key that is no hash is left alone.
"""

SESSIONS = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' then n = n + 1 end
end
return n
"""
"""
How many of the keys are sessions (hashes), for a count.
"""

DESCRIBE = """
local result = {}
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' then
    local fields = redis.call('HGETALL', key)
    local created, expires, size = nil, '', 0
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == '\\0\\0c' then created = value
      elseif name == '\\0\\0e' then expires = value
      elseif string.sub(name, 1, 2) ~= '\\0\\0' then size = size + #name + #value end
    end
    if created then
      table.insert(result, key)
      table.insert(result, created)
      table.insert(result, expires)
      table.insert(result, tostring(size))
    end
  end
end
return result
"""
"""
Describe sessions (their times and size) without sending their values.
"""


OWNED = """
local index, owner, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local result = {}
for _, key in ipairs(redis.call('SMEMBERS', index)) do
  local fields = redis.call('HGETALL', key)
  local created, expires, mark, size = nil, '', nil, 0
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    if name == '\\0\\0c' then created = value
    elseif name == '\\0\\0e' then expires = value
    elseif string.sub(name, 1, 2) ~= '\\0\\0' then
      size = size + #name + #value
      if name == '\\0o' then mark = value end
    end
  end
  local ok, decoded = pcall(cjson.decode, mark or 'null')
  if not created or not ok or type(decoded) ~= 'table' or decoded.owner ~= owner then
    -- Gone (its TTL ran out) or no longer this owner's.
    redis.call('SREM', index, key)
  elseif expires == '' or tonumber(expires) > now then
    table.insert(result, key)
    table.insert(result, created)
    table.insert(result, expires)
    table.insert(result, tostring(size))
    table.insert(result, mark)
  end
end
return result
"""
"""
Describe an owner's live sessions (their times, size and owner field), and
remove from the owner's set the sessions that no longer exist, or are no
longer the owner's: one round trip, no C{SCAN}.
"""


@functools.cache
def sha1(script: str) -> str:
    """
    The C{EVALSHA} name of one of this module's scripts, worked out once.
    """
    return hashlib.sha1(script.encode()).hexdigest()
