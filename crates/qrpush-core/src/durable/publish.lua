-- QrPush durable publish: append the message to the channel's capped stream and PUBLISH it, in
-- one atomic step. A reader that subscribed before reading the stream sees every entry exactly
-- once: either in what it read, or live after it (see durable/mod.rs).
--
-- KEYS[1]  the channel's stream: qrpush:stream:{<channel>}
-- KEYS[2]  its epoch:            qrpush:stream:{<channel>}:epoch
-- ARGV[1]  the channel (with channel_prefix)
-- ARGV[2]  the message
-- ARGV[3]  entries to keep (XADD MAXLEN ~)
-- ARGV[4]  the oldest entry to keep, as an age in milliseconds (XTRIM MINID ~); 0: no time bound
-- ARGV[5]  milliseconds the stream and its epoch live after this publish (PEXPIRE); 0: no expiry
-- ARGV[6]  the publish command: PUBLISH, or SPUBLISH (sharded Pub/Sub on Redis Cluster: the
--          channel is in the keys' slot, they share its {tag})
--
-- The epoch names one life of the stream. It is made when the stream is (first publish, or the
-- first after the stream or the epoch key was deleted, evicted or expired), so a reader holding
-- an offset with another epoch knows history may be missing and must resync. It is Redis's clock
-- in microseconds at creation: a later life always gets another one.
--
-- Reply: {offset, epoch, receivers}: the entry id, the epoch, and PUBLISH's receiver count.

local stream, epoch_key = KEYS[1], KEYS[2]
local channel, message = ARGV[1], ARGV[2]
local maxlen, max_age, ttl = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local publish = ARGV[6]

-- Redis does not roll a script back: refuse before the first write what the ACL would refuse
-- after it (an entry stored but never published, or published without its epoch).
if redis.acl_check_cmd then
  for _, command in ipairs({
    {publish, channel, ''}, {'XADD', stream, '*', 'd', ''}, {'SET', epoch_key, ''},
    {'PEXPIRE', stream, '1'}, {'XTRIM', stream, 'MINID', '0'},
  }) do
    if not redis.acl_check_cmd(unpack(command)) then
      return redis.error_reply('NOPERM this user has no permissions to run ' .. command[1] ..
        ' on ' .. command[2] .. ' (QrPush durable publish)')
    end
  end
end

-- Redis 7 always replicates a script's effects; before, TIME would forbid later writes without this.
if redis.replicate_commands then
  redis.replicate_commands()
end

local epoch = redis.call('GET', epoch_key)
if not epoch or redis.call('EXISTS', stream) == 0 then
  local time = redis.call('TIME')
  epoch = time[1] .. string.format('%06d', tonumber(time[2]))
  redis.call('SET', epoch_key, epoch)
end

local offset = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'd', message)
if max_age > 0 then
  -- The entry's own id carries Redis's clock: no second TIME call.
  local now = tonumber(string.match(offset, '^(%d+)-'))
  redis.call('XTRIM', stream, 'MINID', '~', string.format('%d', now - max_age))
end
if ttl > 0 then
  redis.call('PEXPIRE', stream, ttl)
  redis.call('PEXPIRE', epoch_key, ttl)
end
local receivers = redis.call(publish, channel, 'qrpush-durable/1 ' .. epoch .. ' ' .. offset .. '\n' .. message)
return {offset, epoch, receivers}
