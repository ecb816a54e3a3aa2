-- QrPush login: the state machine of one QR login. Every call is one atomic transition:
-- check the state, write the new state and its TTL, PUBLISH the event. A refused call writes
-- nothing and publishes nothing (every check comes before the first write), with one exception:
-- a redeem with a wrong confirmation code is counted, and the last allowed one cancels the login.
--
--   pending --scan--> scanned --approve--> approved --redeem (ticket + code)--> redeemed
--                        \--reject--> rejected                \--(too many wrong codes)--> cancelled
--   pending | scanned | approved --cancel--> cancelled
--   pending | scanned | approved --(deadline passed, seen by any call)--> expired
--
-- KEYS[1]   the login's hash: qrpush:login:<base64url(sha256(login id))>; on Redis Cluster
--           qrpush:login:{<tag>}<base64url(sha256(login id))>, <tag> putting it in the channel's slot
-- ARGV[1]   operation: start | scan | approve | reject | redeem | cancel | status
-- ARGV[2]   the login id (base64url): only copied into events, never stored
-- ARGV[3]   the channel events go to
-- ARGV[4]   "1": events carry "sessionId" (the single-channel format, routed on that field)
-- ARGV[5]   the publish command: PUBLISH, or SPUBLISH (sharded Pub/Sub on Redis Cluster, where
--           the channel is in KEYS[1]'s slot: the key is named so)
-- ARGV[6..8] pending, approved and terminal TTLs in milliseconds
-- ARGV[9..] the operation's own arguments, named where they are read
--
-- Secrets arrive as SHA-256 hashes (computed by QrPush) and only hashes are stored. The one
-- plaintext secret a call carries is approve's new ticket, which is published, never stored.
-- The confirmation code arrives hashed with the login id (which Redis never sees).
-- Time is Redis's own (TIME), so every app server agrees on deadlines.
--
-- Reply: {"ok", state, version, created_ms, deadline_ms, first, second}, where the last two are
-- what the operation returns besides the state: scan the browser's IP and user agent, redeem
-- the user and device, status "1" when it stored a new ticket and the approver's display name;
-- empty for the others.
--     or {"err", reason, state}: the call was refused, nothing changed.

local key, op, id, channel = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local with_session_id = ARGV[4] == '1'
local publish = ARGV[5]
local pending_ttl, approved_ttl, terminal_ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- Redis 7 always replicates a script's effects; before, TIME would forbid later writes without this.
if redis.replicate_commands then
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function int(n)
  return string.format('%d', n)
end

-- The subscribers the event reached (-1: no event): a client that publishes through Sentinel
-- asks whether a node that reached nobody is still the primary.
local receivers = -1

local function ok(h, first, second)
  return {'ok', h.state, int(h.version), h.created, h.deadline, first or '', second or '', int(receivers)}
end

local function refuse(reason, h)
  return {'err', reason, h and h.state or '', int(receivers)}
end

if op == 'start' then
  local qr_hash, secret_hash, ip, ua = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
  -- 128 random bits never collide; this only guards against a caller reusing an id.
  if redis.call('EXISTS', key) == 1 then
    return refuse('exists')
  end
  local h = {state = 'pending', version = 1, created = int(now), deadline = int(now + pending_ttl)}
  redis.call('HSET', key, 'state', h.state, 'version', '1', 'created', h.created,
    'deadline', h.deadline, 'updated', h.created, 'qr', qr_hash, 'secret', secret_hash,
    'ip', ip, 'ua', ua)
  redis.call('PEXPIRE', key, int(pending_ttl + terminal_ttl))
  return ok(h)
end

local flat = redis.call('HGETALL', key)
if #flat == 0 then
  return refuse('not_found')
end
local h = {}
for i = 1, #flat, 2 do
  h[flat[i]] = flat[i + 1]
end
h.version = tonumber(h.version)
local live = h.state == 'pending' or h.state == 'scanned' or h.state == 'approved'

-- The transition itself: new state, next version, optional TTL, and the event, all or nothing.
local function move(state, data, fields, ttl)
  -- Redis does not roll a script back: check that the event can be published before writing
  -- anything, or an ACL refusing the channel would leave a state change without its event.
  if redis.acl_check_cmd and not redis.acl_check_cmd(publish, channel, '') then
    error({err = 'NOPERM this user has no permissions to publish the login events to ' .. channel})
  end
  h.version = h.version + 1
  h.state = state
  redis.call('HSET', key, 'state', state, 'version', int(h.version), 'updated', int(now), unpack(fields))
  if ttl then
    redis.call('PEXPIRE', key, int(ttl))
  end
  local event = '{"v":1,"type":"' .. state .. '","loginId":"' .. id .. '"'
  if with_session_id then
    event = event .. ',"sessionId":"' .. id .. '"'
  end
  event = event .. ',"seq":' .. int(h.version) .. ',"ts":' .. int(now) .. ',"data":{' .. data .. '}}'
  receivers = redis.call(publish, channel, event)
end

-- The deadline passed: whichever call sees it first records and announces the expiry.
if live and now >= tonumber(h.deadline) then
  local from = h.state
  h.deadline = '0'
  move('expired', '"from":"' .. from .. '"', {'deadline', '0', 'ticket', '', 'code', ''}, terminal_ttl)
  if op == 'status' then
    return ok(h)
  end
  return refuse('expired', h)
end

if op == 'status' then
  -- With the browser secret, an approved login gets a new ticket (ARGV[10], its hash): the
  -- way a browser that missed the "approved" event still completes. The event's ticket dies.
  local secret_hash, new_ticket_hash = ARGV[9], ARGV[10]
  -- The display name goes with it: the browser shows who approved before it redeems.
  if secret_hash ~= '' then
    if secret_hash ~= h.secret then
      return refuse('wrong_secret', h)
    end
    if h.state == 'approved' then
      redis.call('HSET', key, 'ticket', new_ticket_hash)
      return ok(h, '1', h.name)
    end
  end
  return ok(h)
end

if h.state == 'expired' then
  return refuse('expired', h)
end

if op == 'scan' then
  -- The per-user scan limit is not checked here: its key is in another Cluster slot, so scans.lua
  -- reserves a scan under the limit before this runs (see login/mod.rs, scan).
  local qr_hash, user, device = ARGV[9], ARGV[10], ARGV[11]
  if qr_hash ~= h.qr then
    return refuse('not_found')
  end
  if h.state ~= 'pending' then
    return refuse('wrong_state', h)
  end
  move('scanned', '"expiresAt":' .. h.deadline, {'user', user, 'device', device})
  return ok(h, h.ip, h.ua)
end

if op == 'approve' or op == 'reject' then
  local user = ARGV[9]
  if h.state ~= 'scanned' then
    return refuse('wrong_state', h)
  end
  if user ~= h.user then
    return refuse('wrong_user', h)
  end
  if op == 'reject' then
    h.deadline = '0'
    move('rejected', '', {'deadline', '0'}, terminal_ttl)
    return ok(h)
  end
  -- The display name and the code are for the browser's confirmation (see redeem); the name
  -- stays off the event, which anyone who knows the login id may follow.
  local ticket, ticket_hash, name, code_hash = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
  h.deadline = int(now + approved_ttl)
  move('approved', '"ticket":"' .. ticket .. '","expiresAt":' .. h.deadline,
    {'deadline', h.deadline, 'ticket', ticket_hash, 'name', name, 'code', code_hash, 'tries', '0'},
    approved_ttl + terminal_ttl)
  return ok(h)
end

if op == 'redeem' then
  -- ARGV[11]: the confirmation code the browser's user typed (hashed with the id), read off the
  -- approving phone: proof that the person at the browser holds that phone. ARGV[12]: how many
  -- wrong codes a login survives; the last one cancels it (a guess must not get more tries).
  local ticket_hash, secret_hash, code_hash, max_tries = ARGV[9], ARGV[10], ARGV[11], tonumber(ARGV[12])
  if secret_hash ~= h.secret then
    return refuse('wrong_secret', h)
  end
  if h.state == 'redeemed' then
    return refuse('ticket_used', h)
  end
  if h.state ~= 'approved' then
    return refuse('wrong_state', h)
  end
  if ticket_hash ~= h.ticket then
    return refuse('wrong_ticket', h)
  end
  if code_hash ~= h.code then
    local tries = (tonumber(h.tries) or 0) + 1
    if tries >= max_tries then
      h.deadline = '0'
      move('cancelled', '"reason":"wrong_code"',
        {'deadline', '0', 'ticket', '', 'code', '', 'tries', int(tries)}, terminal_ttl)
    else
      redis.call('HSET', key, 'tries', int(tries))
    end
    return refuse('wrong_code', h)
  end
  h.deadline = '0'
  move('redeemed', '', {'deadline', '0', 'ticket', '', 'code', ''}, terminal_ttl)
  return ok(h, h.user, h.device)
end

if op == 'cancel' then
  local secret_hash = ARGV[9]
  if secret_hash ~= h.secret then
    return refuse('wrong_secret', h)
  end
  if not live then
    return refuse('wrong_state', h)
  end
  h.deadline = '0'
  move('cancelled', '', {'deadline', '0', 'ticket', '', 'code', ''}, terminal_ttl)
  return ok(h)
end

return redis.error_reply('ERR qrpush login script: unknown operation')
