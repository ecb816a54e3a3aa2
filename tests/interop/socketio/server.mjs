// One Socket.IO server, run as its own process so that a test can stop it and start it again like a
// real server, and so that its Redis clients' teardown stays out of the test's process:
//   node server.mjs NODE_MODULES streams REDIS_URL STREAM MAX_LEN PORT
//     @socket.io/redis-streams-adapter on REDIS_URL with connection-state recovery; its Pub/Sub
//     channels (the adapter's requests between servers, unused here) are named after the stream,
//     away from the Pub/Sub adapters' tests;
//   node server.mjs NODE_MODULES sharded-cluster "PORT1 PORT2 PORT3" PORT
//     @socket.io/redis-adapter's sharded adapter over node-redis's createCluster (seed nodes on
//     those loopback ports).
// PORT 0: a free one. Its sockets (namespaces "/" and "/admin") join the rooms they ask for
// ("join", with an ack). Prints `{"port": N}` once it listens and, for the streams adapter, once the
// adapter is reading the stream (an entry appended before the adapter's first XREAD from "$" would
// never reach it). SIGTERM: closes Socket.IO (its clients are disconnected with "server shutting
// down", which makes the streams adapter store their sessions in Redis), lets a single Redis client
// send what is queued, then exits 0.
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

const [modules, kind, ...rest] = process.argv.slice(2);
const require = createRequire(join(modules, 'x.js'));
const { Server } = require('socket.io');
const { createClient, createCluster } = require('redis');

let adapter;
let port;
let ready = async () => {};
let stop = async () => {};
const options = {};
if (kind === 'streams') {
  const [redisUrl, streamName, maxLen] = rest;
  port = rest[3];
  const { createAdapter } = require('@socket.io/redis-streams-adapter');
  // The adapter's reading clients are duplicates of this one, so they carry its name: that is how
  // this process finds its own blocked XREAD in CLIENT LIST.
  const name = `sio-streams-${randomUUID().slice(0, 8)}`;
  const redis = createClient({ url: redisUrl, name });
  redis.on('error', (e) => console.error(`redis: ${e.message}`));
  await redis.connect();
  adapter = createAdapter(redis, { streamName, maxLen: Number(maxLen), channelPrefix: streamName, blockTimeInMs: 1000 });
  options.connectionStateRecovery = { maxDisconnectionDuration: 60_000 };
  stop = () => redis.quit();
  ready = async () => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const clients = String(await redis.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
      if (clients.split('\n').some((line) => line.includes(` name=${name} `) && line.includes(' cmd=xread'))) return;
      if (Date.now() > deadline) throw new Error('the adapter did not start reading its stream within 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
} else if (kind === 'sharded-cluster') {
  const [ports] = rest;
  port = rest[1];
  const { createShardedAdapter } = require('@socket.io/redis-adapter');
  const pub = createCluster({ rootNodes: ports.trim().split(/\s+/).map((p) => ({ url: `redis://127.0.0.1:${p}` })) });
  pub.on('error', (e) => console.error(`redis cluster: ${e.message}`));
  await pub.connect();
  const sub = pub.duplicate();
  sub.on('error', (e) => console.error(`redis cluster: ${e.message}`));
  await sub.connect();
  adapter = createShardedAdapter(pub, sub);
} else {
  console.error(`server.mjs: unknown adapter kind '${kind}'`);
  process.exit(2);
}

const http = createServer();
const io = new Server(http, { adapter, ...options });
for (const nsp of [io.of('/'), io.of('/admin')]) {
  nsp.on('connection', (socket) => socket.on('join', (room, ack) => (socket.join(room), ack())));
}
await new Promise((resolve, reject) => {
  http.once('error', reject);
  http.listen(Number(port), '127.0.0.1', resolve);
});
try {
  await ready();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
console.log(JSON.stringify({ port: http.address().port }));

process.once('SIGTERM', async () => {
  io.close();
  await stop();
  process.exit(0);
});
