#!/usr/bin/env node
// Drives the server's own dashboard (GET /dashboard) in headless Chromium (Debian's
// /usr/bin/chromium over CDP with playwright-core, started as play.mjs starts it) against a
// server with http.api_token set and one live stream, and prints one JSON line of what it
// saw:
//
//   1. without a token: the page shows its "API token required" state, and the page's stop
//      control for the stream is refused with 401 (the stream goes on: step 3 finds it);
//   2. with #token=... in the URL: the token is taken and removed from the address bar;
//   3. the stream's card appears; its bitrate graph changes between two reads;
//   4. a click on the preview plays the stream (the video's currentTime advances);
//   5. screenshots at 1280x800 and 390x844 (a phone) go to --artefacts, and the phone
//      layout has no horizontal scroll;
//   6. Stop (and its confirming click) is answered 200 and the card goes away.
//
// Throughout, console errors, page errors, requests to another origin, failed requests and
// answers of 400 or more are failures, except the 401s of step 1 (the API refusing the page
// without a token).
//
//   node dashboard.mjs --url http://127.0.0.1:PORT --token TOKEN --stream NAME
//        --artefacts DIR [--timeout 30] [--pid-file FILE] [--verbose]
//
// Exit status: 0 when every step passed; 1 when not (`failures` says why); 2 when the
// browser could not be run.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { startChromium, stopChromium } from './chromium.mjs';

const POLL_MS = 250;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
// How far the preview's position must advance once it started.
const PLAY_ADVANCE_S = 1.5;

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    stream: { type: 'string' },
    artefacts: { type: 'string' },
    timeout: { type: 'string', default: '30' },
    'pid-file': { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    verbose: { type: 'boolean', default: false },
  },
});
if (!opts.url || !opts.token || !opts.stream || !opts.artefacts) {
  console.error('usage: node dashboard.mjs --url SERVER --token TOKEN --stream NAME --artefacts DIR');
  process.exit(2);
}
const origin = new URL(opts.url).origin;
const timeoutMs = Number(opts.timeout) * 1000;
const log = (...args) => { if (opts.verbose) console.error('[dashboard]', ...args); };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `check` (async, returning a value or null) until it gives a value or `ms` pass.
async function until(ms, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) return null;
    await sleep(POLL_MS);
  }
}

let chromiumChild = null;
let profile = null;
async function cleanup() {
  await stopChromium(chromiumChild);
  if (profile) rmSync(profile, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143)); });
}

async function main() {
  const result = { ok: false, failures: [], steps: {}, screenshots: [], console_errors: [], bad_requests: [] };
  const fail = (why) => { result.failures.push(why); log('FAIL', why); };
  mkdirSync(opts.artefacts, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'dashboard-chromium-'));
  const { child, endpoint } = startChromium({ chromium: opts.chromium, profile, pidFile: opts['pid-file'] });
  chromiumChild = child;
  let browser;
  try {
    browser = await chromium.connectOverCDP(await endpoint);
  } catch (e) {
    result.failures.push(`browser: ${e.message}`);
    return [result, 2];
  }
  const page = await browser.contexts()[0].newPage();
  await page.setViewportSize(DESKTOP);
  // Overlay scrollbars, as on a phone: a full-page screenshot is then laid out at the
  // window's width (a classic scrollbar would take 15 px of it, then vanish for the shot).
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Emulation.setScrollbarsHidden', { hidden: true });

  // What the page loads and logs. A 401 from the API is expected until the token is given.
  let expect401 = true;
  const isApi = (u) => { try { return new URL(u).origin === origin && new URL(u).pathname.startsWith('/api/'); } catch { return false; } };
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin) {
      result.bad_requests.push({ url: u, why: 'another origin' });
    }
  });
  page.on('response', (r) => {
    if (r.status() === 401 && expect401 && isApi(r.url())) return;
    if (r.status() >= 400) result.bad_requests.push({ url: r.url(), status: r.status() });
  });
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText ?? 'failed';
    // A request the page itself gave up (a preview closed, a picture replaced) is no fault.
    if (why.includes('ERR_ABORTED')) log('aborted', r.url());
    else result.bad_requests.push({ url: r.url(), why });
  });
  page.on('console', (m) => {
    log('console', m.type(), m.text());
    if (m.type() !== 'error') return;
    // Chromium logs every refused resource; the expected 401s are not errors of the page.
    if (/status of 401/.test(m.text()) && expect401 && isApi(m.location()?.url)) return;
    result.console_errors.push(`${m.text()} (${m.location()?.url ?? '?'})`);
  });
  page.on('pageerror', (e) => result.console_errors.push(`page error: ${e}`));

  const card = `.card[data-name="${opts.stream}"]`;
  // A step runs when the steps it needs passed; every step's outcome is reported.
  const passed = new Set();
  const step = async (name, needs, run) => {
    const missing = needs.filter((n) => !passed.has(n));
    if (missing.length) {
      result.steps[name] = { skipped: `needs ${missing.join(', ')}` };
      fail(`${name}: not run (needs ${missing.join(', ')})`);
      return;
    }
    const started = Date.now();
    try {
      result.steps[name] = { ...(await run()), ms: Date.now() - started };
      passed.add(name);
      log('step', name, JSON.stringify(result.steps[name]));
    } catch (e) {
      result.steps[name] = { failed: e.message, ms: Date.now() - started };
      fail(`${name}: ${e.message}`);
    }
  };

  await step('token_required', [], async () => {
    await page.goto(`${origin}/dashboard`);
    const state = await until(timeoutMs, () => page.evaluate(() => (document.body.dataset.state === 'auth' ? 'auth' : null)));
    if (!state) throw new Error('the page did not show that a token is required');
    if (!(await page.isVisible('#auth'))) throw new Error('#auth is not visible');
    const stop = await page.evaluate((name) => window.rtmpDashboard.control(name, 'stop'), opts.stream);
    if (stop.status !== 401) throw new Error(`a stop without the token was answered ${stop.status}`);
    const shown = await page.textContent('#message');
    if (!shown.includes('401')) throw new Error(`the refusal is not shown: ${JSON.stringify(shown)}`);
    return { auth_text: (await page.textContent('#auth')).trim().replace(/\s+/g, ' '), stop_status: stop.status, stop_error: stop.error, shown };
  });

  await step('token_from_fragment', [], async () => {
    await page.goto('about:blank');
    await page.goto(`${origin}/dashboard#token=${encodeURIComponent(opts.token)}`);
    const state = await until(timeoutMs, () => page.evaluate(() => (document.body.dataset.state === 'ok' ? 'ok' : null)));
    expect401 = false;
    if (!state) throw new Error(`the page did not accept the token (state ${await page.evaluate(() => document.body.dataset.state)})`);
    const url = page.url();
    if (url.includes('token')) throw new Error(`the token stayed in the address bar: ${url}`);
    return { url };
  });

  await step('stream_appears', ['token_from_fragment'], async () => {
    const found = await until(timeoutMs, () => page.$(card));
    if (!found) throw new Error(`no card for ${opts.stream} within ${opts.timeout} s`);
    return { facts: (await page.textContent(`${card} .facts`)).slice(0, 400) };
  });

  await step('bitrate_graph_moves', ['stream_appears'], async () => {
    const read = () => page.getAttribute(`${card} .graph.bitrate .line`, 'd');
    const before = await read();
    const after = await until(timeoutMs, async () => {
      const d = await read();
      return d && d !== before ? d : null;
    });
    if (!after) throw new Error(`the bitrate graph did not change: ${before}`);
    const source = await page.getAttribute(`${card} .graph.bitrate`, 'data-source');
    return { before: before.slice(0, 80), after: after.slice(0, 80), source, rate: await page.textContent(`${card} .rate-value`) };
  });

  await step('preview_plays', ['stream_appears'], async () => {
    await page.click(`${card} .play`);
    const time = () => page.evaluate((sel) => document.querySelector(`${sel} video`)?.currentTime ?? 0, card);
    const first = await until(timeoutMs, async () => { const t = await time(); return t > 0 ? t : null; });
    if (first === null) throw new Error('the preview did not start');
    const later = await until(timeoutMs, async () => { const t = await time(); return t >= first + PLAY_ADVANCE_S ? t : null; });
    if (later === null) throw new Error(`the preview's position stayed at ${await time()} s`);
    const muted = await page.evaluate((sel) => document.querySelector(`${sel} video`).muted, card);
    if (!muted) throw new Error('the preview is not muted');
    return { first_s: first, later_s: later };
  });

  await step('screenshots', ['stream_appears'], async () => {
    const shots = [];
    for (const [name, size] of [['desktop-1280x800', DESKTOP], ['phone-390x844', PHONE]]) {
      await page.setViewportSize(size);
      await sleep(500); // a layout pass and a frame of the preview
      const path = join(opts.artefacts, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      shots.push(path);
      const overflow = await page.evaluate(() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > width + 0.5)
          .slice(0, 5)
          .map((e) => `${e.tagName.toLowerCase()}.${e.getAttribute('class') || ''}`);
        return { by: document.documentElement.scrollWidth - width, wide };
      });
      if (overflow.by > 0 || overflow.wide.length) {
        throw new Error(`at ${size.width} px wide the page is wider than the window by ${overflow.by} px: ${overflow.wide.join(', ')}`);
      }
    }
    await page.setViewportSize(DESKTOP);
    result.screenshots = shots;
    return { files: shots };
  });

  await step('stop', ['stream_appears'], async () => {
    const answered = page.waitForResponse((r) => r.url().endsWith(`/api/streams/${opts.stream}/stop`) && r.request().method() === 'POST', { timeout: timeoutMs });
    await page.click(`${card} button.stop`);
    await page.click(`${card} button.stop`); // the confirming click
    const response = await answered;
    if (response.status() !== 200) {
      const error = await page.textContent(`${card} .error`).catch(() => '');
      throw new Error(`Stop was answered ${response.status()}: ${error}`);
    }
    const gone = await until(timeoutMs, async () => (await page.$(card)) === null);
    if (!gone) throw new Error('the card stayed after Stop');
    return { status: response.status(), body: await response.text() };
  });

  await sleep(500); // late console messages
  await browser.close();
  if (result.console_errors.length) fail(`console errors: ${result.console_errors.join('; ')}`);
  if (result.bad_requests.length) fail(`bad requests: ${JSON.stringify(result.bad_requests)}`);
  result.ok = result.failures.length === 0;
  return [result, result.ok ? 0 : 1];
}

let code = 2;
try {
  const [result, status] = await main();
  console.log(JSON.stringify(result));
  code = status;
} catch (e) {
  console.log(JSON.stringify({ ok: false, failures: [`harness: ${e.stack || e}`] }));
} finally {
  await cleanup();
}
process.exit(code);
