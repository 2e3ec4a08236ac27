#!/usr/bin/env node
'use strict';
// The switch from connect-redis to connect-sessd, as a shop makes it (client/node/README.md,
// "Switching from connect-redis"): does anyone get logged out, lose a cart item or a flash?
//
//   cd client/node && npm ci && cd bench/e2e && npm ci
//   node switch.js [--users 300] [--concurrency 24] [--transport tcp|unix] [--eager]
//
// Starts a private redis-server (loopback port and Unix socket, no persistence) and sessd
// (SESSD_BIN, default the checkout's build), then the shop of app.js:
//   1. on connect-redis 9 + connect-flash: --users visitors log in, add two items each, and
//      leave with a flash not shown yet ("Added <second item>": the redirect not followed);
//   2. the app is stopped and started again on connect-sessd (SessdStore with the cart
//      mergeKey, flash()) with migrateFrom the same RedisStore, and every visitor comes back
//      at once, --concurrency of them at a time, each with three tabs: the cart page, a
//      cart add (a third item) and the home page; one visitor in ten logs out in a fourth
//      tab at the same time; with --eager, this script (another process, as a cutover
//      script would be) runs store.migrateAll() meanwhile;
//   3. each visitor then reads the cart page, and the home page again.
// Counts: visitors still logged in, carts with all three items, pending flashes shown once
// (never, twice), the third item's flash shown once; for those who logged out: logged out
// (the old session never back); sessions left in Redis; error pages; move locks left.
// Exits 1 when anything was lost. Not run in CI: it needs Redis.

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const NODE_DIR = path.resolve(__dirname, '../..');
const { Daemon } = require(path.join(NODE_DIR, 'test/helpers'));
const { Client, SessdStore } = require(NODE_DIR);

const opt = { users: '300', concurrency: '24', transport: 'tcp', eager: false };
for (let i = 2; i < process.argv.length; i += 2) {
  const name = process.argv[i].replace(/^--/, '');
  if (name === 'eager') {
    opt.eager = true;
    i--;
    continue;
  }
  if (!(name in opt) || process.argv[i + 1] === undefined) {
    console.error('usage: node switch.js [--users 300] [--concurrency 24] [--transport tcp|unix] [--eager]');
    process.exit(2);
  }
  opt[name] = process.argv[i + 1];
}
const USERS = Number(opt.users);
const CONC = Number(opt.concurrency);
if (!(Number.isInteger(USERS) && USERS > 0 && Number.isInteger(CONC) && CONC > 0) || !['tcp', 'unix'].includes(opt.transport)) {
  console.error('--users and --concurrency are positive integers, --transport tcp or unix');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function stopProc(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', resolve);
    proc.kill('SIGTERM');
  });
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function redisServer(dir) {
  const port = await freePort();
  const sock = path.join(dir, 'redis.sock');
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--unixsocket', sock, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const cli = (...args) => execFileSync('redis-cli', ['-s', sock, ...args], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  for (let i = 0; i < 200; i++) {
    try {
      if (cli('PING') === 'PONG') return { url: opt.transport === 'unix' ? `unix://${sock}` : `redis://127.0.0.1:${port}`, cli, stop: () => stopProc(proc) };
    } catch (e) { /* not up yet */ }
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}

function startApp(env) {
  const proc = spawn(process.execPath, [path.join(__dirname, 'app.js')], { env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let errors = '';
  proc.stderr.on('data', (d) => {
    errors = (errors + d).slice(-20000);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), errors: () => errors, stop: () => stopProc(proc) });
    });
    proc.once('exit', (code) => reject(new Error(`app exited ${code}: ${errors}`)));
  });
}

// A visitor: a cookie jar; send() keeps the cookie the app sets.
class Visitor {
  constructor(i) {
    this.i = i;
    this.name = `u${i}`;
    this.cookie = null;
    this.flashes = [];
  }

  send(app, agent, method, urlPath, form) {
    const body = form ? new URLSearchParams(form).toString() : null;
    const headers = {};
    if (this.cookie) headers.cookie = this.cookie;
    if (body !== null) Object.assign(headers, { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) });
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: app.port, method, path: urlPath, agent, headers }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          data += d;
        });
        res.on('end', () => {
          const set = (res.headers['set-cookie'] || [])[0];
          if (set) this.cookie = set.split(';')[0];
          for (const m of data.matchAll(/<li class="flash [^"]*">([^<]*)<\/li>/g)) this.flashes.push(m[1]);
          const user = /<p id="user">([^<]*)<\/p>/.exec(data);
          const cart = /<p id="cart">([^<]*)<\/p>/.exec(data);
          resolve({ status: res.statusCode, user: user ? user[1] : null, cart: cart && cart[1] ? cart[1].split(',') : [] });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}

// migrateAll(redisUrl, sessdUrl): a cutover script's store.migrateAll(), in this process:
// what it moved, or its error.
async function migrateAll(redisUrl, sessdUrl) {
  const { createClient } = require('redis');
  const { RedisStore } = require('connect-redis');
  const client = createClient(redisUrl.startsWith('unix://') ? { socket: { path: redisUrl.slice('unix://'.length) } } : { url: redisUrl });
  await client.connect();
  const store = new SessdStore({ url: sessdUrl, namespace: 'e2e', migrateFrom: new RedisStore({ client, prefix: 'e2e:' }) });
  try {
    const t0 = Date.now();
    return { ...(await store.migrateAll({ concurrency: 16 })), seconds: (Date.now() - t0) / 1000 };
  } catch (err) {
    return { error: `${err.code || ''} ${err.message}`, progress: err.progress };
  } finally {
    store.close();
    await client.quit();
  }
}

async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switch-'));
  const redis = await redisServer(dir);
  const daemon = await new Daemon({ dir: fs.mkdtempSync(path.join(dir, 'sessd-')) }).start();
  const sessdUrl = opt.transport === 'unix' ? daemon.unixUrl : daemon.tcpUrl;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONC * 4 });
  const visitors = Array.from({ length: USERS }, (_, i) => new Visitor(i));
  const out = { users: USERS, concurrency: CONC, transport: opt.transport };
  try {
    // 1. On connect-redis.
    let app = await startApp({ E2E_STORE: 'redis', REDIS_URL: redis.url });
    await pool(visitors, CONC, async (v) => {
      await v.send(app, agent, 'POST', '/login', { username: v.name });
      await v.send(app, agent, 'GET', '/');
      await v.send(app, agent, 'POST', '/cart', { item: `${v.name}-a` });
      await v.send(app, agent, 'GET', '/cart');
      await v.send(app, agent, 'POST', '/cart', { item: `${v.name}-b` }); // its flash left unread
      v.flashes = [];
    });
    await app.stop();
    out.redisSessionsBefore = Number(redis.cli('DBSIZE'));

    // 2. On connect-sessd, moving from the same Redis, everyone back at once.
    app = await startApp({ E2E_STORE: 'sessd-merge', E2E_MIGRATE: '1', REDIS_URL: redis.url, SESSD_URL: sessdUrl });
    const statuses = {};
    const count = (r) => {
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      return r;
    };
    const t0 = Date.now();
    const eager = opt.eager ? migrateAll(redis.url, sessdUrl) : null;
    await pool(visitors, CONC, async (v) => {
      v.leaves = v.i % 10 === 9;
      const tabs = [
        v.send(app, agent, 'GET', '/cart'),
        v.send(app, agent, 'POST', '/cart', { item: `${v.name}-c` }),
        v.send(app, agent, 'GET', '/'),
      ];
      if (v.leaves) tabs.push(v.send(app, agent, 'POST', '/logout'));
      (await Promise.all(tabs)).forEach(count);
    });
    if (eager) out.migrateAll = await eager;
    out.switchSeconds = (Date.now() - t0) / 1000;

    // 3. Each comes back once more.
    const tally = { loggedIn: 0, cartsWhole: 0, pendingShownOnce: 0, pendingLost: 0, pendingTwice: 0, newShownOnce: 0, newTwice: 0, loggedOut: 0, stayedIn: 0 };
    await pool(visitors, CONC, async (v) => {
      const cart = count(await v.send(app, agent, 'GET', '/cart'));
      const home = count(await v.send(app, agent, 'GET', '/'));
      if (v.leaves) {
        // The logout's redirect set no new session: a visitor logged out reads no user.
        if (cart.user === '' && home.user === '') tally.loggedOut++;
        else tally.stayedIn++;
        return;
      }
      if (cart.user === v.name && home.user === v.name) tally.loggedIn++;
      const items = new Set(cart.cart);
      if (['a', 'b', 'c'].every((x) => items.has(`${v.name}-${x}`)) && cart.cart.length === 3) tally.cartsWhole++;
      const seen = (text) => v.flashes.filter((f) => f === text).length;
      const pending = seen(`Added ${v.name}-b`);
      if (pending === 1) tally.pendingShownOnce++;
      else if (pending === 0) tally.pendingLost++;
      else tally.pendingTwice++;
      const added = seen(`Added ${v.name}-c`);
      if (added === 1) tally.newShownOnce++;
      else if (added > 1) tally.newTwice++;
    });
    const admin = new Client({ url: daemon.unixUrl, poolSize: 1 });
    out.moveLocksLeft = await admin.count('connect-sessd.migrating');
    out.sessdSessions = await admin.count('e2e');
    admin.close();
    out.redisSessionsAfter = Number(redis.cli('DBSIZE'));
    out.statuses = statuses;
    const stayed = USERS - visitors.filter((v) => v.leaves).length;
    Object.assign(out, { stayed, left: USERS - stayed }, tally);
    out.appErrors = app.errors().split('\n').filter(Boolean).slice(0, 5);
    await app.stop();
    console.log(JSON.stringify(out, null, 2));
    const whole = tally.loggedIn === stayed && tally.cartsWhole === stayed && tally.pendingShownOnce === stayed &&
      tally.newShownOnce === stayed && tally.loggedOut === USERS - stayed && out.moveLocksLeft === 0 && out.redisSessionsAfter === 0;
    console.log(whole ? 'everything survived the switch' : 'LOST SOMETHING in the switch');
    process.exitCode = whole ? 0 : 1;
  } finally {
    agent.destroy();
    await daemon.cleanup();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
