#!/usr/bin/env node
// Plays one HLS playlist with hls.js, or with --player mpegts one HTTP-FLV (http://) or
// WebSocket-FLV (ws://) stream with mpegts.js, in headless Chromium (Debian's
// /usr/bin/chromium, driven over CDP by playwright-core) for a bounded time, and prints one
// JSON line of what a viewer would notice: did it start, how long to the first frame,
// stalls, errors, frames decoded and dropped, the position against the live edge once a
// second, and, with --stamps (hls.js), glass-to-glass latency read from frames
// scripts/stamp_publisher.py stamped.
//
//   node play.mjs --url http://127.0.0.1:8000/live/KEY/index.m3u8 [--seconds 20]
//        [--low-latency] [--hls-config JSON] [--start-timeout 30] [--stamps]
//        [--warmup 0] [--seek-back SECONDS] [--seek-wait 180] [--spki HASH]
//        [--pid-file FILE] [--verbose] [--vod]
//   node play.mjs --player mpegts --url ws://127.0.0.1:8000/live/KEY.flv [--seconds 20]
//        [--mpegts-config JSON] ...
//
// --seek-back (hls.js, a playlist with a DVR window): once playing, wait (at most --seek-wait
// seconds) until the player can seek that far behind the live edge, seek there, and play
// --seconds from there; then the position must advance from the seek target, and the
// seek's own rebuffering is not a stall.
//
// --spki makes Chromium accept the server certificate whose public key has that hash
// (base64 SHA-256 of its SubjectPublicKeyInfo), for an HTTPS URL with a test certificate.
//
// The page and the player (from node_modules) are served from http://127.0.0.1 on a port
// of its own: another origin than the server's, so the page reads the stream cross-origin. Chromium runs in a process group of its own with a new empty profile, both
// removed at the end; --pid-file gets that group's id as soon as it exists, so a caller
// can end the group if this process is killed before it could.
//
// --vod: a VOD playlist (a recording), played from its start to its end within --seconds:
// the end is expected, and the position must reach the media's duration.
//
// Exit status: 0 when it played the whole time with no stall, no end, no fatal error and
// frames advancing (and, with --stamps, stamps read); 1 when not (the JSON line says why in
// `failures`); 2 when the browser could not be run.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { startChromium, stopChromium } from './chromium.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// How often the page is asked whether it started.
const POLL_MS = 250;

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    player: { type: 'string', default: 'hls' },
    'mpegts-config': { type: 'string', default: '{}' },
    seconds: { type: 'string', default: '20' },
    'low-latency': { type: 'boolean', default: false },
    'hls-config': { type: 'string', default: '{}' },
    'start-timeout': { type: 'string', default: '30' },
    stamps: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '0' },
    'seek-back': { type: 'string' },
    'seek-wait': { type: 'string', default: '180' },
    spki: { type: 'string' },
    'pid-file': { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    verbose: { type: 'boolean', default: false },
    vod: { type: 'boolean', default: false },
  },
});
if (!opts.url || !['hls', 'mpegts'].includes(opts.player)) {
  console.error('usage: node play.mjs --url PLAYLIST_URL [--seconds 20] [--low-latency] ... | --player mpegts --url FLV_URL ...');
  process.exit(2);
}
const seconds = Number(opts.seconds);
const startTimeout = Number(opts['start-timeout']);
const warmup = Number(opts.warmup);
const seekBack = opts['seek-back'] === undefined ? null : Number(opts['seek-back']);
const seekWait = Number(opts['seek-wait']);
const hlsConfig = { lowLatencyMode: opts['low-latency'], ...JSON.parse(opts['hls-config']) };
const mpegtsConfig = JSON.parse(opts['mpegts-config']);
const log = (...args) => { if (opts.verbose) console.error('[play]', ...args); };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The pages, their scripts, hls.js and mpegts.js, served from 127.0.0.1.
const FILES = {
  '/': ['page/index.html', 'text/html'],
  '/player.js': ['page/player.js', 'text/javascript'],
  '/stamp.js': ['page/stamp.js', 'text/javascript'],
  '/hls.js': ['node_modules/hls.js/dist/hls.min.js', 'text/javascript'],
  '/flv.html': ['page/flv.html', 'text/html'],
  '/flv-player.js': ['page/flv-player.js', 'text/javascript'],
  '/mpegts.js': ['node_modules/mpegts.js/dist/mpegts.js', 'text/javascript'],
};
const PAGE = { hls: '/', mpegts: '/flv.html' }[opts.player];
function servePage() {
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = FILES[path];
    if (!file) {
      res.writeHead(path === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' });
    res.end(readFileSync(join(HERE, file[0])));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/// median, p90, p99, min, max (nearest rank) of `values`, null when empty.
function summary(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), min: s[0], max: s[s.length - 1] };
}

// Judges a page report against what a viewer expects; returns the result line.
function judge(report, meta) {
  const failures = [];
  const started = report.first_frame_ms !== null;
  if (!started) failures.push(`no frame within ${startTimeout} s`);
  if (report.fatal.length) failures.push(`fatal ${opts.player} errors: ${JSON.stringify(report.fatal)}`);
  if (report.waiting.length) failures.push(`stalled (waiting) at ${report.waiting.join(', ')} s`);
  if (report.buffer_stalled.length) failures.push(`buffer stalled at ${report.buffer_stalled.join(', ')} s`);
  if (opts.vod) {
    if (started && !report.ended.length) failures.push(`did not reach the end (${report.position} of ${report.duration} s)`);
    if (started && !(report.position >= report.duration - 1)) failures.push(`ended at ${report.position} of ${report.duration} s`);
  } else {
    if (report.ended.length) failures.push(`playback ended at ${report.ended.join(', ')} s`);
    if (started && report.paused) failures.push('paused at the end');
  }
  if (meta.page_errors.length) failures.push(`page errors: ${meta.page_errors.join('; ')}`);
  const seek = report.seek;
  if (seekBack !== null && started) {
    if (!seek) failures.push(`the player could not seek ${seekBack} s back within ${seekWait} s`);
    else if (seek.seeked_t === null) failures.push('the seek never completed');
    else if (seek.target_frag === null) failures.push('no fragment loaded at the seek target');
  }
  // With a seek, playback is judged from it: the frames and the position from the target.
  const playing = report.samples.filter((s) => s.frames > 0 && (!seek || s.t >= seek.t));
  const first = playing[0];
  const last = playing[playing.length - 1];
  const framesAdvanced = first && last ? last.frames - first.frames : 0;
  const from = seek ? seek.target : first?.pos;
  const positionAdvanced = first && last ? last.pos - from : 0;
  if (started && framesAdvanced <= 0) failures.push('decoded frames did not advance');
  if (started && positionAdvanced < (opts.vod ? report.duration - 1 : meta.played_s / 2)) {
    failures.push(`position advanced ${positionAdvanced.toFixed(1)} s in ${meta.played_s.toFixed(1)} s of playback`);
  }
  if (opts.stamps && started && !report.glass.length) {
    failures.push(`no stamp read from any frame: ${JSON.stringify(report.stamp_failures)}`);
  }
  const afterWarmup = (t) => t >= report.first_frame_ms / 1000 + warmup;
  const q = last ? { decoded: last.frames, dropped: last.dropped, advanced: framesAdvanced } : null;
  return {
    ok: failures.length === 0,
    failures,
    url: opts.url,
    page: meta.page,
    player: opts.player,
    player_version: meta.version,
    hls_js: opts.player === 'hls' ? meta.version : null,
    config: report.config,
    media: report.media ?? null,
    playlist: report.playlist,
    ll: report.ll,
    seek: report.seek,
    started,
    first_frame_ms: report.first_frame_ms,
    played_s: Number(meta.played_s.toFixed(2)),
    position_advanced_s: Number(positionAdvanced.toFixed(3)),
    stalls: report.waiting.length + report.buffer_stalled.length,
    waiting: report.waiting,
    buffer_stalled: report.buffer_stalled,
    ended: report.ended,
    paused: report.paused,
    duration: report.duration,
    position: report.position,
    fatal: report.fatal,
    errors: report.errors,
    frames: q,
    presented: report.presented,
    latency_s: summary(report.samples.filter((s) => afterWarmup(s.t) && s.latency !== null).map((s) => s.latency)),
    behind_edge_s: summary(report.samples.filter((s) => afterWarmup(s.t) && s.behind_edge !== null).map((s) => s.behind_edge)),
    live_edge: report.samples,
    glass: opts.stamps ? {
      clock: report.clock,
      warmup_s: warmup,
      ms: summary(report.glass.filter(([t]) => afterWarmup(t)).map(([, ms]) => ms)),
      unreadable: report.stamp_failures,
      samples: report.glass,
    } : null,
  };
}

let chromiumChild = null;
let profile = null;
let pageServer = null;
async function cleanup() {
  await stopChromium(chromiumChild);
  if (profile) rmSync(profile, { recursive: true, force: true });
  pageServer?.close();
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143)); });
}

async function main() {
  pageServer = await servePage();
  const pageUrl = `http://127.0.0.1:${pageServer.address().port}${PAGE}`;
  profile = mkdtempSync(join(tmpdir(), 'play-chromium-'));
  const trust = opts.spki ? [`--ignore-certificate-errors-spki-list=${opts.spki}`] : [];
  const { child, endpoint } = startChromium({ chromium: opts.chromium, profile, pidFile: opts['pid-file'], flags: trust });
  chromiumChild = child;
  let browser;
  try {
    browser = await chromium.connectOverCDP(await endpoint);
  } catch (e) {
    console.log(JSON.stringify({ ok: false, failures: [`browser: ${e.message}`], url: opts.url }));
    return 2;
  }
  log('chromium', child.pid, browser.version());
  const context = browser.contexts()[0];
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => log('console', m.type(), m.text()));
  await page.goto(pageUrl);
  const info = await page.evaluate((o) => window.startPlayer(o), { url: opts.url, hlsConfig, mpegtsConfig, stamps: opts.stamps });
  log(opts.player, info.version, info.clock, JSON.stringify(opts.player === 'hls' ? hlsConfig : mpegtsConfig));

  const startDeadline = Date.now() + startTimeout * 1000;
  let status = await page.evaluate(() => window.playerStatus());
  while (status.first_frame_ms === null && status.fatal === 0 && Date.now() < startDeadline) {
    await sleep(POLL_MS);
    status = await page.evaluate(() => window.playerStatus());
  }
  let playedMs = 0;
  if (status.first_frame_ms !== null && seekBack !== null) {
    const seekDeadline = Date.now() + seekWait * 1000;
    let span = 0;
    while (Date.now() < seekDeadline) {
      span = await page.evaluate(() => window.seekableSpan());
      if (span >= seekBack + 1 || (await page.evaluate(() => window.playerStatus())).fatal) break;
      await sleep(1000);
    }
    log('seekable span', span, 's');
    if (span >= seekBack + 1) log('seek', JSON.stringify(await page.evaluate((s) => window.seekBack(s), seekBack)));
  }
  if (status.first_frame_ms !== null) {
    log('first frame after', status.first_frame_ms, 'ms');
    const playStart = Date.now();
    while (Date.now() - playStart < seconds * 1000) {
      await sleep(Math.min(1000, seconds * 1000 - (Date.now() - playStart)));
      const now = await page.evaluate(() => window.playerStatus());
      if (now.fatal || (opts.vod && now.ended)) break;
    }
    playedMs = Date.now() - playStart;
  }
  const report = await page.evaluate(() => window.playerReport());
  await browser.close();
  const result = judge(report, { version: info.version, page: pageUrl, played_s: playedMs / 1000, page_errors: pageErrors });
  console.log(JSON.stringify(result));
  return result.ok ? 0 : 1;
}

let code = 2;
try {
  code = await main();
} catch (e) {
  console.log(JSON.stringify({ ok: false, failures: [`harness: ${e.stack || e}`], url: opts.url }));
} finally {
  await cleanup();
}
process.exit(code);
