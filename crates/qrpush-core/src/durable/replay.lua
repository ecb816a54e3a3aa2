-- QrPush durable replay: what a reader that last saw (epoch, offset) missed in a channel's stream,
-- read atomically with the stream's epoch and last entry. Read-only.
--
-- KEYS[1]  the channel's stream: qrpush:stream:{<channel>}
-- KEYS[2]  its epoch:            qrpush:stream:{<channel>}:epoch
-- ARGV[1]  the reader's epoch ('' when it has none)
-- ARGV[2]  the reader's offset, canonical <ms>-<seq> (checked by QrPush); '' when it has none
-- ARGV[3]  the most entries to return
--
-- Reply: {epoch, last, verdict, offset1, message1, offset2, message2, ...}
--   epoch, last: the stream's epoch and its last entry id now ('' when there is no stream)
--   verdict:
--     fresh           the reader gave no position: nothing to replay, it starts after `last`
--     recovered       every entry after the reader's offset follows, in order (maybe none)
--     epoch_changed   another life of the stream (or none): history may be missing
--     offset_gone     the reader's entry is no longer in the stream (trimmed), or never was:
--                     entries after it may have been trimmed too
--     too_far_behind  more entries than ARGV[3] were added since the reader's offset

local stream, epoch_key = KEYS[1], KEYS[2]
local reader_epoch, reader_offset, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])

local epoch = redis.call('GET', epoch_key) or ''
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
last = last[1] and last[1][1] or ''
if epoch ~= '' and last == '' then
  -- An epoch without entries: the stream is gone (deleted, evicted), the epoch key not yet.
  epoch = ''
end

if reader_offset == '' then
  return {epoch, last, 'fresh'}
end
if epoch == '' or epoch ~= reader_epoch then
  return {epoch, last, 'epoch_changed'}
end
-- From the reader's own entry (inclusive): finding it first proves nothing after it was trimmed,
-- since trimming only ever removes the oldest entries.
local entries = redis.call('XRANGE', stream, reader_offset, '+', 'COUNT', limit + 2)
if #entries == 0 or entries[1][1] ~= reader_offset then
  return {epoch, last, 'offset_gone'}
end
if #entries > limit + 1 then
  return {epoch, last, 'too_far_behind'}
end
local reply = {epoch, last, 'recovered'}
for i = 2, #entries do
  local id, fields = entries[i][1], entries[i][2]
  local message = ''
  for f = 1, #fields, 2 do
    if fields[f] == 'd' then
      message = fields[f + 1]
    end
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = message
end
return reply
