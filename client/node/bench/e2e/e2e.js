#!/usr/bin/env node
'use strict';
// The switch a user weighs: the same Express shop (app.js: login with regenerate, a cart,
// read-only pages, a flash after each POST shown by the page it redirects to, logout with
// destroy) on connect-sessd, on connect-redis 9 + connect-flash, and on MemoryStore +
// connect-flash, run by run in alternation, for speed and for correctness under concurrency.
//
//   cd client/node && npm ci && cd bench/e2e && npm ci
//   node e2e.js [--runs 3] [--seconds 10] [--users 400] [--concurrency 32]
//       [--stores sessd,redis,memory,sessd-merge] [--transport tcp|unix] [--json FILE]
//       [--prof-dir DIR] [--versus DIR]
//
// Each run starts a fresh store process (sessd from SESSD_BIN, default ../../../../build/
// daemon/sessd, memory only; redis-server --save '' --appendonly no), then the app, then:
//   1. logs --users visitors in (each its own cookie jar) and has each add two items:
//      store memory per session (the store process's RSS and its own count: sessd's
//      `bytes`, Redis's used_memory; the app's heap after a GC for MemoryStore);
//   2. load, --seconds: --concurrency virtual browsers on keep-alive connections, each
//      serving its own visitors in turn, one action at a time (65% a product page, 15% a cart
//      add and the cart page it redirects to, 12% the home page, 8% logout then login again):
//      requests/s, p50/p99 per request, CPU per request of the app and of the store (/proc);
//   3. two tabs: 100 fresh visitors each add two items at once while a third tab reads a
//      page; then each reads its cart: items lost, flashes lost or shown twice;
//   4. logout during a slow request: 100 visitors each have a request in flight that stamps
//      the session after 60 ms when they log out; does the old session come back (in the
//      store, and logged in through the old cookie)?
//   5. a slow request that stamps the session in flight while the visitor adds to the cart
//      (two requests changing different keys): is the item still there?
//   6. expiry: 12 visitors log in with lifetimes of 2.0-2.4 s; the store is asked (not
//      through express-session, which would renew) every 40 ms when each one ends, against
//      the instant the cookie ends.
// Every flash the app pushes carries a token; every page's flashes are counted, so a flash
// shown twice or never shown is counted in every phase.
// Prints each run and then the medians and the ratios to connect-redis of runs measured side
// by side. No part of this runs in CI: it needs Redis and minutes.

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const { freePort, stopProc } = require('./procs');

const NODE_DIR = path.resolve(__dirname, '../..');
const { Daemon, sessdBin } = require(path.join(NODE_DIR, 'test/helpers'));

function usage(msg) {
  console.error(`${msg}\nusage: node e2e.js [--runs 3] [--seconds 10] [--users 400] [--concurrency 32] [--stores sessd,redis,memory,sessd-merge] [--transport tcp|unix] [--json FILE] [--prof-dir DIR] [--versus DIR]`);
  process.exit(2);
}
const KNOWN = ['--versus', '--prof-dir', '--runs', '--seconds', '--users', '--concurrency', '--stores', '--transport', '--json'];
const opt = {};
for (let i = 2; i < process.argv.length; i += 2) {
  if (!KNOWN.includes(process.argv[i])) usage(`unknown argument ${process.argv[i]}`);
  if (process.argv[i + 1] === undefined) usage(`${process.argv[i]} needs a value`);
  opt[process.argv[i].slice(2)] = process.argv[i + 1];
}
const posInt = (name, def) => {
  const n = Number(opt[name] ?? def);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer`);
  return n;
};
const RUNS = posInt('runs', 3);
const SECONDS = posInt('seconds', 10);
const USERS = posInt('users', 400);
const CONC = posInt('concurrency', 32);
const STORES = (opt.stores || 'sessd,redis,memory,sessd-merge').split(',');
// --versus DIR: another connect-sessd (a checkout's client/node, its npm ci done), run as the
// store 'sessd-base' beside this one's 'sessd', to see what a change to lib/ does end to end.
const VERSUS = opt.versus ? path.resolve(opt.versus) : null;
if (VERSUS && !STORES.includes('sessd-base')) STORES.push('sessd-base');
for (const s of STORES) if (!['sessd', 'sessd-merge', 'redis', 'memory', ...(VERSUS ? ['sessd-base'] : [])].includes(s)) usage(`unknown store ${s}`);
const TRANSPORT = opt.transport || 'tcp';
if (!['tcp', 'unix'].includes(TRANSPORT)) usage('--transport is tcp or unix');
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

function cpuMs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS; // utime, stime
}
function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

// ---- stores ----

async function startRedis(dir) {
  const port = await freePort();
  const sock = path.join(dir, 'redis.sock');
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--unixsocket', sock, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = TRANSPORT === 'unix' ? `unix://${sock}` : `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if (redisCmd(port, 'PING') === 'PONG') return { pid: proc.pid, url, port, stop: () => stopProc(proc) };
    } catch (e) { /* not up yet */ }
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}
function redisCmd(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
}

async function startStore(kind, dir) {
  if (kind === 'sessd-base') return { ...(await startStore('sessd', dir)), app: { E2E_STORE: 'sessd', E2E_SESSD_DIR: VERSUS } };
  if (kind === 'redis') {
    const r = await startRedis(dir);
    return {
      ...r,
      env: { REDIS_URL: r.url },
      counted: () => Number(/used_memory:(\d+)/.exec(redisCmd(r.port, 'INFO', 'memory'))[1]),
      ops: () => Number(/total_commands_processed:(\d+)/.exec(redisCmd(r.port, 'INFO', 'stats'))[1]),
    };
  }
  if (kind === 'memory') return { pid: null, env: {}, stop: async () => {}, counted: null, ops: null };
  const d = await new Daemon({ dir: fs.mkdtempSync(path.join(dir, 'sessd-')) }).start();
  const sessctl = path.resolve(path.dirname(sessdBin()), '../client/sessctl');
  const stat = (name) => Number(new RegExp(`^${name}\\s+(\\d+)`, 'm').exec(execFileSync(sessctl, ['--connect', d.unixUrl, 'stats']).toString())[1]);
  return {
    pid: d.pid,
    env: { SESSD_URL: TRANSPORT === 'unix' ? d.unixUrl : d.tcpUrl },
    stop: () => d.cleanup(),
    counted: () => stat('bytes'),
    ops: () => stat('requests_total'),
  };
}

function startApp(kind, env) {
  const prof = opt['prof-dir'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(opt['prof-dir'], kind)] : [];
  const proc = spawn(process.execPath, ['--expose-gc', ...prof, path.join(__dirname, 'app.js')], {
    env: { ...process.env, E2E_STORE: kind, PORT: '0', E2E_SESSD_DIR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let errors = '';
  proc.stderr.on('data', (d) => {
    errors += d;
    if (errors.length > 20000) errors = errors.slice(-10000);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]), errors: () => errors, stop: () => stopProc(proc) });
    });
    proc.once('exit', (code) => reject(new Error(`app (${kind}) exited ${code}: ${errors}`)));
  });
}

// ---- a browser: a cookie jar on a keep-alive agent ----

function request(agent, port, method, urlPath, { cookie, body } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (cookie) headers.cookie = cookie;
    if (body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent, headers }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const FLASH_RE = /<li class="flash [^"]*">([^<]*)<\/li>/g;
const CART_RE = /<p id="cart">([^<]*)<\/p>/;
const USER_RE = /<p id="user">([^<]*)<\/p>/;

class Tally {
  constructor() {
    this.lat = [];
    this.requests = 0;
    this.bad = 0;
    this.pushed = new Map(); // token -> 'acked' | 'dropped' (pushed, then the session logged out before a page showed it)
    this.shown = new Map(); // token -> times shown
  }
  count(r) {
    this.requests++;
    this.lat.push(r.ms);
    if (r.status >= 400) this.bad++;
  }
  see(body) {
    for (const m of body.matchAll(FLASH_RE)) {
      const tok = /#(\S+)/.exec(m[1]);
      if (tok) this.shown.set(tok[1], (this.shown.get(tok[1]) || 0) + 1);
    }
  }
  flashes() {
    let lost = 0;
    let twice = 0;
    let once = 0;
    for (const [tok, state] of this.pushed) {
      const n = this.shown.get(tok) || 0;
      if (n > 1) twice++;
      else if (n === 1) once++;
      else if (state === 'acked') lost++;
    }
    return { pushed: this.pushed.size, once, lost, twice };
  }
}

class Visitor {
  constructor(name, tally, agent, port) {
    Object.assign(this, { name, tally, agent, port });
    this.cookie = null;
    this.seq = 0;
    this.unshown = new Set(); // tokens pushed to this session not shown yet
  }
  get sid() {
    return this.cookie ? decodeURIComponent(this.cookie.split('=')[1]).replace(/^s:/, '').replace(/\.[^.]*$/, '') : null;
  }
  async req(method, p, body) {
    const r = await request(this.agent, this.port, method, p, { cookie: this.cookie, body });
    this.tally.count(r);
    const set = r.headers['set-cookie'];
    if (set) this.cookie = set[0].split(';')[0];
    this.tally.see(r.body);
    for (const m of r.body.matchAll(FLASH_RE)) {
      const tok = /#(\S+)/.exec(m[1]);
      if (tok) this.unshown.delete(tok[1]);
    }
    return r;
  }
  token(kind) {
    const t = `${kind}${this.name}-${++this.seq}`;
    return t;
  }
  pushed(tok, r) {
    if (r.status === 303) {
      this.tally.pushed.set(tok, 'acked');
      this.unshown.add(tok);
    }
  }
  async login(extra = '') {
    const tok = this.token('L');
    const r = await this.req('POST', '/login', `username=${this.name}&token=%23${tok}${extra}`);
    this.pushed(tok, r);
    if (r.status === 303) await this.req('GET', r.headers.location);
    return r;
  }
  async add() {
    const tok = this.token('A');
    const r = await this.req('POST', '/cart', `item=%23${tok}`);
    this.pushed(tok, r);
    if (r.status === 303) await this.req('GET', r.headers.location);
    return tok;
  }
  async logout() {
    // A flash pushed to the session and not shown yet is gone with it: not lost.
    for (const tok of this.unshown) this.tally.pushed.set(tok, 'dropped');
    this.unshown.clear();
    const r = await this.req('POST', '/logout');
    if (r.status === 303) await this.req('GET', r.headers.location);
  }
}

// ---- phases ----

async function memorySessions(app, store, tally) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });
  const memBefore = app.heap ? await heapUsed(app) : null;
  const rssBefore = store.pid ? rssBytes(store.pid) : null;
  const countedBefore = store.counted ? store.counted() : null;
  const visitors = [];
  for (let i = 0; i < USERS; i++) visitors.push(new Visitor(`u${i}`, tally, agent, app.port));
  let next = 0;
  await Promise.all(Array.from({ length: CONC }, async () => {
    while (next < visitors.length) {
      const v = visitors[next++];
      await v.login();
      await v.add();
      await v.add();
    }
  }));
  const out = {};
  if (store.pid) {
    out.rssPerSession = (rssBytes(store.pid) - rssBefore) / USERS;
    out.countedPerSession = (store.counted() - countedBefore) / USERS;
  } else {
    out.heapPerSession = (await heapUsed(app) - memBefore) / USERS;
  }
  return { visitors, agent, mem: out };
}

async function heapUsed(app) {
  const r = await request(undefined, app.port, 'GET', '/__mem');
  return JSON.parse(r.body).heapUsed;
}

async function load(app, store, visitors, agent) {
  const tally = new Tally();
  for (const v of visitors) v.tally = tally;
  const appCpu0 = cpuMs(app.proc.pid);
  const storeCpu0 = store.pid ? cpuMs(store.pid) : 0;
  const selfCpu0 = process.cpuUsage();
  const ops0 = store.ops ? store.ops() : 0;
  const t0 = Date.now();
  const deadline = t0 + SECONDS * 1000;
  let product = 0;
  await Promise.all(Array.from({ length: CONC }, async (_, w) => {
    const mine = visitors.filter((_, i) => i % CONC === w);
    for (let k = 0; Date.now() < deadline; k++) {
      const v = mine[k % mine.length];
      const x = Math.random();
      if (x < 0.65) await v.req('GET', `/product/${product++ % 500}`);
      else if (x < 0.80) await v.add();
      else if (x < 0.92) await v.req('GET', '/');
      else {
        await v.logout();
        await v.login();
      }
    }
  }));
  const wall = (Date.now() - t0) / 1000;
  const appCpu = cpuMs(app.proc.pid) - appCpu0;
  const storeCpu = store.pid ? cpuMs(store.pid) - storeCpu0 : 0;
  const self = process.cpuUsage(selfCpu0);
  // Less the STATS or INFO call itself.
  const storeOps = store.ops ? store.ops() - ops0 - 1 : NaN;
  const lat = tally.lat.sort((a, b) => a - b);
  // What the browsers still have queued: the last page each visitor saw showed it, unless
  // a flash is lost; read the home page once more to count the lost ones.
  for (const v of visitors) if (v.unshown.size) await v.req('GET', '/');
  return {
    rps: tally.requests / wall,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
    appCpuUs: (appCpu * 1000) / tally.requests,
    storeCpuUs: (storeCpu * 1000) / tally.requests,
    driverCpuUs: ((self.user + self.system)) / tally.requests,
    opsPerRequest: storeOps / tally.requests,
    errors: tally.bad,
    flashes: tally.flashes(),
  };
}

// eachVisitor(app, prefix, fn): 100 fresh visitors, each logged in, then fn(visitor, agent,
// tally), 16 visitors at a time. Resolves the tally of every request made.
async function eachVisitor(app, prefix, fn) {
  const tally = new Tally();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 96 });
  const visitors = Array.from({ length: 100 }, (_, i) => new Visitor(`${prefix}${i}`, tally, agent, app.port));
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < visitors.length) {
      const v = visitors[next++];
      await v.login();
      await fn(v, agent, tally);
    }
  }));
  agent.destroy();
  return tally;
}

async function twoTabs(app) {
  let lostItems = 0;
  let items = 0;
  const tally = await eachVisitor(app, 't', async (v, agent, tally) => {
    // Three tabs of one browser: each its own copy of the cookie, all sent at once.
    const tab = () => Object.assign(new Visitor(v.name, tally, agent, app.port), { cookie: v.cookie, seq: v.seq });
    const a = tab();
    const b = Object.assign(tab(), { seq: v.seq + 100 });
    const c = tab();
    const [ta, tb] = await Promise.all([a.add(), b.add(), c.req('GET', '/product/1')]);
    const r = await v.req('GET', '/cart');
    const cart = (CART_RE.exec(r.body) || [, ''])[1].split(',');
    for (const tok of [ta, tb]) {
      if (tally.pushed.get(tok) !== 'acked') continue;
      items++;
      if (!cart.includes(`#${tok}`)) lostItems++;
    }
  });
  return { items, lostItems, flashes: tally.flashes() };
}

async function logoutRace(app) {
  let back = 0;
  let loggedIn = 0;
  await eachVisitor(app, 'o', async (v, agent) => {
    const old = v.cookie;
    const sid = v.sid;
    const slow = request(agent, app.port, 'GET', '/slow', { cookie: old });
    await sleep(10);
    await v.logout();
    await slow;
    await sleep(20);
    const peek = await request(agent, app.port, 'GET', `/__peek/${encodeURIComponent(sid)}`);
    if (JSON.parse(peek.body).found) back++;
    const r = await request(agent, app.port, 'GET', '/cart', { cookie: old });
    if ((USER_RE.exec(r.body) || [])[1]) loggedIn++;
  });
  return { logouts: 100, back, loggedIn };
}

// A slow request (it stamps seenAt after 60 ms) in flight while the same visitor adds to the
// cart: two requests that change different keys. Is the item still in the cart after both?
async function slowAndAdd(app) {
  let items = 0;
  let lost = 0;
  await eachVisitor(app, 's', async (v, agent, tally) => {
    const slow = request(agent, app.port, 'GET', '/slow', { cookie: v.cookie });
    await sleep(10);
    const tok = await v.add();
    await slow;
    const r = await v.req('GET', '/cart');
    if (tally.pushed.get(tok) !== 'acked') return;
    items++;
    if (!(CART_RE.exec(r.body) || [, ''])[1].split(',').includes(`#${tok}`)) lost++;
  });
  return { items, lost };
}

async function expiry(app) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const tally = new Tally();
  const res = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
    const v = new Visitor(`e${i}`, tally, agent, app.port);
    const ttl = 2000 + i * 37;
    const tok = v.token('L');
    const r = await v.req('POST', '/login', `username=${v.name}&token=%23${tok}&ttl_ms=${ttl}`);
    const endsMs = Number(r.headers['x-expires-ms']);
    const sid = v.sid;
    let lastFound = null;
    for (;;) {
      const sent = Date.now();
      const p = await request(agent, app.port, 'GET', `/__peek/${encodeURIComponent(sid)}`);
      const got = Date.now();
      if (JSON.parse(p.body).found) lastFound = sent;
      // Gone with its answer in hand before the end: ended early. Else it lived at least
      // until the last peek that found it was sent (late by that much, at least).
      else return { early: got < endsMs, lateMs: lastFound === null ? -Infinity : lastFound - endsMs };
      if (sent > endsMs + 3000) return { early: false, lateMs: Infinity };
      await sleep(40);
    }
  }));
  agent.destroy();
  return { early: res.filter((d) => d.early).length, maxMs: Math.max(...res.map((d) => d.lateMs)), n: res.length };
}

async function oneRun(kind, dir) {
  const store = await startStore(kind, dir);
  const app = await startApp(kind, { ...store.env, ...(store.app || {}) });
  app.heap = kind === 'memory';
  try {
    const warm = new Tally();
    const { visitors, agent, mem } = await memorySessions(app, store, warm);
    const speed = await load(app, store, visitors, agent);
    agent.destroy();
    const tabs = await twoTabs(app);
    const logout = await logoutRace(app);
    const slowAdd = await slowAndAdd(app);
    const exp = await expiry(app);
    const errs = app.errors().trim();
    return { kind, mem, speed, tabs, logout, slowAdd, expiry: exp, appErrors: errs ? errs.split('\n').slice(0, 5) : [] };
  } finally {
    await app.stop();
    await store.stop();
  }
}

function show(r) {
  const s = r.speed;
  const f = s.flashes;
  const m = r.mem.rssPerSession !== undefined
    ? `store RSS/session ${r.mem.rssPerSession.toFixed(0)} B, counted ${r.mem.countedPerSession.toFixed(0)} B`
    : `app heap/session ${r.mem.heapPerSession.toFixed(0)} B`;
  console.log(`${r.kind.padEnd(11)} ${s.rps.toFixed(0).padStart(5)} req/s  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  ` +
    `CPU/req app ${s.appCpuUs.toFixed(0)} us store ${s.storeCpuUs.toFixed(0)} us (driver ${s.driverCpuUs.toFixed(0)})  store ops/req ${s.opsPerRequest.toFixed(2)}  ${m}  errors ${s.errors}\n` +
    `            load flashes ${f.pushed}: lost ${f.lost} twice ${f.twice} | two tabs: items lost ${r.tabs.lostItems}/${r.tabs.items}, ` +
    `flashes lost ${r.tabs.flashes.lost} twice ${r.tabs.flashes.twice} of ${r.tabs.flashes.pushed} | ` +
    `logout+slow: back in store ${r.logout.back}/${r.logout.logouts}, logged in ${r.logout.loggedIn} | slow+add: items lost ${r.slowAdd.lost}/${r.slowAdd.items} | ` +
    `expiry: early ${r.expiry.early}/${r.expiry.n}, found up to ${r.expiry.maxMs} ms after the cookie's end` +
    (r.appErrors.length ? `\n            app stderr: ${r.appErrors.join(' / ')}` : ''));
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-bench-'));
  const results = [];
  console.log(`${os.cpus().length} x ${os.cpus()[0].model}, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; node ${process.version}; ` +
    `${USERS} visitors, ${CONC} at a time, ${SECONDS} s, stores over ${TRANSPORT}`);
  try {
    for (let run = 0; run < RUNS; run++) {
      // Rotate the order each run, so that the machine's drift falls on every store.
      const order = STORES.map((_, i) => STORES[(i + run) % STORES.length]);
      for (const kind of order) {
        const r = await oneRun(kind, dir);
        r.run = run;
        results.push(r);
        show(r);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const by = (kind) => results.filter((r) => r.kind === kind);
  console.log(`\nmedians over ${RUNS} runs (ratios: the median of each run's store / connect-redis):`);
  const num = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  for (const kind of STORES) {
    const rs = by(kind);
    const med = (f) => median(rs.map(f));
    const ratio = (f) => median(rs.map((r) => {
      const red = results.find((x) => x.kind === 'redis' && x.run === r.run);
      return red ? f(r) / f(red) : NaN;
    }));
    const sum = (f) => rs.reduce((a, r) => a + f(r), 0);
    console.log(`${kind.padEnd(11)} req/s ${num(med((r) => r.speed.rps))} (x${num(ratio((r) => r.speed.rps), 2)})  ` +
      `p50 ${num(med((r) => r.speed.p50), 2)} ms (x${num(ratio((r) => r.speed.p50), 2)})  p99 ${num(med((r) => r.speed.p99), 2)} ms (x${num(ratio((r) => r.speed.p99), 2)})  ` +
      `CPU/req app ${num(med((r) => r.speed.appCpuUs))} us (x${num(ratio((r) => r.speed.appCpuUs), 2)}) store ${num(med((r) => r.speed.storeCpuUs))} us (x${num(ratio((r) => r.speed.storeCpuUs), 2)})  ` +
      `store ops/req ${num(med((r) => r.speed.opsPerRequest), 2)}  ` +
      (kind === 'memory' ? `heap/session ${num(med((r) => r.mem.heapPerSession))} B` : `RSS/session ${num(med((r) => r.mem.rssPerSession))} B, counted ${num(med((r) => r.mem.countedPerSession))} B`));
    console.log(`            totals: load flashes lost ${sum((r) => r.speed.flashes.lost)} twice ${sum((r) => r.speed.flashes.twice)} of ${sum((r) => r.speed.flashes.pushed)}; ` +
      `two tabs items lost ${sum((r) => r.tabs.lostItems)}/${sum((r) => r.tabs.items)}, flashes lost ${sum((r) => r.tabs.flashes.lost)} twice ${sum((r) => r.tabs.flashes.twice)} of ${sum((r) => r.tabs.flashes.pushed)}; ` +
      `logouts undone ${sum((r) => r.logout.back)}/${sum((r) => r.logout.logouts)} (logged in again ${sum((r) => r.logout.loggedIn)}); ` +
      `slow+add items lost ${sum((r) => r.slowAdd.lost)}/${sum((r) => r.slowAdd.items)}; ` +
      `expiry early ${sum((r) => r.expiry.early)}/${sum((r) => r.expiry.n)}, late by up to ${num(Math.max(...rs.map((r) => r.expiry.maxMs)))} ms`);
  }
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(results, null, 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
