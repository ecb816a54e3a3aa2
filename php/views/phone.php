<?php /** @var string $nonce */ ?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QrPush demo — phone</title>
<style nonce="<?= $nonce ?>">
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 30rem; margin: 1rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; font: 14px monospace; }
  video { width: 100%; }
  button { font-size: 1rem; padding: .4rem 1rem; margin: .2rem 0; }
  dl { background: #fff8e1; padding: .5rem 1rem; border: 1px solid #e0c060; }
  dt { font-weight: bold; }
  #codeBox { background: #e8f5e9; border: 1px solid #81c784; padding: .5rem 1rem; }
  #confirmationCode { font: bold 2.5rem monospace; letter-spacing: .3ch; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>Phone</h1>
<p>Logged in (on this phone) as <strong><?= htmlspecialchars(phone_user()) ?></strong>.</p>

<section id="scanBox">
  <p>Scan the code on the login page, or paste its text:</p>
  <textarea id="qr" rows="3" placeholder="the QR code's text"></textarea>
  <button id="scan">Scan</button> <button id="camera" hidden>Use the camera</button>
  <video id="video" hidden playsinline></video>
</section>

<section id="decide" hidden>
  <p>Log in on this browser?</p>
  <dl>
    <dt>IP address</dt><dd id="ip"></dd>
    <dt>Browser</dt><dd id="ua"></dd>
    <dt>Asked at</dt><dd id="created"></dd>
  </dl>
  <p>Only approve if this is the computer in front of you.</p>
  <button id="approve">Approve</button> <button id="reject">Reject</button>
</section>

<section id="codeBox" hidden>
  <p>Approved. On the computer, check that it asks to continue as
    <strong><?= htmlspecialchars(phone_display_name()) ?></strong>, and type this code there:</p>
  <p id="confirmationCode"></p>
  <p>Never tell this code to anyone: it logs the computer that has it into your account.</p>
  <button id="done">Done</button>
</section>

<p id="message"></p>

<script nonce="<?= $nonce ?>">
'use strict';
const $ = (id) => document.getElementById(id);
let loginId = null;

async function api(method, url, body) {
  const response = await fetch(url, {
    method, credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) { const e = new Error(data.message || response.statusText); e.data = data; throw e; }
  return data;
}

async function scan(text) {
  try {
    const info = await api('POST', '/api/login/scan', { qr: text.trim() });
    loginId = info.id;
    $('ip').textContent = info.browser_ip || '(unknown)';
    $('ua').textContent = info.browser_user_agent || '(unknown)';
    $('created').textContent = new Date(info.created_at_ms).toLocaleString();
    $('scanBox').hidden = true;
    $('decide').hidden = false;
    $('message').textContent = '';
  } catch (e) {
    $('message').textContent = 'Cannot use this code: ' + (advice[e.data && e.data.error] || e.message);
  }
}

// Refusals a person should understand. Another phone scanned the code first: it may have been
// copied from the screen (the first scanner decides about the login).
const advice = {
  LoginStateException: 'another phone already scanned this code. If that was not you, someone may have '
    + 'copied it from the screen: cancel the login on the computer and start again.',
  LoginRateLimitedException: 'you scanned too many login codes lately. Wait a few minutes.',
};

async function decide(action) {
  $('decide').hidden = true;
  try {
    const status = await api('POST', '/api/login/' + action, { id: loginId });
    if (status.state === 'approved') {
      $('confirmationCode').textContent = status.confirmation_code;
      $('codeBox').hidden = false;
      $('message').textContent = '';
      return;
    }
    $('message').textContent = 'Rejected.';
  } catch (e) {
    $('message').textContent = 'Failed: ' + e.message;
  }
  $('scanBox').hidden = false;
  $('qr').value = '';
}

$('scan').addEventListener('click', () => scan($('qr').value));
$('approve').addEventListener('click', () => decide('approve'));
$('reject').addEventListener('click', () => decide('reject'));
$('done').addEventListener('click', () => {
  $('codeBox').hidden = true;
  $('scanBox').hidden = false;
  $('qr').value = '';
});

// A real camera scan where the browser can decode QR codes itself (no library, no network).
if ('BarcodeDetector' in window && navigator.mediaDevices) {
  $('camera').hidden = false;
  $('camera').addEventListener('click', async () => {
    const detector = new BarcodeDetector({ formats: ['qr_code'] });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    const video = $('video');
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const tick = async () => {
      const codes = await detector.detect(video).catch(() => []);
      if (codes.length) {
        stream.getTracks().forEach((t) => t.stop());
        video.hidden = true;
        $('qr').value = codes[0].rawValue;
        scan(codes[0].rawValue);
      } else {
        requestAnimationFrame(tick);
      }
    };
    tick();
  });
}
</script>
</body>
</html>
