// herald.mjs - shared helpers for Herald's Node.js integration tests.
//
// Everything here talks to a REAL `herald` binary over loopback:
//
//   startHerald(args, env)  spawn `herald serve --listen 127.0.0.1:0 --workers 2
//                           ...args`, wait (<= 10 s, more under sanitizers) for
//                           the "listening on http://127.0.0.1:PORT" log line and
//                           return { port, url, wsUrl, proc, stderr(), stop(),
//                           exited }.
//   stop()                  SIGTERM, await exit (SIGKILL after 10 s); resolves to
//                           { code, signal }. Safe to call twice.
//   startRedis()            a throw-away redis-server on a free loopback port
//                           (no persistence): { proc, port, stop() }; REDIS_BIN
//                           is its path, or null when none is installed.
//
// Environment: HERALD_BIN (default <repo>/build/herald), HERALD_SOURCE_DIR (repo
// root), HERALD_SANITIZE=ON (ASan/UBSan build: timeouts are stretched by SLOW).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const REPO = process.env.HERALD_SOURCE_DIR || path.resolve(HERE, '..', '..', '..');
export const HERALD_BIN = process.env.HERALD_BIN || path.join(REPO, 'build', 'herald');
export const SANITIZE = ['ON', '1', 'TRUE', 'YES'].includes(
  String(process.env.HERALD_SANITIZE || 'OFF').trim().toUpperCase());
/** Multiplier for timing margins: sanitizer builds are several times slower. */
export const SLOW = SANITIZE ? 3 : 1;

/** Headless Chromium for the browser tests (DESIGN.md's flags): its path
 * (HERALD_CHROMIUM, default /usr/bin/chromium), launch arguments, and a
 * skip reason when it is not installed (false otherwise). */
export const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  '--disable-dev-shm-usage',
];
export const CHROMIUM_SKIP = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (set HERALD_CHROMIUM)`;

const LISTEN_RE = /listening on https?:\/\/(127\.0\.0\.1|\[[0-9a-fA-F:]+\]|[0-9.]+):(\d+)/;
const STDERR_KEEP = 256 * 1024; // keep the last 256 KiB of the server's stderr

/** Every herald started and not yet stopped, so a crashed test file still cleans up. */
const live = new Set();
process.on('exit', () => {
  for (const h of live) {
    try { h.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function heraldAvailable() {
  return existsSync(HERALD_BIN);
}

/**
 * Start `herald serve` on an ephemeral loopback port.
 * @param {string[]} args extra command-line arguments
 * @param {Record<string,string>} env extra environment variables
 * @param {{startTimeoutMs?: number, workers?: number}} opts
 */
export async function startHerald(args = [], env = {}, opts = {}) {
  if (!heraldAvailable()) {
    throw new Error(`herald binary not found at ${HERALD_BIN} (build it, or set HERALD_BIN)`);
  }
  const startTimeoutMs = opts.startTimeoutMs ?? 10000 * SLOW;
  const workers = String(opts.workers ?? 2);
  const argv = ['serve', '--listen', '127.0.0.1:0', '--workers', workers, ...args];
  const proc = spawn(HERALD_BIN, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let stderrBuf = '';
  let stdoutBuf = '';
  const append = (cur, chunk) => {
    const s = cur + chunk.toString('utf8');
    return s.length > STDERR_KEEP ? s.slice(s.length - STDERR_KEEP) : s;
  };
  proc.stdout.on('data', (c) => { stdoutBuf = append(stdoutBuf, c); });

  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let exitInfo = null;
  exited.then((info) => { exitInfo = info; live.delete(handle); });

  const handle = {
    proc,
    port: 0,
    url: '',
    wsUrl: (p = '/ws/echo') => `ws://127.0.0.1:${handle.port}${p}`,
    argv: [HERALD_BIN, ...argv],
    exited,
    get exitInfo() { return exitInfo; },
    stderr: () => stderrBuf,
    stdout: () => stdoutBuf,
    /** Last `n` lines of stderr, for assertion messages. */
    tail: (n = 40) => stderrBuf.split('\n').slice(-n).join('\n'),
    /** Send a signal without waiting. */
    kill: (sig = 'SIGTERM') => { if (exitInfo === null) proc.kill(sig); },
    stop: async (killAfterMs = 10000) => {
      if (exitInfo !== null) return exitInfo;
      try { proc.kill('SIGTERM'); } catch { /* gone */ }
      let timer;
      const killed = new Promise((resolve) => {
        timer = setTimeout(() => {
          try { proc.kill('SIGKILL'); } catch { /* gone */ }
          resolve();
        }, killAfterMs);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      return exited;
    },
  };
  live.add(handle);

  await new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      proc.stderr.off('data', onData);
      proc.off('exit', onExit);
      proc.off('error', onError);
      if (err) reject(err); else resolve();
    };
    const onData = () => {
      const m = LISTEN_RE.exec(stderrBuf);
      if (m) {
        handle.port = Number(m[2]);
        handle.url = `http://127.0.0.1:${handle.port}`;
        finish();
      }
    };
    const onExit = (code, signal) => finish(new Error(
      `herald exited before listening (code ${code}, signal ${signal})\n` +
      `argv: ${handle.argv.join(' ')}\nstderr:\n${stderrBuf}`));
    const onError = (e) => finish(new Error(`cannot spawn ${HERALD_BIN}: ${e.message}`));
    const timer = setTimeout(() => {
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
      finish(new Error(`herald did not print "listening on" within ${startTimeoutMs} ms\n` +
        `argv: ${handle.argv.join(' ')}\nstderr:\n${stderrBuf}`));
    }, startTimeoutMs);
    proc.stderr.on('data', (c) => { stderrBuf = append(stderrBuf, c); onData(); });
    proc.on('exit', onExit);
    proc.on('error', onError);
  });
  // Keep collecting stderr for diagnostics after start-up.
  return handle;
}

/**
 * Append the server's state (still running, or how it exited) and its stderr tail
 * to an error's message, once. Returns e.
 */
export function annotate(e, h) {
  if (h && e && typeof e === 'object' && typeof e.message === 'string' && !e.heraldAnnotated) {
    e.heraldAnnotated = true;
    const st = h.exitInfo ? `EXITED (code ${h.exitInfo.code}, signal ${h.exitInfo.signal})` : 'running';
    e.message += `\n--- herald ${h.argv.slice(1).join(' ')}: ${st}; stderr tail ---\n${h.tail(40)}`;
  }
  return e;
}

/**
 * Run fn(herald) with a fresh server and always stop it afterwards. When fn throws,
 * the server's stderr tail is appended to the error message.
 */
export async function withHerald(args, fn, env = {}) {
  const h = await startHerald(args, env);
  try {
    return await fn(h);
  } catch (e) {
    throw annotate(e, h);
  } finally {
    await h.stop();
  }
}

/** Reject after ms with a descriptive error unless p settles first. */
export function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const REDIS_BIN = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p)) ?? null;

/** Start redis-server (REDIS_BIN) on a free loopback port and wait until it accepts connections. */
export async function startRedis() {
  const free = net.createServer();
  await new Promise((r) => free.listen(0, '127.0.0.1', r));
  const { port } = free.address();
  await new Promise((r) => free.close(r));
  const proc = spawn(REDIS_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const deadline = Date.now() + 10000 * SLOW;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return { proc, port, stop: () => proc.kill('SIGKILL') };
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await sleep(50);
  }
}
