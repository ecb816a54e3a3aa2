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
  <p id="message"></p>
  <p><button id="cancel">Cancel</button> <button id="restart" hidden>New code</button></p>
  <p class="muted">The page polls the login status once a second; with the WebSocket gateway it will
    receive the login's events instead (channel <code id="channel"></code>).</p>
</section>

<script nonce="<?= $nonce ?>">
'use strict';
const $ = (id) => document.getElementById(id);
let login = null, timer = null, redeeming = false;

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
  scanned: 'scanned — confirm on your phone',
  approved: 'approved — logging in…',
  redeemed: 'logged in',
  rejected: 'the phone rejected this login',
  cancelled: 'cancelled',
  expired: 'the code expired',
};

function show(status) {
  $('state').textContent = status.state;
  $('message').textContent = texts[status.state] || '';
  const live = ['pending', 'scanned', 'approved'].includes(status.state);
  $('qr').classList.toggle('faded', status.state !== 'pending');
  $('cancel').hidden = !live;
  $('restart').hidden = live;
  if (!live) { clearInterval(timer); timer = null; $('expires').textContent = ''; }
}

function countdown() {
  if (!login || !login.expires_at_ms) return;
  const left = Math.max(0, Math.round((login.expires_at_ms - Date.now()) / 1000));
  $('expires').textContent = `(expires in ${left} s)`;
}

async function poll() {
  if (!login || redeeming) return;
  try {
    const status = await api('GET', '/api/login/status?id=' + encodeURIComponent(login.id));
    login.expires_at_ms = status.expires_at_ms;
    show(status);
    if (status.state === 'approved' && status.ticket) {
      redeeming = true;
      const result = await api('POST', '/api/login/redeem', { id: login.id, ticket: status.ticket });
      loggedIn(result.user);
    }
  } catch (e) {
    redeeming = false;
    $('message').textContent = 'Error: ' + e.message;
  }
  countdown();
}

async function start() {
  redeeming = false;
  login = await api('POST', '/api/login/start', {});
  $('qr').innerHTML = login.qr_svg; // SVG made by the server from the login's own QR text
  $('qrText').textContent = login.qr;
  $('channel').textContent = login.channel;
  $('loginBox').hidden = false;
  show(login);
  clearInterval(timer);
  timer = setInterval(poll, 1000);
  countdown();
}

function loggedIn(user) {
  clearInterval(timer);
  $('loginBox').hidden = true;
  $('loggedIn').hidden = false;
  $('who').textContent = user;
}

$('copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('qrText').textContent));
$('cancel').addEventListener('click', async () => { show(await api('POST', '/api/login/cancel', { id: login.id })); });
$('restart').addEventListener('click', start);
$('logout').addEventListener('click', async () => { await api('POST', '/api/logout', {}); location.reload(); });

api('GET', '/api/me').then((me) => me.user ? loggedIn(me.user) : start())
  .catch((e) => { document.body.append('Error: ' + e.message); });
</script>
</body>
</html>
