// End to end in headless Chromium: a person's QR login, with the phone driven over HTTP.
// Run by tests/e2e/run (which starts the stack and sets the environment below); node's test runner.
//
//   QRPUSH_E2E_BASE       http://127.0.0.1:<nginx port>
//   QRPUSH_E2E_RUN        php/stack's run directory (gateway-<port>.pid: the gateways' pids)
//   QRPUSH_E2E_MODE       single | per_login (what the stack runs)
//   QRPUSH_E2E_LABEL      names the tests and screenshots (default: the mode; "cluster" on Cluster)
//   QRPUSH_E2E_ARTIFACTS  where screenshots go
//   QRPUSH_NODE_MODULES   where playwright-core is installed

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(join(process.env.QRPUSH_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');

const BASE = process.env.QRPUSH_E2E_BASE;
const RUN = process.env.QRPUSH_E2E_RUN;
const MODE = process.env.QRPUSH_E2E_MODE || 'single';
const LABEL = process.env.QRPUSH_E2E_LABEL || MODE;
const ARTIFACTS = process.env.QRPUSH_E2E_ARTIFACTS;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let context, userDataDir;

before(async () => {
  userDataDir = mkdtempSync(join(tmpdir(), 'qrpush-e2e-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium', headless: true, args: FLAGS,
    viewport: { width: 900, height: 900 },
  });
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** The phone app, as `user` ("demo": the demo_user cookie's default). */
async function phone(action, body, user = 'demo') {
  const response = await fetch(`${BASE}/api/login/${action}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: `demo_user=${user}` },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  assert.equal(response.status, 200, `${action}: ${JSON.stringify(data)}`);
  return data;
}

/** A fresh login page (no session cookie): waits until its socket is open. */
async function openLoginPage() {
  await context.clearCookies();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => window.qrDemo && window.qrDemo.transport === 'websocket', null, { timeout: 10000 });
  return page;
}

async function pageState(page) {
  return page.evaluate(() => document.getElementById('state').textContent);
}

/** Decodes the QR code as rendered, from a screenshot of the page's SVG (zbarimg, if installed). */
async function decodeQr(page, name) {
  const file = join(ARTIFACTS, `${name}.png`);
  writeFileSync(file, await page.locator('#qr svg').screenshot());
  try {
    return execFileSync('zbarimg', ['--quiet', '--raw', file],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch (e) {
    if (e.code === 'ENOENT') return null; // no zbarimg: the text is checked, the image is not
    throw e;
  }
}

/**
 * The confirmation step: the page names the approving account and waits for the code of its
 * phone. Checks that it does not log in by itself meanwhile, then types `code` and continues.
 */
async function confirmWithCode(page, approverName, code) {
  await page.waitForSelector('#confirm:not([hidden])', { timeout: 10000 });
  assert.equal(await page.textContent('#approver'), approverName);
  assert.equal(await page.textContent('#continueAs'), approverName);
  await page.waitForTimeout(300);
  assert.equal(await page.isHidden('#loggedIn'), true, 'approved is not logged in: the page waits for the code');
  assert.equal(await pageState(page), 'approved');
  await page.fill('#code', code);
  await page.click('#continue');
}

function gatewayPids() {
  return readdirSync(RUN).filter((f) => /^gateway-\d+\.pid$/.test(f))
    .map((f) => Number(readFileSync(join(RUN, f), 'utf8').trim()));
}

test(`${LABEL}: the phone approves and the page shows the user, pushed over the WebSocket`, async () => {
  const page = await openLoginPage();
  const qr = (await page.textContent('#qrText')).trim();
  assert.match(qr, /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
  const decoded = await decodeQr(page, `e2e-${LABEL}-qr`);
  if (decoded !== null) assert.equal(decoded, qr, 'the QR code on the page scans to its text');
  assert.equal(await pageState(page), 'pending');
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-1-pending.png`) });

  const scanned = await phone('scan', { qr });
  assert.equal(scanned.state, 'scanned');
  assert.equal(scanned.browser_user_agent.includes('Chrome'), true, scanned.browser_user_agent);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'scanned');

  const t0 = Date.now();
  const { confirmation_code: code } = await phone('approve', { id: scanned.id });
  assert.match(code, /^[0-9]{2}$/);
  await page.waitForSelector('#confirm:not([hidden])', { timeout: 10000 });
  const ms = Date.now() - t0;
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-2-confirm.png`) });
  // A typo first: refused by the app, the page asks again (and is still not logged in).
  const typo = code === '00' ? '01' : '00';
  await confirmWithCode(page, 'Demo', typo);
  await page.waitForFunction(() => document.getElementById('message').textContent.includes('not the code'));
  assert.equal(await page.isHidden('#loggedIn'), true);
  await confirmWithCode(page, 'Demo', code);
  await page.waitForSelector('#loggedIn:not([hidden])', { timeout: 10000 });
  assert.equal(await page.textContent('#who'), 'demo');
  const demo = await page.evaluate(() => window.qrDemo);
  assert.equal(demo.via, 'ws-event', 'the approved event came over the socket');
  assert.equal(demo.approverName, 'Demo');
  assert.equal(demo.polls, 0, 'the page never polled');
  assert.deepEqual(demo.messages.map((m) => m.type).slice(0, 3), ['status', 'scanned', 'approved']);
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-3-logged-in.png`) });
  console.log(`# approve → confirmation asked on the page: ${ms} ms`);
  await page.close();
});

test(`${LABEL}: a QR code scanned first by someone else: the page names their account and never logs in`, async () => {
  const page = await openLoginPage();
  const qr = (await page.textContent('#qrText')).trim();
  // Mallory saw the screen, scans first and approves; the victim's own phone is told it is too late.
  const scanned = await phone('scan', { qr }, 'mallory');
  const late = await fetch(`${BASE}/api/login/scan`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: 'demo_user=demo' },
    body: JSON.stringify({ qr }),
  });
  assert.equal(late.status, 409);
  await phone('approve', { id: scanned.id }, 'mallory');
  await page.waitForSelector('#confirm:not([hidden])', { timeout: 10000 });
  assert.equal(await page.textContent('#approver'), 'Mallory');
  await page.waitForTimeout(300);
  assert.equal(await page.isHidden('#loggedIn'), true, 'never logged in without the code');
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-4-not-me.png`) });
  await page.click('#notMe');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'cancelled');
  assert.equal(await page.isHidden('#confirm'), true);
  const me = await page.evaluate(async () => (await fetch('/api/me')).json());
  assert.deepEqual(me, { user: null });
  await page.close();
});

test(`${LABEL}: the gateways restart between scan and approve, and the page still completes`, async () => {
  const page = await openLoginPage();
  const qr = (await page.textContent('#qrText')).trim();
  const scanned = await phone('scan', { qr });
  await page.waitForFunction(() => document.getElementById('state').textContent === 'scanned');

  // SIGTERM every gateway: they close the sockets with 1001, the stack restarts them (0.5 s).
  const pids = gatewayPids();
  assert.equal(pids.length, 2);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  await page.waitForFunction(() => window.qrDemo.transport === 'reconnecting', null, { timeout: 5000 });
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-5-reconnecting.png`) });
  // Approved while no gateway listens: the event reaches nobody (Pub/Sub is at-most-once)...
  const { confirmation_code: code } = await phone('approve', { id: scanned.id });
  // ...and the status sent when the page's socket is back carries the outcome.
  await page.waitForSelector('#confirm:not([hidden])', { timeout: 15000 });
  await confirmWithCode(page, 'Demo', code);
  await page.waitForSelector('#loggedIn:not([hidden])', { timeout: 10000 });
  assert.equal(await page.textContent('#who'), 'demo');
  const demo = await page.evaluate(() => window.qrDemo);
  assert.ok(demo.reconnects >= 1, JSON.stringify(demo));
  assert.notDeepEqual(gatewayPids().sort(), pids.sort(), 'the gateways were restarted');
  assert.equal(demo.via, 'ws-status', `completed through the status on resubscribe: ${JSON.stringify(demo)}`);
  assert.equal(demo.polls, 0, 'no polling was needed');
  // After the reconnect: the status (approved, seq 3), nothing older; then maybe "redeemed" (4).
  const after = demo.messages.slice(demo.messages.findLastIndex((m) => m.type === 'status'));
  assert.deepEqual([after[0].type, after[0].seq], ['status', 3], JSON.stringify(demo.messages));
  await page.screenshot({ path: join(ARTIFACTS, `e2e-${LABEL}-6-after-restart.png`) });
  await page.close();
});
