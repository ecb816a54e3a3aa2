// QrPush's Laravel broadcasts read by the real Laravel Echo Server (npm laravel-echo-server 1.6.3,
// socket.io 2, subscribed to Redis with the prefix laravel_database_) and delivered to real
// laravel-echo 2 clients (socket.io-client 2, in Node): a public channel, a private channel whose
// authorisation the echo server asks tests/interop/www/auth.php for (php-fpm behind nginx), a
// refused private subscription, and toOthers() (the socket id leaves its own client out). What
// Redis carries is compared byte for byte with the fixture written from Laravel's source.
//
// Started by tests/interop/run, which provides:
//   QRPUSH_NODE_MODULES        this project's node_modules (npm ci of package-lock.json)
//   QRPUSH_INTEROP_REDIS_PORT  the stack's redis-server
//   QRPUSH_INTEROP_WEB         http://127.0.0.1:PORT of nginx → php-fpm with the extension
//   QRPUSH_INTEROP_RUN         a directory for logs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.QRPUSH_NODE_MODULES;
const require = createRequire(join(modules, 'x.js'));
// laravel-echo 2.5 is an ES module whose CommonJS build cannot be required from Node (a `.js`
// file in a "type": "module" package): import the package's "import" entry by its path.
const { default: Echo } = await import(pathToFileURL(join(modules, 'laravel-echo/dist/echo.js')).href);
const io = require('socket.io-client');
const Redis = require('ioredis');

const redisPort = Number(process.env.QRPUSH_INTEROP_REDIS_PORT);
const web = process.env.QRPUSH_INTEROP_WEB;
const PREFIX = 'laravel_database_';
const APP = { appId: 'interop', key: 'interop-key' };
const QUIET_MS = 400;

let echoServer;
let echoPort;
let raw;
const rawMessages = [];
const clients = [];

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });

async function until(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function subscriptions(channel) {
  const url = `http://127.0.0.1:${echoPort}/apps/${APP.appId}/channels/${encodeURIComponent(channel)}?auth_key=${APP.key}`;
  const res = await fetch(url);
  return res.ok ? (await res.json()).subscription_count ?? 0 : 0;
}

async function broadcast(name) {
  const res = await fetch(`${web}/broadcast.php?case=${encodeURIComponent(name)}`);
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

/** A laravel-echo client; `events` collects what its listeners receive. */
async function echoClient(headers) {
  const echo = new Echo({
    broadcaster: 'socket.io',
    client: io,
    host: `http://127.0.0.1:${echoPort}`,
    transports: ['websocket'],
    auth: { headers: headers ?? {} },
  });
  clients.push(echo);
  await until('the socket to connect', () => echo.socketId() !== undefined);
  return echo;
}

before(async () => {
  echoPort = await freePort();
  const options = {
    authHost: web,
    authEndpoint: '/broadcasting/auth',
    clients: [APP],
    database: 'redis',
    databaseConfig: { redis: { host: '127.0.0.1', port: redisPort, keyPrefix: PREFIX } },
    devMode: true,
    host: '127.0.0.1',
    port: echoPort,
    protocol: 'http',
    subscribers: { http: false, redis: true },
  };
  const log = openSync(join(process.env.QRPUSH_INTEROP_RUN, 'laravel-echo-server.log'), 'a');
  echoServer = spawn(
    process.execPath,
    ['-e', `require(${JSON.stringify(require.resolve('laravel-echo-server'))}).run(${JSON.stringify(options)})`],
    { stdio: ['ignore', log, log] },
  );
  await until('Laravel Echo Server to listen', async () => {
    try {
      return (await fetch(`http://127.0.0.1:${echoPort}/apps/${APP.appId}/status?auth_key=${APP.key}`)).ok;
    } catch {
      return false;
    }
  });
  // What Redis carries, as any subscriber sees it (laravel-echo-server's own subscription aside).
  raw = new Redis({ port: redisPort, host: '127.0.0.1', lazyConnect: true });
  await raw.connect();
  raw.on('pmessageBuffer', (_pattern, channel, message) =>
    rawMessages.push({ channel: channel.toString(), message: message.toString('utf8') }),
  );
  await raw.psubscribe(`${PREFIX}*`);
});

after(async () => {
  for (const echo of clients) echo.disconnect();
  if (raw) raw.disconnect();
  if (echoServer) echoServer.kill('SIGTERM');
});

test('a public channel receives the event, and Redis carries the fixture bytes', async () => {
  const echo = await echoClient();
  const received = [];
  // laravel-echo's default namespace App.Events: 'OrderShipped' is App\Events\OrderShipped.
  echo.channel('orders').listen('OrderShipped', (data) => received.push(data));
  await until('the public subscription', async () => (await subscriptions('orders')) >= 1);

  rawMessages.length = 0;
  const answer = await broadcast('public');

  await until('the event', () => received.length === 1);
  assert.equal(answer.receivers, 2, 'the echo server and the raw subscriber');
  const [[channel, message]] = Object.entries(answer.published);
  assert.deepEqual(rawMessages, [{ channel, message }]);
  assert.match(message, /^[\x20-\x7e]*$/, "Laravel's json_encode() escapes everything outside ASCII");
  assert.deepEqual(received, [JSON.parse(message).data]);
  assert.equal(received[0].order.note, 'Grüße 👋');
  assert.equal(received[0].socket, null);
});

test('a private channel is authorised by the PHP endpoint and receives the event', async () => {
  const allowed = await echoClient({ Authorization: 'Bearer good' });
  const refused = await echoClient({ Authorization: 'Bearer bad' });
  const got = { allowed: [], refused: [] };
  // broadcastAs() names are listened to with a leading dot (no namespace).
  allowed.private('orders.42').listen('.OrderUpdated', (data) => got.allowed.push(data));
  refused.private('orders.42').listen('.OrderUpdated', (data) => got.refused.push(data));
  await until('the authorised subscription', async () => (await subscriptions('private-orders.42')) === 1);

  rawMessages.length = 0;
  const answer = await broadcast('private');

  await until('the event', () => got.allowed.length === 1);
  const [[channel, message]] = Object.entries(answer.published);
  assert.equal(channel, 'laravel_database_private-orders.42');
  assert.deepEqual(rawMessages, [{ channel, message }]);
  assert.deepEqual(got.allowed, [JSON.parse(message).data]);
  // The socket id of the message (no client of this server has it) is in data too.
  assert.equal(got.allowed[0].socket, '1234.5678');
  await new Promise((r) => setTimeout(r, QUIET_MS));
  assert.deepEqual(got.refused, [], 'a socket the auth endpoint refused must not receive private events');
});

test('two channels, one PUBLISH each, both delivered', async () => {
  const echo = await echoClient();
  const received = [];
  echo.channel('orders').listen('.Ping', (data) => received.push(['orders', data]));
  echo.channel('presence-room.1'); // not joined: presence needs auth, the event still reaches Redis
  await until('the subscription', async () => (await subscriptions('orders')) >= 1);

  rawMessages.length = 0;
  const answer = await broadcast('two-channels');

  await until('the raw messages', () => rawMessages.length === 2);
  assert.deepEqual(
    rawMessages,
    Object.entries(answer.published).map(([channel, message]) => ({ channel, message })),
  );
  await until('the event', () => received.length >= 1);
  assert.deepEqual(received.at(-1), ['orders', { socket: null }]);
});

test('toOthers: the socket id in the message leaves its own client out', async () => {
  const sender = await echoClient({ Authorization: 'Bearer good' });
  const other = await echoClient({ Authorization: 'Bearer good' });
  const got = { sender: [], other: [] };
  sender.private('orders.7').listen('.OrderUpdated', (d) => got.sender.push(d));
  other.private('orders.7').listen('.OrderUpdated', (d) => got.other.push(d));
  await until('both subscriptions', async () => (await subscriptions('private-orders.7')) === 2);

  // As `broadcast(new OrderUpdated(...))->toOthers()` in the sender's request (X-Socket-ID).
  const answer = await toOthers(sender.socketId());
  assert.equal(answer.receivers, 2, 'the echo server and the raw subscriber');

  await until('the other client', () => got.other.length === 1);
  assert.equal(got.other[0].socket, sender.socketId());
  await new Promise((r) => setTimeout(r, QUIET_MS));
  assert.deepEqual(got.sender, [], 'the sender is left out, as Laravel\'s toOthers() intends');
});

/** OrderUpdated on private-orders.7, leaving out `socket` (tests/interop/www/to-others.php). */
async function toOthers(socket) {
  const res = await fetch(`${web}/to-others.php?socket=${encodeURIComponent(socket)}`);
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}
