// QrPush's Socket.IO emits to servers that use @socket.io/redis-streams-adapter with
// connection-state recovery: two socket.io 4 servers (each its own process,
// server.mjs) deliver what PHP appends to the stream (tests/interop/www/emit.php with
// `adapter: streams`) to a room, to all but a room, to a namespace. The entry is the one a server
// appends for the same broadcast, but for its uid. Then a restart: the server three clients are on
// is stopped, six events are emitted while it is down, it is started again, and its clients
// reconnect recovered (`socket.recovered`), receive exactly the events they missed, in order, and
// then live ones. Every event carries its stream entry id as the last argument: the offset the
// client recovers from.
//
// Started by tests/interop/run (see tests/interop/laravel/laravel.test.mjs for the variables).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import { startServer, stopServer } from './process.mjs';

const modules = process.env.QRPUSH_NODE_MODULES;
const require = createRequire(join(modules, 'x.js'));
const { Server } = require('socket.io');
const ioClient = require('socket.io-client');
const { createAdapter } = require('@socket.io/redis-streams-adapter');
const { createClient } = require('redis');

const redisUrl = `redis://127.0.0.1:${process.env.QRPUSH_INTEROP_REDIS_PORT}`;
const web = process.env.QRPUSH_INTEROP_WEB;
const STREAM = 'qrpush-interop-streams';
const MAX_LEN = 1000;
const OPTIONS = { adapter: 'streams', stream: STREAM, max_len: MAX_LEN };
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

/** A server with the streams adapter on `port` (0: a free one), once it listens and reads. */
function startStreamsServer(port = 0) {
  return startServer([modules, 'streams', redisUrl, STREAM, String(MAX_LEN), String(port)], closers);
}

/** A client of the server on `port`, in `namespace` and `rooms`; `got` collects its 'news' events. */
async function client(port, name, namespace = '/', rooms = []) {
  const socket = ioClient(`http://127.0.0.1:${port}${namespace}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
  });
  closers.push(() => socket.close());
  await new Promise((resolve, reject) => (socket.once('connect', resolve), socket.once('connect_error', reject)));
  for (const room of rooms) await socket.emitWithAck('join', room);
  const got = [];
  socket.on('news', (...args) => got.push(args));
  return { name, socket, got };
}

async function emit(spec) {
  const res = await fetch(`${web}/emit.php`, {
    method: 'POST',
    body: JSON.stringify({ event: 'news', options: OPTIONS, ...spec }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const answer = await res.json();
  assert.equal(answer.receivers, 1, 'one stream entry appended');
  return answer;
}

/** The stream's entries after `offset` (exclusive; '-': all), as {id, fields}. */
async function entries(r, offset = '-') {
  const start = offset === '-' ? '-' : `(${offset}`;
  return (await r.xRange(STREAM, start, '+')).map(({ id, message }) => ({ id, fields: message }));
}

/** The last entry's id ('0-0' when the stream is empty). */
async function lastId(r) {
  const [last] = await r.xRevRange(STREAM, '+', '-', { COUNT: 1 });
  return last ? last.id : '0-0';
}

describe('streams adapter (XADD) with connection-state recovery', () => {
  let r;
  let s1;
  let s2;
  let clients;
  const byName = (name) => clients.find((c) => c.name === name);

  before(async () => {
    r = await redis();
    await r.del(STREAM);
    [s1, s2] = [await startStreamsServer(), await startStreamsServer()];
    // a (s1, r1), b (s2, r1), c (s1, r2), d (s2, no room), e (s1, /admin)
    clients = [
      await client(s1.port, 'a', '/', ['r1']),
      await client(s2.port, 'b', '/', ['r1']),
      await client(s1.port, 'c', '/', ['r2']),
      await client(s2.port, 'd', '/'),
      await client(s1.port, 'e', '/admin'),
    ];
  });

  /**
   * Emits `spec` from PHP; exactly the clients `expected` receive its arguments followed by the
   * id of the one entry it appended (the entry's fields are QrPush's: uid "emitter").
   */
  async function delivered(spec, expected) {
    for (const c of clients) c.got.length = 0;
    const before = await lastId(r);
    const answer = await emit({ args: 'mixed', ...spec });
    const args = JSON.parse(answer.args);
    const added = await entries(r, before);
    assert.equal(added.length, 1, 'one entry per emit');
    assert.equal(added[0].fields.uid, 'emitter');
    const wanted = clients.filter((c) => expected.includes(c.name));
    await until(`${expected.join(', ')} to receive`, () => wanted.every((c) => c.got.length > 0));
    await new Promise((res) => setTimeout(res, QUIET_MS));
    for (const c of clients) {
      assert.deepEqual(c.got, expected.includes(c.name) ? [[...args, added[0].id]] : [], `client ${c.name}`);
    }
  }

  test('to the namespace: every client of "/" on both servers', () => delivered({}, ['a', 'b', 'c', 'd']));
  test('to a room', () => delivered({ to: ['r1'] }, ['a', 'b']));
  test('to all but a room', () => delivered({ except: ['r1'] }, ['c', 'd']));
  test('to another namespace', () => delivered({ namespace: '/admin' }, ['e']));

  test("the entry is a server's own, but for its uid", async () => {
    // A third server, in this process, makes the same broadcasts itself.
    const http = createServer();
    const io = new Server(http, { adapter: createAdapter(await redis(), { streamName: STREAM, maxLen: MAX_LEN, channelPrefix: STREAM }) });
    closers.push(() => new Promise((res) => io.close(() => res())));
    const cases = [
      [{ args: 'mixed', to: ['r1'] }, (args) => io.to('r1').emit('news', ...args)],
      [{ args: 'none', namespace: '/admin' }, () => io.of('/admin').emit('news')],
      [
        { args: 'text', to: ['r1', 'r2'], except: ['x'], flags: [['volatile', true], ['compress', false]] },
        (args) => io.to(['r1', 'r2']).except('x').volatile.compress(false).emit('news', ...args),
      ],
    ];
    for (const [spec, serverEmit] of cases) {
      const start = await lastId(r);
      const answer = await emit(spec);
      serverEmit(JSON.parse(answer.args));
      let added;
      await until("the server's entry", async () => (added = await entries(r, start)).length === 2);
      const [ours, theirs] = added.map((e) => e.fields);
      assert.equal(ours.uid, 'emitter');
      assert.match(theirs.uid, /^[0-9a-f]{16}$/, "a server's uid");
      assert.deepEqual(Object.keys(ours), ['uid', 'nsp', 'type', 'data'], 'the fields in the same order');
      assert.deepEqual(Object.keys(theirs), ['uid', 'nsp', 'type', 'data']);
      assert.equal(ours.nsp, theirs.nsp);
      assert.equal(ours.type, '3');
      assert.equal(ours.type, theirs.type);
      // The same JSON text, key order included, once numbers are written the JavaScript way
      // (PHP writes 2.0 where JavaScript writes 2).
      assert.equal(JSON.stringify(JSON.parse(ours.data)), theirs.data);
    }
    // The servers under test delivered those broadcasts too; the next tests start afresh.
    await new Promise((res) => setTimeout(res, QUIET_MS));
  });

  test('restart: the clients of a stopped server recover exactly the events they missed, then live ones', async () => {
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map(byName);
    // A client recovers from the last argument of the last event it received, which must be an
    // offset: the volatile broadcasts above carry none (the servers add none to a volatile event).
    await delivered({ values: ['before', 0] }, ['a', 'b', 'c', 'd']);
    await delivered({ values: ['before', 0], namespace: '/admin' }, ['e']);
    for (const x of clients) x.got.length = 0;
    for (const x of [a, c, e]) assert.ok(x.socket.connected);
    const gone = [a, c, e].map((x) => once(x.socket, 'disconnect'));
    await stopServer(s1);
    const reasons = (await Promise.all(gone)).map(([reason]) => reason);
    assert.deepEqual(reasons, ['transport close', 'transport close', 'transport close']);

    // Six emits while s1 is down: whom each is for, among its clients and among s2's.
    const missed = [
      [{}, 'a c b d'],
      [{ to: ['r1'] }, 'a b'],
      [{ to: ['r2'] }, 'c'],
      [{ except: ['r1'] }, 'c d'],
      [{ namespace: '/admin' }, 'e'],
      [{}, 'a c b d'],
    ];
    const want = { a: [], b: [], c: [], d: [], e: [] };
    for (const [i, [spec, whom]] of missed.entries()) {
      const start = await lastId(r);
      const values = ['missed', i + 1, { at: i }];
      await emit({ values, ...spec });
      const [entry] = await entries(r, start);
      for (const name of whom.split(' ')) want[name].push([...values, entry.id]);
    }
    // s2's clients got theirs live.
    await until('b and d to receive theirs', () => b.got.length === want.b.length && d.got.length === want.d.length);
    assert.deepEqual(b.got, want.b);
    assert.deepEqual(d.got, want.d);
    assert.deepEqual([a.got, c.got, e.got], [[], [], []], 'nothing reaches the clients of a stopped server');

    const back = [a, c, e].map((x) => once(x.socket, 'connect'));
    s1 = await startStreamsServer(s1.port);
    await Promise.all(back);
    for (const x of [a, c, e]) assert.equal(x.socket.recovered, true, `client ${x.name} recovered its session`);
    await until('the missed events', () => a.got.length >= want.a.length && c.got.length >= want.c.length && e.got.length >= want.e.length);
    await new Promise((res) => setTimeout(res, QUIET_MS));
    assert.deepEqual(a.got, want.a, 'client a: exactly what it missed, in order');
    assert.deepEqual(c.got, want.c, 'client c: exactly what it missed, in order');
    assert.deepEqual(e.got, want.e, 'client e: exactly what it missed, in order');
    assert.deepEqual(a.got.map((args) => args[0]), ['missed', 'missed', 'missed']);

    // Then live: the recovered clients kept their rooms.
    for (const x of clients) x.got.length = 0;
    await delivered({ values: ['live', 7], to: ['r1'] }, ['a', 'b']);
    await delivered({ values: ['live', 8] }, ['a', 'b', 'c', 'd']);
    await delivered({ values: ['live', 9], namespace: '/admin' }, ['e']);
  });
});
