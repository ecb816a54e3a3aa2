// Benchmark (not a test): phone approves → the login page is updated, in headless Chromium, over
// the real stack (nginx, php-fpm, Redis, two gateways). Run by bench/gateway/run.
//
// Per login: a fresh login page (its socket open), the phone's scan over HTTP, then — timed with the
// page's own clock (performance.now()) — the approve POST, the "approved" event arriving over the
// WebSocket, the confirmation asked (after the page fetched who approved: one more request), and
// "Logged in" shown (after the code, typed by the script as soon as the approve answered, is
// redeemed: one more request). The approve is sent from the page's context (same clock). Each
// login has its own phone user, as real traffic has: one user's scans are rate-limited.
//
//   QRPUSH_BENCH_BASE  http://127.0.0.1:<port>     QRPUSH_BENCH_LOGINS  100 (at least 50)
//   QRPUSH_NODE_MODULES (playwright-core)           QRPUSH_BENCH_OUT     JSON file for the raw samples

import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(join(process.env.QRPUSH_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');
const BASE = process.env.QRPUSH_BENCH_BASE;
const LOGINS = Math.max(50, Number(process.env.QRPUSH_BENCH_LOGINS || 100));
const WARMUP = 5;

function percentile(sorted, p) {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summary(name, values) {
  const s = [...values].sort((a, b) => a - b);
  const f = (v) => v.toFixed(1).padStart(7);
  return `| ${name.padEnd(44)} | ${f(percentile(s, 50))} | ${f(percentile(s, 95))} | ${f(percentile(s, 99))} | ${f(s.at(-1))} |`;
}

const userDataDir = mkdtempSync(join(tmpdir(), 'qrpush-bench-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await context.newPage();
const samples = [];
try {
  for (let i = 0; i < WARMUP + LOGINS; i++) {
    await context.clearCookies();
    const user = `bench${i}`;
    await context.addCookies([{ name: 'demo_user', value: user, url: BASE }]);
    await page.goto(`${BASE}/`);
    await page.waitForFunction(() => window.qrDemo && window.qrDemo.transport === 'websocket');
    const qr = (await page.textContent('#qrText')).trim();
    const response = await fetch(`${BASE}/api/login/scan`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: `demo_user=${user}` },
      body: JSON.stringify({ qr }),
    });
    const scanned = await response.json();
    await page.waitForFunction(() => document.getElementById('state').textContent === 'scanned');
    const sample = await page.evaluate(async (id) => {
      const t0 = performance.now();
      const approve = fetch('/api/login/approve', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id }),
      }).then(async (r) => ({ at: performance.now(), code: (await r.json()).confirmation_code }));
      const until = (done) => new Promise((resolve) => {
        const check = () => (done() ? resolve() : setTimeout(check, 0));
        check();
      });
      await until(() => window.qrDemo.confirmShownAt);
      const { at, code } = await approve;
      document.getElementById('code').value = code;
      document.getElementById('confirm').requestSubmit();
      await until(() => window.qrDemo.loggedInAt);
      return {
        approveHttp: at - t0,
        toEvent: window.qrDemo.approvedAt - t0,
        toConfirm: window.qrDemo.confirmShownAt - t0,
        toLoggedIn: window.qrDemo.loggedInAt - t0,
        via: window.qrDemo.via,
        polls: window.qrDemo.polls,
      };
    }, scanned.id);
    if (sample.via !== 'ws-event' || sample.polls !== 0) throw new Error(`not pushed: ${JSON.stringify(sample)}`);
    if (i >= WARMUP) samples.push(sample);
  }
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

console.log(`\n${LOGINS} logins (after ${WARMUP} warm-up), milliseconds, measured in the page (performance.now()):\n`);
console.log('| from the approve POST (page clock) to …       |     p50 |     p95 |     p99 |     max |');
console.log('|---|---:|---:|---:|---:|');
console.log(summary('the "approved" event on the page\'s socket', samples.map((s) => s.toEvent)));
console.log(summary('the confirmation asked (after GET status)', samples.map((s) => s.toConfirm)));
console.log(summary('"Logged in" shown (code typed, redeemed)', samples.map((s) => s.toLoggedIn)));
console.log(summary('the approve response (HTTP, for scale)', samples.map((s) => s.approveHttp)));
if (process.env.QRPUSH_BENCH_OUT) writeFileSync(process.env.QRPUSH_BENCH_OUT, JSON.stringify(samples, null, 1));
const p95 = percentile(samples.map((s) => s.toEvent).sort((a, b) => a - b), 95);
console.log(`\ngoal p95 ≤ 50 ms (approve → page updated): ${p95 <= 50 ? 'met' : 'NOT met'} (${p95.toFixed(1)} ms)`);
