// One Socket.IO server with @socket.io/redis-streams-adapter and connection-state recovery, run as
// its own process so that streams.test.mjs can stop it and start it again like a real server:
//   node streams-server.mjs NODE_MODULES REDIS_URL STREAM MAX_LEN PORT   (PORT 0: a free one)
// Its sockets (namespaces "/" and "/admin") join the rooms they ask for ("join", with an ack). Its
// Pub/Sub channels (the adapter's requests between servers, unused here) are named after the
// stream, away from the Pub/Sub adapters' tests.
// Prints `{"port": N}` once it listens AND its adapter is reading the stream (an entry appended
// before the adapter's first XREAD from "$" would never reach it). SIGTERM: closes Socket.IO (its
// clients are disconnected with "server shutting down", which makes the adapter store their
// sessions in Redis), lets the Redis client send what is queued, then exits 0.
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

const [modules, redisUrl, streamName, maxLen, port] = process.argv.slice(2);
const require = createRequire(join(modules, 'x.js'));
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-streams-adapter');
const { createClient } = require('redis');

// The adapter's reading clients are duplicates of this one, so they carry its name: that is how
// this process finds its own blocked XREAD in CLIENT LIST.
const name = `sio-streams-${randomUUID().slice(0, 8)}`;
const redis = createClient({ url: redisUrl, name });
redis.on('error', (e) => console.error(`redis: ${e.message}`));
await redis.connect();

const http = createServer();
const io = new Server(http, {
  adapter: createAdapter(redis, { streamName, maxLen: Number(maxLen), channelPrefix: streamName, blockTimeInMs: 1000 }),
  connectionStateRecovery: { maxDisconnectionDuration: 60_000 },
});
for (const nsp of [io.of('/'), io.of('/admin')]) {
  nsp.on('connection', (socket) => socket.on('join', (room, ack) => (socket.join(room), ack())));
}
await new Promise((resolve, reject) => {
  http.once('error', reject);
  http.listen(Number(port), '127.0.0.1', resolve);
});

const deadline = Date.now() + 10_000;
for (;;) {
  const clients = String(await redis.sendCommand(['CLIENT', 'LIST', 'TYPE', 'normal']));
  if (clients.split('\n').some((line) => line.includes(` name=${name} `) && line.includes(' cmd=xread'))) break;
  if (Date.now() > deadline) {
    console.error('the adapter did not start reading its stream within 10 s');
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 10));
}
console.log(JSON.stringify({ port: http.address().port }));

process.once('SIGTERM', async () => {
  io.close();
  await redis.quit();
  process.exit(0);
});
