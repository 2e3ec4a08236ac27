#!/usr/bin/env node
'use strict';
// What a shop's visitors see when its session store fills up under a bot flood, on
// connect-sessd at a small --max-memory and on connect-redis at the same maxmemory with a
// policy (noeviction, allkeys-lru, volatile-lru). Run by hand, not in CI (needs Redis and a
// minute a store):
//
//   cd client/node && npm ci && cd bench/e2e && npm ci
//   node flood-full.js [--stores sessd,redis-noeviction,redis-allkeys-lru,redis-volatile-lru]
//       [--max-memory 4194304] [--seconds 20] [--bot-after 4] [--visitors 8]
//       [--save-uninitialized 1] [--bot get|login] [--when-full refuse|drop-unread]
//
// The app is app.js (E2E_SAVE_UNINITIALIZED=1: a session for every anonymous visitor). A bot
// with 16 connections asks for the home page (--bot get) or logs in as someone new (--bot
// login) as fast as it can and never sends a cookie back: every answer that sets a cookie is a
// new session kept for its whole TTL. From --bot-after seconds, while --visitors real visitors
// each go round: a fresh cookie jar, the home page, log in (a welcome flash), the home page
// (the flash shown? the user shown?), add to the cart (an "Added" flash), the cart page (the
// item and the flash), and once more the cart page a little later ("came back": still logged
// in, the item still there). Prints, per second, the visitors' rounds that worked and those
// that failed and how (an HTTP status, a flash missing, logged out), the bot's answers, the
// app's error lines, and at the end the store's own figures and log. --when-full is sessd's
// option of that name (refuse, its default, is not passed: older daemons run too).

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const { freePort, stopProc } = require('./procs');

const NODE_DIR = path.resolve(__dirname, '../..');
const { Daemon, sessdBin } = require(path.join(NODE_DIR, 'test/helpers'));

const opt = { stores: 'sessd,redis-noeviction,redis-allkeys-lru,redis-volatile-lru', 'max-memory': '4194304', seconds: '20', 'bot-after': '4', visitors: '8', 'save-uninitialized': '1', bot: 'get', 'when-full': 'refuse' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt) || process.argv[i + 1] === undefined) {
    console.error(`unknown or valueless ${process.argv[i]}; options: ${Object.keys(opt).map((o) => '--' + o).join(' ')}`);
    process.exit(2);
  }
  opt[k] = process.argv[i + 1];
}
const MAX = Number(opt['max-memory']);
const SECONDS = Number(opt.seconds);
const BOT_AFTER = Number(opt['bot-after']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function startStore(kind, dir) {
  if (kind.startsWith('redis-')) {
    const policy = kind.slice('redis-'.length);
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--maxmemory-policy', policy], { stdio: 'ignore' });
    const cli = (...a) => execFileSync('redis-cli', ['-p', String(port), ...a], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    for (let i = 0; i < 200; i++) {
      try { if (cli('PING').trim() === 'PONG') break; } catch (e) { /* not up yet */ }
      await sleep(25);
    }
    return {
      // Redis counts its own baseline (its clients' buffers included) against maxmemory: once
      // the app is connected, give the sessions the same room as sessd's.
      arm: () => {
        const base = Number(/used_memory:(\d+)/.exec(cli('INFO', 'memory'))[1]);
        cli('CONFIG', 'SET', 'maxmemory', String(base + MAX));
      },
      app: { E2E_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${port}` },
      stop: () => stopProc(proc),
      figures: () => {
        const info = cli('INFO');
        const pick = (k) => (new RegExp(`^${k}:(\\S+)`, 'm').exec(info) || [])[1];
        return `keys ${(/keys=(\d+)/.exec(info) || [0, 0])[1]} used_memory ${pick('used_memory')} evicted_keys ${pick('evicted_keys')} ` +
          `rejected(OOM) ${(/errorstat_OOM:count=(\d+)/.exec(info) || [0, 0])[1]}`;
      },
      log: () => '',
    };
  }
  const d = await new Daemon({ dir: fs.mkdtempSync(path.join(dir, 'sessd-')), extraArgs: ['--max-memory', String(MAX),
    ...(opt['when-full'] !== 'refuse' ? ['--when-full', opt['when-full']] : [])] }).start();
  const sessctl = path.resolve(path.dirname(sessdBin()), '../client/sessctl');
  return {
    app: { E2E_STORE: 'sessd', SESSD_URL: d.unixUrl },
    stop: () => d.cleanup(),
    figures: () => execFileSync(sessctl, ['--connect', d.unixUrl, 'stats']).toString()
      .split('\n').filter((l) => /^(sessions|bytes|max_bytes|no_memory_total|unread|evicted_total)\s/.test(l)).join('; '),
    log: () => d.stderr,
    arm: () => {},
  };
}

function startApp(env) {
  const proc = spawn(process.execPath, [path.join(__dirname, 'app.js')], {
    env: { ...process.env, PORT: '0', E2E_SESSD_DIR: '', E2E_SAVE_UNINITIALIZED: opt['save-uninitialized'], E2E_TTL_MS: String(2 * 86400 * 1000), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const errors = [];
  proc.stderr.on('data', (d) => errors.push(...String(d).split('\n').filter(Boolean).map((l) => `${((Date.now() - T0) / 1000).toFixed(1)}s ${l}`)));
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), errors, stop: () => stopProc(proc) });
    });
    proc.once('exit', (code) => reject(new Error(`app exited ${code}: ${errors.join('\n')}`)));
  });
}

let T0 = Date.now();

function request(agent, port, method, urlPath, jar, body, retried = false) {
  return new Promise((resolve) => {
    const headers = {};
    if (jar && jar.cookie) headers.cookie = jar.cookie;
    let payload;
    if (body) {
      payload = new URLSearchParams(body).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request({ agent, host: '127.0.0.1', port, method, path: urlPath, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      // The app may close the connection after an answer (express's final handler does when
      // a save fails after the page was sent): 'close' without 'end' ends the answer too.
      const done = () => {
        const set = res.headers['set-cookie'];
        if (jar && set) jar.cookie = set[0].split(';')[0];
        resolve({ status: res.statusCode, text, setCookie: !!set });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    // An answer that never comes is what a visitor sees too: counted as 'timeout'.
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => {
      // A browser sends again a request whose reused connection the server had closed.
      if (req.reusedSocket && e.code === 'ECONNRESET' && !retried) return resolve(request(agent, port, method, urlPath, jar, body, true));
      resolve({ status: e.message === 'timeout' ? 'timeout' : `0 ${e.code || e.message}`, text: e.message });
    });
    if (payload) req.write(payload);
    req.end();
  });
}

const user = (t) => (/<p id="user">([^<]*)<\/p>/.exec(t) || [])[1] || '';
const cart = (t) => (/<p id="cart">([^<]*)<\/p>/.exec(t) || [])[1] || '';
const flashes = (t) => [...t.matchAll(/<li class="flash [^"]*">([^<]*)<\/li>/g)].map((m) => m[1]);

// One visitor's round; returns 'ok' or what went wrong first.
async function round(agent, port, n) {
  const jar = {};
  const name = `v${n}`;
  let r = await request(agent, port, 'GET', '/', jar);
  if (r.status !== 200) return `home ${r.status}`;
  r = await request(agent, port, 'POST', '/login', jar, { username: name, token: `t${n}` });
  if (r.status !== 303) return `login ${r.status}`;
  r = await request(agent, port, 'GET', '/', jar);
  if (r.status !== 200) return `after-login ${r.status}`;
  if (user(r.text) !== name) return 'logged out after login';
  if (!flashes(r.text).some((f) => f.includes(`t${n}`))) return 'welcome flash lost';
  r = await request(agent, port, 'POST', '/cart', jar, { item: `i${n}` });
  if (r.status !== 303) return `cart-add ${r.status}`;
  r = await request(agent, port, 'GET', '/cart', jar);
  if (r.status !== 200) return `cart ${r.status}`;
  if (user(r.text) !== name) return 'logged out at cart';
  if (!cart(r.text).includes(`i${n}`)) return 'cart item lost';
  if (!flashes(r.text).some((f) => f.includes(`Added i${n}`))) return 'added flash lost';
  await sleep(300);
  r = await request(agent, port, 'GET', '/cart', jar);
  if (r.status !== 200) return `came-back ${r.status}`;
  if (user(r.text) !== name) return 'logged out on return';
  if (!cart(r.text).includes(`i${n}`)) return 'cart lost on return';
  return 'ok';
}

async function runOne(kind) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flood-'));
  const store = await startStore(kind, dir);
  const app = await startApp(store.app);
  store.arm();
  T0 = Date.now();
  const end = T0 + SECONDS * 1000;
  const perSec = [];
  const bucket = () => {
    const s = Math.floor((Date.now() - T0) / 1000);
    perSec[s] = perSec[s] || { visitor: {}, bot: {} };
    return perSec[s];
  };
  const count = (m, k) => { m[k] = (m[k] || 0) + 1; };
  const vAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const bAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let n = 0;
  const visitors = Array.from({ length: Number(opt.visitors) }, async () => {
    while (Date.now() < end) count(bucket().visitor, await round(vAgent, app.port, n++));
  });
  const bots = Array.from({ length: 16 }, async () => {
    await sleep(BOT_AFTER * 1000);
    let b = 0;
    while (Date.now() < end) {
      const r = opt.bot === 'login'
        ? await request(bAgent, app.port, 'POST', '/login', null, { username: `bot${b++}` })
        : await request(bAgent, app.port, 'GET', '/', null);
      count(bucket().bot, `${r.status}${r.setCookie ? '+cookie' : ''}`);
    }
  });
  await Promise.all([...visitors, ...bots]);
  let figures;
  try {
    figures = store.figures();
  } catch (e) {
    figures = `(not read: ${e.message.split("\n")[0]})`;
  }
  console.log(`\n== ${kind}: max ${MAX} bytes, saveUninitialized ${opt['save-uninitialized'] === '1'}, bot ${opt.bot} from ${BOT_AFTER}s`);
  perSec.forEach((s, i) => {
    if (!s) return;
    const fmt = (m) => Object.entries(m).map(([k, v]) => `${k}:${v}`).join(' ');
    console.log(`${String(i).padStart(3)}s visitors[${fmt(s.visitor)}] bot[${fmt(s.bot)}]`);
  });
  console.log(`store: ${figures}`);
  const uniq = new Map();
  for (const l of app.errors) { const k = l.replace(/^\S+ /, ''); if (!uniq.has(k)) uniq.set(k, [l, 0]); uniq.get(k)[1]++; }
  console.log(`app stderr: ${app.errors.length} lines; distinct:`);
  for (const [, [l, c]] of uniq) console.log(`  ${c}x first at ${l}`);
  const log = store.log().split('\n').filter((l) => / (warn|error)/i.test(l));
  if (log.length) console.log(`store log (warnings):\n  ${log.join('\n  ')}`);
  await app.stop();
  vAgent.destroy();
  bAgent.destroy();
  await store.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

(async () => {
  for (const kind of opt.stores.split(',')) await runOne(kind);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
