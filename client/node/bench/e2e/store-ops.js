#!/usr/bin/env node
'use strict';
// The app's CPU per session operation, without HTTP: express-session's calls of a page view
// (get, then touch) and of a cart add (get, then set with one key changed) on SessdStore and
// on connect-redis 9's RedisStore, in one process, the two alternated round by round.
// What e2e.js's "CPU per request of the app" is made of, measured without the HTTP server's
// share and with less noise.
//
//   node store-ops.js [--rounds 5] [--ops 20000] [--concurrency 32] [--only sessd,redis,base]
//       [--versus DIR] [--op view|add] [--sessions 1000] [--secret]
//
// Starts a private sessd (SESSD_BIN) and redis-server (--save '' --appendonly no), both on
// loopback TCP.

const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const NODE_DIR = path.resolve(__dirname, '../..');
const { SessdStore } = require(NODE_DIR);
const session = require('express-session');
const { RedisStore } = require('connect-redis');
const { createClient } = require('redis');

const arg = (name, def) => {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const ROUNDS = arg('rounds', 5);
const OPS = arg('ops', 20000);
const CONC = arg('concurrency', 32);
// --sessions N: how many distinct sessions the calls go round (connect-sessd's tag cache holds
// 1,024: more, and every page view hashes its session's data).
const SESSIONS = arg('sessions', 1000);
const sarg = (name) => (process.argv.includes('--' + name) ? process.argv[process.argv.indexOf('--' + name) + 1] : null);
const ONLY = sarg('only') && sarg('only').split(',');
// --op view or add: that action alone (for a profile of one).
const OPS_ONLY = sarg('op') && sarg('op').split(',');
// --versus DIR: another copy of connect-sessd (a checkout's client/node), run as 'base'
// beside this one, to see what a change to lib/ does to the app's CPU.
const VERSUS = sarg('versus') && path.resolve(sarg('versus'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const p = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));

// What express-session does with a session it loaded: a Session object over the stored data,
// whose cookie is a Cookie (createSession), and a fresh expires at the end of the request.
function fakeReq(store, sid) {
  return { sessionID: sid, sessionStore: store };
}

async function pageView(store, sid) {
  const data = await p((cb) => store.get(sid, cb));
  const req = fakeReq(store, sid);
  const sess = store.createSession(req, data);
  sess.touch();
  await p((cb) => store.touch(sid, sess, cb));
}

async function cartAdd(store, sid, n) {
  const data = await p((cb) => store.get(sid, cb));
  const req = fakeReq(store, sid);
  const sess = store.createSession(req, data);
  sess.cart = [...(sess.cart || []).slice(-4), `item-${n}`];
  sess.touch();
  await p((cb) => store.set(sid, sess, cb));
}

async function measure(store, sids, op) {
  let next = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONC }, async () => {
    for (let i; (i = next++) < OPS;) await op(store, sids[i % sids.length], i);
  }));
  const c = process.cpuUsage(c0);
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  return { cpuUs: (c.user + c.system) / OPS, userUs: c.user / OPS, opsPerS: OPS / wallS };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-ops-'));
  // Not test/helpers' Daemon: requiring helpers wraps connect-sessd's encoder (it notes the
  // ids sent, to find them in a log), which would be measured here.
  const ready = path.join(dir, 'ready');
  const sessdBin = process.env.SESSD_BIN ? path.resolve(NODE_DIR, process.env.SESSD_BIN) : path.resolve(NODE_DIR, '../../build/daemon/sessd');
  // --secret: sessd takes a secret (--auth-file) and both stores show it, sealed unless their
  // options say seal: false (SESSD_STORE_OPTS, and BASE_STORE_OPTS for --versus's: a sealed
  // store against a plain one of the same lib is the seal's cost).
  const secret = process.argv.includes('--secret') ? require('crypto').randomBytes(32) : null;
  const authArgs = [];
  if (secret) {
    fs.writeFileSync(path.join(dir, 'secret'), secret, { mode: 0o600 });
    authArgs.push('--auth-file', path.join(dir, 'secret'));
  }
  const sessd = spawn(sessdBin, ['--listen', 'tcp://127.0.0.1:0', '--ready-file', ready, '--log-level', 'warn', ...authArgs], { stdio: 'inherit' });
  for (let i = 0; !fs.existsSync(ready); i++) {
    if (i > 400) throw new Error('sessd did not start');
    await sleep(25);
  }
  const sessdUrl = fs.readFileSync(ready, 'utf8').split(/\s+/).find((u) => u.startsWith('tcp:'));
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
  const redisProc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const redis = createClient({ url: `redis://127.0.0.1:${port}` });
  redis.on('error', () => {});
  for (let i = 0; ; i++) {
    try {
      await redis.connect();
      break;
    } catch (e) {
      if (i > 100) throw e;
      await sleep(50);
    }
  }
  const stores = {
    sessd: new SessdStore({ url: sessdUrl, namespace: 'ops', ...(secret ? { auth: secret } : {}), ...JSON.parse(process.env.SESSD_STORE_OPTS || '{}') }),
    redis: new RedisStore({ client: redis, prefix: 'ops:' }),
  };
  if (VERSUS) {
    const opts = { ...(secret ? { auth: secret } : {}), ...JSON.parse(process.env.SESSD_STORE_OPTS || '{}'), ...JSON.parse(process.env.BASE_STORE_OPTS || '{}') };
    stores.base = new (require(VERSUS).SessdStore)({ url: sessdUrl, namespace: 'ops-base', ...opts });
  }
  const kinds = Object.keys(stores).filter((k) => !ONLY || ONLY.includes(k));
  const sids = Array.from({ length: SESSIONS }, (_, i) => `sid-${i}-`.padEnd(32, 'x'));
  for (const store of kinds.map((k) => stores[k])) {
    for (const sid of sids) {
      const sess = store.createSession(fakeReq(store, sid), { cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000), httpOnly: true, path: '/' }, user: sid.slice(0, 8), cart: ['a', 'b'] });
      await p((cb) => store.set(sid, sess, cb));
    }
    await measure(store, sids, pageView); // warm-up
  }
  const res = Object.fromEntries(kinds.map((k) => [k, { view: [], add: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    // Rotated each round, so that the machine's drift falls on each.
    for (const kind of kinds.map((_, i) => kinds[(i + r) % kinds.length])) {
      for (const [name, op] of [['view', pageView], ['add', cartAdd]].filter(([name]) => !OPS_ONLY || OPS_ONLY.includes(name))) {
        const m = await measure(stores[kind], sids, op);
        res[kind][name].push(m);
        console.log(`round ${r} ${kind.padEnd(5)} ${name.padEnd(4)} ${m.cpuUs.toFixed(1).padStart(6)} us CPU/op (user ${m.userUs.toFixed(1).padStart(5)})  ${m.opsPerS.toFixed(0).padStart(6)} ops/s`);
      }
    }
  }
  console.log(`\nmedians of ${ROUNDS} rounds, ${OPS} ops each, ${CONC} at a time: app CPU (user and system; user alone) per get+touch (view) and get+set (add), and the median of each round's ratio to ${kinds.includes('redis') ? 'redis' : kinds[0]}:`);
  const ref = kinds.includes('redis') ? 'redis' : kinds[0];
  for (const kind of kinds) {
    const line = ['view', 'add'].filter((name) => !OPS_ONLY || OPS_ONLY.includes(name)).map((name) => {
      const ratio = (f) => median(res[kind][name].map((m, i) => f(m) / f(res[ref][name][i]))).toFixed(2);
      const med = (f) => median(res[kind][name].map(f)).toFixed(1);
      return `${name} ${med((m) => m.cpuUs)} us (x${ratio((m) => m.cpuUs)}), user ${med((m) => m.userUs)} us (x${ratio((m) => m.userUs)})`;
    });
    console.log(`  ${kind.padEnd(5)} ${line.join('  ')}`);
  }
  // With --versus: this lib against the other, as each round's ratio (the two ran side by side).
  if (kinds.includes('sessd') && kinds.includes('base')) {
    const line = ['view', 'add'].filter((name) => !OPS_ONLY || OPS_ONLY.includes(name)).map((name) => {
      const ratios = res.sessd[name].map((m, i) => m.cpuUs / res.base[name][i].cpuUs);
      return `${name} x${median(ratios).toFixed(3)} (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
    });
    console.log(`  sessd/base: ${line.join('  ')}`);
  }
  stores.sessd.close();
  if (stores.base) stores.base.close();
  await redis.quit();
  redisProc.kill('SIGTERM');
  sessd.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
