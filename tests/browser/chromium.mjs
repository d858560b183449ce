// Debian's Chromium for the browser tests (play.mjs, levels.mjs, dashboard.mjs): run
// headless in a process group of its own with a new empty profile, its DevTools endpoint
// read from its stderr for playwright-core's connectOverCDP, and ended with its whole group.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

// Headless as root on a machine with no network but loopback: no sandbox (root), no GPU,
// and nothing that reaches out on its own.
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--window-size=1280,800',
  '--remote-debugging-port=0',
];
// How long Chromium gets to open its DevTools endpoint, and to exit when asked.
const BROWSER_START_MS = 30_000;
const BROWSER_STOP_MS = 5_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Starts `chromium` (its path) with `profile` as its user data folder and `flags` beside
// the common ones; writes its process group's id to `pidFile` at once when given, so a
// caller can end the group if this process is killed first. Returns the child and a
// promise of the DevTools WebSocket URL.
export function startChromium({ chromium, profile, pidFile, flags = [] }) {
  const child = spawn(chromium, [...CHROMIUM_FLAGS, ...flags, `--user-data-dir=${profile}`, 'about:blank'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (pidFile && child.pid) writeFileSync(pidFile, `${child.pid}\n`);
  const endpoint = new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no DevTools endpoint from chromium:\n${seen}`)), BROWSER_START_MS);
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
      if (seen.length > 65536) seen = seen.slice(-65536);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited (${code ?? signal}) before it listened:\n${seen}`));
    });
  });
  endpoint.catch(() => {});
  return { child, endpoint };
}

// Ends Chromium's process group: SIGTERM, then SIGKILL for what is still there (helpers
// that outlived the browser process, or a browser that did not exit in time).
export async function stopChromium(child) {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const group = (sig) => { try { process.kill(-child.pid, sig); } catch { /* gone */ } };
  group('SIGTERM');
  const inTime = await Promise.race([exited.then(() => true), sleep(BROWSER_STOP_MS).then(() => false)]);
  group('SIGKILL');
  if (!inTime) await exited;
}
