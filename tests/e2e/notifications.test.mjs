// End to end in headless Chromium: a user's notification channel over the gateway (general channel
// notifications#<user>, subscription token from QrPush::subscriptionToken()). PHP publishes
// (QrPush::publishDurable() behind POST /api/notifications/send); the page shows each one; after
// every gateway restarts, the ones published while no gateway listened are replayed, exactly once
// and in order, then live ones follow.
// Run by tests/e2e/run, with the environment login.test.mjs documents.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(join(process.env.QRPUSH_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');

const BASE = process.env.QRPUSH_E2E_BASE;
const RUN = process.env.QRPUSH_E2E_RUN;
const MODE = process.env.QRPUSH_E2E_MODE || 'single';
// Names the test, its user and its screenshot: the mode, or "cluster" on Redis Cluster.
const LABEL = process.env.QRPUSH_E2E_LABEL || MODE;
const ARTIFACTS = process.env.QRPUSH_E2E_ARTIFACTS;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
// One user per run of the stack's mode: its own channel.
const USER = `notify-${LABEL}`;

let context, userDataDir;

before(async () => {
  userDataDir = mkdtempSync(join(tmpdir(), 'qrpush-e2e-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium', headless: true, args: FLAGS,
    viewport: { width: 700, height: 700 },
  });
  await context.addCookies([{ name: 'demo_user', value: USER, url: BASE }]);
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** PHP publishes one notification (durable) for USER; returns its offset. */
async function send(text) {
  const response = await fetch(`${BASE}/api/notifications/send`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: `demo_user=${USER}` },
    body: JSON.stringify({ text }),
  });
  const data = await response.json();
  assert.equal(response.status, 200, JSON.stringify(data));
  assert.match(data.offset, /^\d+-\d+$/);
  return data.offset;
}

function gatewayPids() {
  return readdirSync(RUN).filter((f) => /^gateway-\d+\.pid$/.test(f))
    .map((f) => Number(readFileSync(join(RUN, f), 'utf8').trim()));
}

async function received(page, count) {
  await page.waitForFunction((n) => window.notifyDemo.received.length >= n, count, { timeout: 15000 });
  return page.evaluate(() => window.notifyDemo.received);
}

test(`${LABEL}: notifications are pushed live, and the ones missed during a gateway restart are replayed`, async () => {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${BASE}/notifications`);
  await page.waitForFunction(() => window.notifyDemo.transport === 'live', null, { timeout: 10000 });

  const offsets = [];
  for (const text of ['one', 'two', 'three']) offsets.push(await send(text));
  let got = await received(page, 3);
  assert.deepEqual(got.map((r) => [r.text, r.offset, r.replayed]),
    [['one', offsets[0], false], ['two', offsets[1], false], ['three', offsets[2], false]]);
  assert.deepEqual(await page.locator('#list li').allTextContents(), ['one', 'two', 'three']);

  // SIGTERM every gateway (the stack restarts them 0.5 s later); publish while none listens.
  const pids = gatewayPids();
  assert.equal(pids.length, 2);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  await page.waitForFunction(() => window.notifyDemo.transport === 'reconnecting', null, { timeout: 5000 });
  const missed = ['four', 'five', 'six', 'seven', 'eight'];
  for (const text of missed) offsets.push(await send(text));

  got = await received(page, 8);
  assert.deepEqual(got.map((r) => r.text), ['one', 'two', 'three', ...missed]);
  assert.deepEqual(got.map((r) => r.offset), offsets, 'each offset once, in order');
  assert.ok(got.slice(3).every((r) => r.replayed), `replayed from the stream: ${JSON.stringify(got)}`);
  await page.waitForFunction(() => window.notifyDemo.transport === 'live', null, { timeout: 10000 });
  assert.notDeepEqual(gatewayPids().sort(), pids.sort(), 'the gateways were restarted');

  offsets.push(await send('nine'));
  got = await received(page, 9);
  assert.deepEqual(got[8], { text: 'nine', offset: offsets[8], replayed: false });
  await new Promise((r) => setTimeout(r, 300));
  const demo = await page.evaluate(() => window.notifyDemo);
  assert.equal(demo.received.length, 9, 'no duplicate');
  assert.equal(demo.resyncs, 0);
  assert.deepEqual(await page.locator('#list li').allTextContents(),
    ['one', 'two', 'three', ...missed, 'nine']);
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-notifications.png`) });
  await page.close();
});
