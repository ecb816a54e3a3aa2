// QrPush's Socket.IO emits taken by real Socket.IO servers: two socket.io 4 servers with
// @socket.io/redis-adapter, classic (PUBLISH) and then sharded (SPUBLISH/SSUBSCRIBE on this
// standalone Redis; on a Redis Cluster: cluster.test.mjs), deliver what PHP emits
// (tests/interop/www/emit.php) to socket.io-client clients: to a namespace, to a room, to all but
// a room, to another namespace, with flags. The
// classic messages are compared byte for byte with the real @socket.io/redis-emitter's for the
// same arguments; the sharded ones with what the sharded adapter itself publishes.
//
// Started by tests/interop/run (see tests/interop/laravel/laravel.test.mjs for the variables).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { join } from 'node:path';

const require = createRequire(join(process.env.QRPUSH_NODE_MODULES, 'x.js'));
const { Server } = require('socket.io');
const ioClient = require('socket.io-client');
const { createAdapter, createShardedAdapter } = require('@socket.io/redis-adapter');
const { Emitter } = require('@socket.io/redis-emitter');
const { createClient } = require('redis');
const notepack = require('notepack.io');

const redisUrl = `redis://127.0.0.1:${process.env.QRPUSH_INTEROP_REDIS_PORT}`;
const web = process.env.QRPUSH_INTEROP_WEB;
const QUIET_MS = 300;

const closers = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function redis() {
  const client = createClient({ url: redisUrl });
  client.on('error', () => {});
  await client.connect();
  closers.push(() => client.quit().catch(() => {}));
  return client;
}

async function until(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Socket.IO server on a free port with `adapter`; its sockets join the rooms they ask for. */
async function socketServer(adapter) {
  const http = createServer();
  const io = new Server(http, { adapter });
  for (const nsp of [io.of('/'), io.of('/admin')]) {
    nsp.on('connection', (socket) => socket.on('join', (room, ack) => (socket.join(room), ack())));
  }
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => io.close(() => resolve())));
  return { io, port: http.address().port };
}

/** A client of `server` in `namespace`, in `rooms`; `got` collects the 'news' events it receives. */
async function client(server, name, namespace = '/', rooms = []) {
  const socket = ioClient(`http://127.0.0.1:${server.port}${namespace}`, { transports: ['websocket'], forceNew: true });
  closers.push(() => socket.close());
  await new Promise((resolve, reject) => (socket.on('connect', resolve), socket.on('connect_error', reject)));
  for (const room of rooms) await socket.emitWithAck('join', room);
  const got = [];
  socket.on('news', (...args) => got.push(args));
  return { name, socket, got };
}

async function emit(spec) {
  const res = await fetch(`${web}/emit.php`, { method: 'POST', body: JSON.stringify(spec) });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

/** Emits `spec` from PHP and checks that exactly `expected` (client names) get its arguments. */
async function delivered(clients, spec, expected) {
  for (const c of clients) c.got.length = 0;
  const answer = await emit({ event: 'news', args: 'mixed', ...spec });
  const args = JSON.parse(answer.args);
  const wanted = clients.filter((c) => expected.includes(c.name));
  await until(`${expected.join(', ')} to receive`, () => wanted.every((c) => c.got.length > 0));
  await new Promise((r) => setTimeout(r, QUIET_MS));
  for (const c of clients) {
    assert.deepEqual(c.got, expected.includes(c.name) ? [args] : [], `client ${c.name}`);
  }
  return answer;
}

/** Two servers, five clients: a (s1, room r1), b (s2, r1), c (s1, r2), d (s2, no room), e (s1, /admin). */
async function cluster(adapterFor) {
  const servers = [await socketServer(await adapterFor()), await socketServer(await adapterFor())];
  const [s1, s2] = servers;
  const clients = [
    await client(s1, 'a', '/', ['r1']),
    await client(s2, 'b', '/', ['r1']),
    await client(s1, 'c', '/', ['r2']),
    await client(s2, 'd', '/'),
    await client(s1, 'e', '/admin'),
  ];
  return { servers, clients };
}

describe('classic adapter (PUBLISH)', () => {
  let clients;
  before(async () => {
    ({ clients } = await cluster(async () => createAdapter(await redis(), await redis())));
  });

  test('to the namespace: every client of "/" on both servers', async () => {
    const answer = await delivered(clients, {}, ['a', 'b', 'c', 'd']);
    assert.equal(answer.receivers, 2, 'both servers listen');
  });
  test('to a room', () => delivered(clients, { to: ['r1'] }, ['a', 'b']));
  test('to all but a room', () => delivered(clients, { except: ['r1'] }, ['c', 'd']));
  test('to two rooms but one', () => delivered(clients, { to: ['r1', 'r2'], except: ['r2'] }, ['a', 'b']));
  test('to another namespace', () => delivered(clients, { namespace: '/admin' }, ['e']));
  test('with volatile and compress', () =>
    delivered(clients, { to: ['r2'], flags: [['volatile', true], ['compress', false]] }, ['c']));
});

describe('the bytes are the real emitter\'s', () => {
  // Each case once from PHP and once from @socket.io/redis-emitter, under a key no server uses.
  const cases = [
    { args: 'none' },
    { args: 'text', to: ['r1'] },
    { args: 'mixed', namespace: '/admin', to: ['a', 'b'], except: ['c'] },
    { args: 'mixed', flags: [['volatile', true], ['compress', false]], except: ['x'] },
    { args: 'text', flags: [['compress', true], ['volatile', true]], to: ['solo'] },
  ];
  let sub;
  const seen = [];
  before(async () => {
    sub = await redis();
    await sub.pSubscribe(
      'cmp#*',
      (message, channel) => seen.push({ channel: channel.toString(), message: message.toString('hex') }),
      true,
    );
  });

  for (const [i, spec] of cases.entries()) {
    test(`case ${i}: ${JSON.stringify(spec)}`, async () => {
      seen.length = 0;
      const answer = await emit({ event: 'news', options: { key: 'cmp' }, ...spec });
      await until('QrPush\'s message', () => seen.length === 1);

      let emitter = new Emitter(await redis(), { key: 'cmp' });
      if (spec.namespace) emitter = emitter.of(spec.namespace);
      let op = emitter;
      if (spec.to) op = op.to(spec.to);
      if (spec.except) op = op.except(spec.except);
      for (const [flag, value] of spec.flags ?? []) op = flag === 'volatile' ? op.volatile : op.compress(value);
      op.emit('news', ...JSON.parse(answer.args));
      await until('the emitter\'s message', () => seen.length === 2);

      assert.equal(seen[0].channel, seen[1].channel);
      assert.equal(seen[0].message, seen[1].message);
    });
  }
});

describe('sharded adapter (SPUBLISH)', () => {
  let clients;
  let servers;
  before(async () => {
    const pub = await redis();
    ({ clients, servers } = await cluster(async () => createShardedAdapter(pub, await redis())));
  });

  const sharded = { adapter: 'sharded' };
  test('to the namespace', async () => {
    const answer = await delivered(clients, { options: sharded }, ['a', 'b', 'c', 'd']);
    assert.equal(answer.receivers, 2, 'both servers subscribe to the namespace channel');
  });
  test('to a room (its own channel)', () => delivered(clients, { options: sharded, to: ['r1'] }, ['a', 'b']));
  test('to all but a room', () => delivered(clients, { options: sharded, except: ['r1'] }, ['c', 'd']));
  test('to another namespace', () => delivered(clients, { options: sharded, namespace: '/admin' }, ['e']));
  test('static subscription mode: a room through the namespace channel', () =>
    delivered(clients, { options: { ...sharded, subscription_mode: 'static' }, to: ['r2'] }, ['c']));

  test('the message is the adapter\'s own broadcast, but for its uid and encoding', async () => {
    const spy = await redis();
    const seen = [];
    await spy.sSubscribe('socket.io#/#r1#', (message) => seen.push(message), true);
    const answer = await emit({ event: 'news', args: 'mixed', options: sharded, to: ['r1'] });
    await until('QrPush\'s message', () => seen.length === 1);
    // The same broadcast made by a server itself: its adapter publishes JSON (no binary argument).
    servers[0].io.to('r1').emit('news', ...JSON.parse(answer.args));
    await until('the adapter\'s message', () => seen.length === 2);

    assert.notEqual(seen[0][0], 0x7b, 'QrPush sends MessagePack');
    assert.equal(seen[1][0], 0x7b, 'the adapter sends JSON');
    const { uid: ourUid, ...ours } = notepack.decode(seen[0]);
    const { uid: theirUid, ...theirs } = JSON.parse(seen[1].toString('utf8'));
    assert.equal(ourUid, 'emitter');
    assert.notEqual(theirUid, 'emitter');
    // The packet's namespace: the emitters write it, a server's own packet leaves it out (the
    // receiving adapter uses its own namespace either way).
    assert.equal(ours.data.packet.nsp, '/');
    delete ours.data.packet.nsp;
    assert.deepEqual(ours, theirs);
  });
});
