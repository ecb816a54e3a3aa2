// QrPush's Socket.IO emits on a real Redis Cluster (three primaries, started by tests/interop/stack):
// two socket.io 4 servers (each its own process, server.mjs) with @socket.io/redis-adapter's
// sharded adapter over node-redis's createCluster (each server's channels SSUBSCRIBEd on the
// primary owning their slot), and PHP's QrPush\SocketIo on a redis-cluster:// client, whose
// SPUBLISH goes to that same primary. The channels used are checked to live on different
// primaries, so the routing is exercised.
//
// Started by tests/interop/run (see tests/interop/laravel/laravel.test.mjs for the variables;
// QRPUSH_INTEROP_CLUSTER_PORTS: the Cluster's three ports).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { startServer } from './process.mjs';

const modules = process.env.QRPUSH_NODE_MODULES;
const require = createRequire(join(modules, 'x.js'));
const ioClient = require('socket.io-client');
const { createClient } = require('redis');

const ports = process.env.QRPUSH_INTEROP_CLUSTER_PORTS.trim().split(/\s+/);
const web = process.env.QRPUSH_INTEROP_WEB;
const url = `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
const QUIET_MS = 300;

const closers = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

async function until(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `command` on the node on `port`. */
async function onNode(port, command) {
  const node = createClient({ url: `redis://127.0.0.1:${port}` });
  await node.connect();
  try {
    return await node.sendCommand(command);
  } finally {
    await node.quit();
  }
}

/** The port of the primary owning `channel`'s slot, as the Cluster itself says. */
async function ownerOf(channel) {
  const slot = await onNode(ports[0], ['CLUSTER', 'KEYSLOT', channel]);
  const ranges = await onNode(ports[0], ['CLUSTER', 'SLOTS']);
  const range = ranges.find(([first, last]) => first <= slot && slot <= last);
  return Number(range[2][1]);
}

/** The sharded subscribers of `channel`, on the primary owning its slot. */
async function shardSubscribers(channel) {
  const [, count] = await onNode(await ownerOf(channel), ['PUBSUB', 'SHARDNUMSUB', channel]);
  return Number(count);
}

async function client(server, name, namespace = '/', rooms = []) {
  const socket = ioClient(`http://127.0.0.1:${server.port}${namespace}`, { transports: ['websocket'], forceNew: true });
  closers.push(() => socket.close());
  await new Promise((resolve, reject) => (socket.on('connect', resolve), socket.on('connect_error', reject)));
  for (const room of rooms) await socket.emitWithAck('join', room);
  const got = [];
  socket.on('news', (...args) => got.push(args));
  return { name, socket, got };
}

describe('sharded adapter on a Redis Cluster (SPUBLISH to the slot owner)', () => {
  let clients;
  before(async () => {
    const start = () => startServer([modules, 'sharded-cluster', ports.join(' '), '0'], closers);
    const [s1, s2] = [await start(), await start()];
    clients = [
      await client(s1, 'a', '/', ['r1']),
      await client(s2, 'b', '/', ['r1']),
      await client(s1, 'c', '/', ['r2']),
      await client(s2, 'd', '/'),
      await client(s1, 'e', '/admin'),
    ];
    // The adapters subscribe without waiting (to a room's channel when a socket first joins it):
    // every channel must have its subscribers before the first emit.
    const wanted = { 'socket.io#/#': 2, 'socket.io#/admin#': 2, 'socket.io#/#r1#': 2, 'socket.io#/#r2#': 1 };
    for (const [channel, count] of Object.entries(wanted)) {
      await until(`${count} sharded subscribers of ${channel}`, async () => (await shardSubscribers(channel)) === count);
    }
  });

  /** Emits `spec` from PHP through the Cluster; exactly `expected` get its arguments. */
  async function delivered(spec, expected, receivers) {
    for (const c of clients) c.got.length = 0;
    const res = await fetch(`${web}/emit.php`, {
      method: 'POST',
      body: JSON.stringify({ url, event: 'news', args: 'mixed', options: { adapter: 'sharded' }, ...spec }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const answer = await res.json();
    assert.equal(answer.receivers, receivers, 'the servers subscribed to the channel on its shard');
    const args = JSON.parse(answer.args);
    const wanted = clients.filter((c) => expected.includes(c.name));
    await until(`${expected.join(', ')} to receive`, () => wanted.every((c) => c.got.length > 0));
    await new Promise((r) => setTimeout(r, QUIET_MS));
    for (const c of clients) {
      assert.deepEqual(c.got, expected.includes(c.name) ? [args] : [], `client ${c.name}`);
    }
  }

  test('the channels live on different primaries', async () => {
    const owners = await Promise.all(['socket.io#/#', 'socket.io#/#r1#', 'socket.io#/admin#'].map(ownerOf));
    assert.ok(new Set(owners).size > 1, `owners ${owners.join(', ')}: all on one primary would not test routing`);
  });
  test('to a room (its own channel)', () => delivered({ to: ['r1'] }, ['a', 'b'], 2));
  test('to the namespace', () => delivered({}, ['a', 'b', 'c', 'd'], 2));
  test('to all but a room', () => delivered({ except: ['r1'] }, ['c', 'd'], 2));
  test('to another namespace', () => delivered({ namespace: '/admin' }, ['e'], 2));
});
