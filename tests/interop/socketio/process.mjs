// Starting and stopping server.mjs processes from a test (see server.mjs for ARGS).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const serverScript = join(dirname(fileURLToPath(import.meta.url)), 'server.mjs');

/**
 * A server.mjs process started with `args`, registered in `closers` to be stopped; resolves once
 * it is ready, with `port` set.
 */
export async function startServer(args, closers) {
  const child = spawn(process.execPath, [serverScript, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const server = { child, exited: once(child, 'exit') };
  closers.push(() => stopServer(server));
  let out = '';
  child.stdout.setEncoding('utf8');
  const ready = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]));
    });
    child.once('exit', (code) => reject(new Error(`server.mjs exited with ${code} before it was ready`)));
  });
  server.port = (await ready).port;
  return server;
}

/** Stops it by SIGTERM (it exits 0 once Socket.IO is closed), unless it has exited already. */
export async function stopServer(server) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGTERM');
  const [code] = await server.exited;
  assert.equal(code, 0, 'the server exits cleanly on SIGTERM');
}
