-- QrPush login: the per-user scan limit, one user's key at a time (on Redis Cluster it is in
-- another slot than the login, so it cannot be part of the login script's atomic step).
--
-- KEYS[1]  the user's recent scans: qrpush:login:scans:<base64url(sha256(user id))>, a hash
--          whose field "at" holds the Redis times (ms) of the scans within the window, spaces
--          between them
-- ARGV[1]  reserve | release
-- ARGV[2]  reserve: at most this many scans (> 0) ...
-- ARGV[3]  ... within this many milliseconds (a sliding window)
-- ARGV[2]  release: the time a reserve returned
--
-- reserve: counts the scans within the window; under the limit, adds one now and returns its
--   time; at the limit, returns 'rate_limited' and changes nothing. Atomic, so concurrent
--   reserves never pass the limit.
-- release: removes one scan reserved at that time (the login transition it was for was
--   refused); returns 1, or 0 when there was none (expired with its window).

local key, op = KEYS[1], ARGV[1]

-- HGETALL, HSET, HDEL, PEXPIRE and TIME: the ACL of docs/SECURITY.md.
local function times()
  local out = {}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    if flat[i] == 'at' then
      for t in string.gmatch(flat[i + 1], '%d+') do
        out[#out + 1] = t
      end
    end
  end
  return out
end

if op == 'reserve' then
  -- Redis 7 always replicates a script's effects; before, TIME would forbid later writes without this.
  if redis.replicate_commands then
    redis.replicate_commands()
  end
  local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local recent = {}
  for _, t in ipairs(times()) do
    if tonumber(t) > now - window then
      recent[#recent + 1] = t
    end
  end
  if #recent >= limit then
    return 'rate_limited'
  end
  local at = string.format('%d', now)
  recent[#recent + 1] = at
  redis.call('HSET', key, 'at', table.concat(recent, ' '))
  redis.call('PEXPIRE', key, window)
  return at
end

if op == 'release' then
  local kept, released = {}, 0
  for _, t in ipairs(times()) do
    if released == 0 and t == ARGV[2] then
      released = 1
    else
      kept[#kept + 1] = t
    end
  end
  if released == 1 and #kept == 0 then
    -- The last field gone, the key is too: a refused scan leaves nothing behind.
    redis.call('HDEL', key, 'at')
  elseif released == 1 then
    -- HSET keeps the key's TTL: it goes with the window of the newest scan.
    redis.call('HSET', key, 'at', table.concat(kept, ' '))
  end
  return released
end

return redis.error_reply('ERR qrpush scan limit script: unknown operation')
