<?php /** @var string $nonce */ ?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QrPush demo — notifications</title>
<style nonce="<?= $nonce ?>">
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 36rem; margin: 1rem auto; padding: 0 1rem; color: #222; }
  #transport { color: #666; }
  li.replayed { color: #555; }
  li.replayed::after { content: " (missed, replayed)"; font-size: .8em; }
</style>
</head>
<body>
<h1>Notifications of <?= htmlspecialchars(phone_user()) ?></h1>
<p id="transport">connecting…</p>
<ol id="list"></ol>
<script nonce="<?= $nonce ?>">
// One socket to the gateway with a subscription token for notifications#<user>. The last position
// (epoch, offset) is kept: after a disconnect the socket resumes from it, and the gateway replays
// what was published meanwhile (durable publishes), or says "resync" when it cannot.
const demo = window.notifyDemo = { transport: 'connecting', received: [], resyncs: 0, reconnects: 0, position: null };
const list = document.getElementById('list');
function transport(state) {
  demo.transport = state;
  document.getElementById('transport').textContent = state;
}
async function connect() {
  const { channel, token } = await (await fetch('/api/notifications/token')).json();
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  let url = scheme + location.host + '/ws/?token=' + encodeURIComponent(token);
  if (demo.position) {
    url += '&since=' + encodeURIComponent(`${demo.position.epoch}:${demo.position.offset}:${channel}`);
  }
  const ws = new WebSocket(url);
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === 'message') {
      demo.received.push({ text: m.data.text, offset: m.offset, replayed: !!m.replayed });
      const li = document.createElement('li');
      li.textContent = m.data.text;
      if (m.replayed) li.className = 'replayed';
      list.append(li);
    } else if (m.type === 'resync') {
      demo.resyncs++; // a real app reloads the list from its own API here
    } else if (m.type === 'ready') {
      transport('live');
    }
    if (m.epoch && m.offset) demo.position = { epoch: m.epoch, offset: m.offset };
  };
  ws.onclose = () => {
    transport('reconnecting');
    demo.reconnects++;
    setTimeout(connect, 300);
  };
}
connect();
</script>
</body>
</html>
