<?php /** @var string $nonce */ ?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QrPush demo — log in with your phone</title>
<style nonce="<?= $nonce ?>">
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  #qr svg { width: 16rem; height: 16rem; display: block; }
  #qr.faded svg { opacity: .15; }
  code { word-break: break-all; background: #f4f4f4; padding: .2rem .3rem; display: inline-block; }
  .state { font-weight: bold; }
  button { font-size: 1rem; padding: .3rem .8rem; }
  .muted { color: #666; font-size: .9rem; }
  #loggedIn { background: #e8f5e9; border: 1px solid #81c784; padding: .5rem 1rem; }
  #confirm { background: #fff8e1; border: 1px solid #e0c060; padding: .5rem 1rem; }
  #code { font: 1.5rem monospace; width: 3.5ch; text-align: center; letter-spacing: .2ch; }
  #transport::before { content: "●"; margin-right: .3rem; color: #999; }
  #transport[data-state="websocket"]::before { color: #2e7d32; }
  #transport[data-state="reconnecting"]::before, #transport[data-state="polling"]::before { color: #ef6c00; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>Log in with your phone</h1>

<section id="loggedIn" hidden>
  <p>Logged in as <strong id="who"></strong> (a fresh session was started).</p>
  <button id="logout">Log out</button>
</section>

<section id="loginBox" hidden>
  <ol>
    <li>Open the <a href="/phone" target="_blank" rel="noopener">phone page</a> (the demo phone app, user “demo”).</li>
    <li>Scan this code with it, or copy the text below into it.</li>
    <li>Check that the phone shows <em>this</em> browser, then approve.</li>
  </ol>
  <div id="qr"></div>
  <p><code id="qrText"></code> <button id="copy">Copy</button></p>
  <p>Status: <span class="state" id="state">…</span> <span class="muted" id="expires"></span></p>
  <form id="confirm" hidden autocomplete="off">
    <p>A phone approved this login for the account <strong id="approver"></strong>.</p>
    <p>Is that you? Then type the code your phone shows:
      <input id="code" inputmode="numeric" pattern="[0-9]*" maxlength="2" aria-label="code shown on your phone"></p>
    <p><button id="continue" type="submit">Continue as <span id="continueAs"></span></button>
      <button id="notMe" type="button">Not me — cancel</button></p>
    <p class="muted">No code on your phone, or not your account? Someone else scanned this code:
      cancel, and start again where nobody can see your screen.</p>
  </form>
  <p id="message"></p>
  <p><button id="cancel">Cancel</button> <button id="restart" hidden>New code</button></p>
  <p class="muted">Updates: <span id="transport" data-state="none">…</span>
    (channel <code id="channel"></code>)</p>
</section>

<script nonce="<?= $nonce ?>">
'use strict';
// The login page: starts a login, shows its QR code, and follows it. With the WebSocket gateway
// (the start answer carries gateway_token) the page holds one socket to /ws/ and gets the login's
// status, then its events, pushed: no polling. It polls GET /api/login/status only while the socket
// has been down for a few seconds (or when there is no gateway), and stops when it is back.
// An approved login is never redeemed on its own: whoever scans the QR code first binds it, and
// that may be someone who saw this screen. The page shows who approved and asks for the code the
// approving phone shows; only then does it redeem (the app refuses any other code).
const $ = (id) => document.getElementById(id);
const POLL_AFTER_MS = 3000, POLL_EVERY_MS = 2000, RECONNECT_MAX_MS = 5000;
let login = null, lastSeq = 0, finished = false, confirming = false, redeeming = false, ticket = null;
let socket = null, downSince = null, reconnectDelay = 250, reconnectTimer = null;
let pollTimer = null, countdownTimer = null;
// For tests and the benchmark: how the page learnt the outcome, and when (performance.now()).
const demo = window.qrDemo = { transport: 'none', via: null, reconnects: 0, messages: [], polls: 0,
  approvedAt: null, confirmShownAt: null, approverName: null, loggedInAt: null };

async function api(method, url, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  const response = await fetch(url, init);
  const data = await response.json();
  if (!response.ok) { const e = new Error(data.message || response.statusText); e.data = data; throw e; }
  return data;
}

const texts = {
  pending: 'waiting for a phone to scan the code',
  scanned: 'scanned by a phone — confirm on your phone (not yours? cancel)',
  approved: 'approved — confirm below',
  redeemed: 'logged in',
  rejected: 'the phone rejected this login',
  cancelled: 'cancelled',
  expired: 'the code expired',
};
const live = (state) => ['pending', 'scanned', 'approved'].includes(state);

function transport(state, text) {
  demo.transport = state;
  $('transport').dataset.state = state;
  $('transport').textContent = text;
}

function show(state) {
  $('state').textContent = state;
  if (!confirming || state !== 'approved') $('message').textContent = texts[state] || '';
  $('qr').classList.toggle('faded', state !== 'pending');
  $('cancel').hidden = !live(state) || confirming;
  $('restart').hidden = live(state);
  if (state !== 'approved') $('confirm').hidden = true;
  if (!live(state) && state !== 'redeemed') finish();
}

// One place for news about the login, whatever brought it: seq orders them, older news is ignored.
function apply(state, seq, via) {
  if (finished || seq < lastSeq) return;
  lastSeq = seq;
  show(state);
  if (state === 'approved') askToConfirm(via);
}

// Approved: who approved, and the code of their phone, before anything is redeemed. The status
// call (with this browser's secret cookie) carries the approver's name and a fresh ticket; the
// event's ticket is not enough, as the name never travels in events.
async function askToConfirm(via) {
  if (confirming) return;
  confirming = true;
  try {
    const status = await api('GET', '/api/login/status?id=' + encodeURIComponent(login.id));
    if (status.state !== 'approved' || !status.ticket) {
      confirming = false;
      if (status.state !== 'approved') apply(status.state, status.version, via);
      else $('message').textContent = 'Approved, but this browser lacks the login\'s secret cookie.';
      return;
    }
    ticket = status.ticket;
    login.expires_at_ms = status.expires_at_ms; // the approval's deadline: the time left to type the code
    countdown();
    demo.via = via;
    demo.approverName = status.approver_name;
    $('approver').textContent = status.approver_name;
    $('continueAs').textContent = status.approver_name;
    $('cancel').hidden = true;
    $('confirm').hidden = false;
    $('message').textContent = '';
    $('code').value = '';
    $('code').focus();
    demo.confirmShownAt = performance.now();
  } catch (e) {
    confirming = false;
    $('message').textContent = 'Error: ' + e.message;
  }
}

async function redeem(code) {
  if (redeeming || finished) return;
  redeeming = true;
  try {
    const result = await api('POST', '/api/login/redeem', { id: login.id, ticket, code });
    loggedIn(result.user);
  } catch (e) {
    redeeming = false;
    if (e.data && e.data.error === 'LoginWrongCodeException') {
      // Counted by the app: the last wrong code cancels the login (its event or status says so).
      $('message').textContent = 'That is not the code the phone shows. ' + e.message;
      $('code').value = '';
      $('code').focus();
      return;
    }
    $('message').textContent = 'Error: ' + e.message;
  }
}

function countdown() {
  if (!login || !login.expires_at_ms || finished) { $('expires').textContent = ''; return; }
  const left = Math.max(0, Math.round((login.expires_at_ms - Date.now()) / 1000));
  $('expires').textContent = `(expires in ${left} s)`;
}

// --- the WebSocket --------------------------------------------------------------------------
function connect() {
  reconnectTimer = null;
  if (!login || finished || !login.gateway_token) return;
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const ws = socket = new WebSocket(scheme + location.host + '/ws/?token=' + encodeURIComponent(login.gateway_token));
  if (demo.transport !== 'reconnecting') transport('connecting', 'connecting…');
  ws.onopen = () => {
    if (socket !== ws) return;
    reconnectDelay = 250;
    downSince = null;
    stopPolling();
    transport('websocket', 'live, pushed over a WebSocket');
  };
  ws.onmessage = (e) => {
    if (socket !== ws) return;
    const m = JSON.parse(e.data);
    demo.messages.push({ at: performance.now(), type: m.type, seq: m.seq });
    if (m.loginId !== login.id) return;
    if (m.type === 'status') {
      if (m.data.expiresAt) login.expires_at_ms = m.data.expiresAt;
      apply(m.data.state, m.seq, 'ws-status');
    } else {
      if (m.type === 'approved') demo.approvedAt = performance.now();
      if (m.data && m.data.expiresAt) login.expires_at_ms = m.data.expiresAt;
      apply(m.type, m.seq, 'ws-event');
    }
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    socket = null;
    if (finished) return;
    if (e.code === 1000) {
      // The gateway closes a socket right after it sent the login's final state: nothing follows.
      transport('done', 'done');
      return;
    }
    if ([4001, 4004, 4029].includes(e.code)) {
      // Refused for good (token, login gone, too many tabs): polling is all that is left.
      transport('polling', `polling (the gateway refused: ${e.code} ${e.reason})`);
      startPolling();
      return;
    }
    demo.reconnects++;
    downSince = downSince || Date.now();
    transport('reconnecting', 'reconnecting…');
    const delay = reconnectDelay * (0.75 + Math.random() / 2); // exponential backoff, with jitter
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
    reconnectTimer = setTimeout(connect, delay);
    setTimeout(() => { if (downSince && Date.now() - downSince >= POLL_AFTER_MS - 50) startPolling(); }, POLL_AFTER_MS);
  };
}

// --- polling: only as a fallback --------------------------------------------------------------
function startPolling() {
  if (pollTimer || finished) return;
  if (login.gateway_token && demo.transport !== 'polling') transport('polling', 'polling until the WebSocket is back');
  pollTimer = setInterval(poll, POLL_EVERY_MS);
  poll();
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

async function poll() {
  if (!login || redeeming || finished) return;
  demo.polls++;
  try {
    const status = await api('GET', '/api/login/status?id=' + encodeURIComponent(login.id));
    login.expires_at_ms = status.expires_at_ms;
    apply(status.state, status.version, 'poll');
  } catch (e) {
    $('message').textContent = 'Error: ' + e.message;
  }
}

// --- the login's life ---------------------------------------------------------------------------
function finish() {
  finished = true;
  stopPolling();
  clearTimeout(reconnectTimer);
  clearInterval(countdownTimer);
  countdownTimer = null;
  $('expires').textContent = '';
  if (socket) { const ws = socket; socket = null; ws.close(1000); }
  if (login && login.gateway_token) transport('done', 'done');
}

async function start() {
  finish();
  finished = false; confirming = false; redeeming = false; ticket = null; lastSeq = 0;
  reconnectDelay = 250; downSince = null;
  $('confirm').hidden = true;
  login = await api('POST', '/api/login/start', {});
  $('qr').innerHTML = login.qr_svg; // SVG made by the server from the login's own QR text
  $('qrText').textContent = login.qr;
  $('channel').textContent = login.channel;
  $('loginBox').hidden = false;
  apply(login.state, login.version, 'start');
  countdownTimer = setInterval(countdown, 1000); // local clock only: no request
  countdown();
  if (login.gateway_token) {
    connect();
  } else {
    transport('polling', 'polling once a second (no WebSocket gateway configured)');
    pollTimer = setInterval(poll, 1000);
  }
}

function loggedIn(user) {
  finish();
  demo.loggedInAt = performance.now();
  $('loginBox').hidden = true;
  $('loggedIn').hidden = false;
  $('who').textContent = user;
}

$('copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('qrText').textContent));
async function cancel() {
  try {
    const status = await api('POST', '/api/login/cancel', { id: login.id });
    apply(status.state, status.version, 'cancel');
  } catch (e) {
    $('message').textContent = 'Error: ' + e.message;
  }
}
$('cancel').addEventListener('click', cancel);
$('notMe').addEventListener('click', cancel);
$('confirm').addEventListener('submit', (e) => { e.preventDefault(); redeem($('code').value.trim()); });
$('restart').addEventListener('click', start);
$('logout').addEventListener('click', async () => { await api('POST', '/api/logout', {}); location.reload(); });

api('GET', '/api/me').then((me) => me.user ? loggedIn(me.user) : start())
  .catch((e) => { document.body.append('Error: ' + e.message); });
</script>
</body>
</html>
