#!/usr/bin/env node
'use strict';
// Saves of one session from several app processes at once, on a slow sessd: P app processes
// (forked, each with its own SessdStore, as node:cluster workers or web servers sharing one
// sessd are), each with T tabs of one browser adding an item to one cart at once, through a
// relay that holds each of sessd's replies --delay ms. Saves of one session in one process
// go one after another (the store's queue); between processes only SET_IF's CONFLICT and the
// merge loop's retries decide who writes next.
//
//   node bench/fair-contention.js [--procs 8] [--tabs 3] [--delay 20] [--rounds 20]
//       [--attempts 25] [--versus LIBDIR] [--json]
//
// Each round makes a fresh session, has every tab read it (store.get), add its own item and
// save (store.set) at once, then reads the cart: an item whose save was answered without
// error and is missing is LOST. Counts per lib: saves, saves that failed (ESESSD_CONFLICT:
// out of merge attempts), items lost, saves that took more SET_IFs than there are processes
// (more than one lost round per other process: an unfair share), SET_IFs per save (p50, p99,
// max) and the save's time (store.set called to its callback; p50, p99, max).
// --versus LIBDIR runs a second connect-sessd (e.g. /work/main/client/node) with the same
// children settings, the two alternating round by round, and prints the ratios this/versus
// of the save's time (p50, p99, max) and of the SET_IFs a save took (mean). The load average
// is printed as the run starts and ends: the times are only comparable within one run.
// Starts a private sessd (SESSD_BIN, default ../../build/daemon/sessd).

const { fork } = require('child_process');
const os = require('os');
const path = require('path');

const CHILD = process.argv[2] === '--child';

const KNOWN = new Set(['--procs', '--tabs', '--delay', '--rounds', '--attempts', '--versus', '--json']);
if (!CHILD) {
  for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (!KNOWN.has(a)) usage(`unknown argument ${a}`);
    if (a !== '--json') i++;
  }
}

function usage(msg) {
  console.error(`${msg}\nusage: node bench/fair-contention.js [--procs 8] [--tabs 3] [--delay 20] [--rounds 20] [--attempts 25] [--versus LIBDIR] [--json]`);
  process.exit(2);
}

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i < 0 ? def : process.argv[i + 1];
}

function count(name, def, min) {
  const n = Number(arg(name, def));
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer of at least ${min}`);
  return n;
}

if (CHILD) child();
else parent().catch((err) => {
  console.error(err);
  process.exit(1);
});

function child() {
  const { AsyncLocalStorage } = require('async_hooks');
  const { SessdStore } = require(process.argv[3]);
  const union = (key, base, mine, theirs) => (key === 'cart' ? [...new Set([...(theirs || []), ...(mine || []).filter((x) => !(base || []).includes(x))])] : mine);
  const opts = { url: process.env.FAIR_URL, namespace: 'fair', mergeKey: union };
  if (process.env.FAIR_ATTEMPTS) opts.mergeAttempts = Number(process.env.FAIR_ATTEMPTS);
  const store = new SessdStore(opts);
  const als = new AsyncLocalStorage();
  const setIf = store.client.setIf.bind(store.client);
  store.client.setIf = (...a) => {
    const ctx = als.getStore();
    if (ctx) ctx.setIfs++;
    return setIf(...a);
  };
  const call = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
  process.on('message', async (m) => {
    if (m.stop) {
      await store.close();
      process.exit(0);
    }
    const results = await Promise.all(Array.from({ length: m.tabs }, async (_, t) => {
      const item = `${m.proc}-${t}`;
      const sess = await call((cb) => store.get(m.sid, cb));
      sess.cart = [...(sess.cart || []), item];
      const ctx = { setIfs: 0 };
      const t0 = process.hrtime.bigint();
      let code = null;
      try {
        await als.run(ctx, () => call((cb) => store.set(m.sid, sess, cb)));
      } catch (err) {
        code = err.code || err.message;
      }
      return { item, code, setIfs: ctx.setIfs, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    }));
    process.send({ results });
  });
  process.send({ ready: true });
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

async function parent() {
  const { Client } = require('..');
  const { Daemon } = require('../test/helpers');
  const { waveRelay } = require('../test/waverelay');
  const PROCS = count('procs', 8, 1);
  const TABS = count('tabs', 3, 1);
  const DELAY = count('delay', 20, 0);
  const ROUNDS = count('rounds', 20, 1);
  const ATTEMPTS = arg('attempts', null) === null ? null : String(count('attempts', null, 1));
  const libs = [{ name: 'this', dir: path.resolve(__dirname, '..') }];
  if (arg('versus', null) !== null) libs.push({ name: 'versus', dir: path.resolve(arg('versus')) });
  const daemon = await new Daemon().start();
  const relay = await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), DELAY);
  const client = new Client({ url: daemon.unixUrl });
  await client.ready();
  const loadAtStart = os.loadavg()[0];
  let stopping = false;
  const env = { ...process.env, FAIR_URL: relay.url };
  if (ATTEMPTS !== null) env.FAIR_ATTEMPTS = ATTEMPTS;
  try {
    for (const lib of libs) {
      lib.children = [];
      for (let p = 0; p < PROCS; p++) {
        const c = fork(__filename, ['--child', lib.dir], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        // A child that dies (a lib that does not load) would leave the round waiting forever.
        c.on('exit', (code) => {
          if (!stopping) {
            console.error(`a child of ${lib.dir} exited (${code}) during the run`);
            process.exit(1);
          }
        });
        await new Promise((resolve) => c.once('message', resolve));
        lib.children.push(c);
      }
      lib.stats = { over: 0, saves: 0, failed: 0, lost: 0, setIfs: [], ms: [], codes: {} };
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const lib of r % 2 ? [...libs].reverse() : libs) {
        const sid = `fair-${lib.name}-${r}-${process.pid}`;
        const cookie = { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' };
        await client.set('fair', sid, Buffer.from(JSON.stringify({ cookie, user: 'ann' })), 3600000);
        const replies = await Promise.all(lib.children.map((c, proc) => new Promise((resolve) => {
          c.once('message', (m) => resolve(m.results));
          c.send({ sid, tabs: TABS, proc });
        })));
        const stored = JSON.parse((await client.get('fair', sid)).toString('utf8'));
        const cart = new Set(stored.cart || []);
        for (const res of replies.flat()) {
          lib.stats.saves++;
          lib.stats.setIfs.push(res.setIfs);
          if (res.setIfs > PROCS) lib.stats.over++;
          lib.stats.ms.push(res.ms);
          if (res.code !== null) {
            lib.stats.failed++;
            lib.stats.codes[res.code] = (lib.stats.codes[res.code] || 0) + 1;
          } else if (!cart.has(res.item)) lib.stats.lost++;
        }
      }
    }
    const out = libs.map((lib) => ({
      lib: lib.name, dir: lib.dir, procs: PROCS, tabs: TABS, delayMs: DELAY, rounds: ROUNDS,
      saves: lib.stats.saves, overProcs: lib.stats.over, failed: lib.stats.failed, lost: lib.stats.lost, codes: lib.stats.codes,
      setIfsMean: lib.stats.setIfs.reduce((a, b) => a + b, 0) / lib.stats.saves, setIfsMax: Math.max(...lib.stats.setIfs), setIfsP99: pct(lib.stats.setIfs, 99), setIfsP50: pct(lib.stats.setIfs, 50),
      msMax: Math.round(Math.max(...lib.stats.ms)), msP99: Math.round(pct(lib.stats.ms, 99)), msP50: Math.round(pct(lib.stats.ms, 50)),
    }));
    const load = { start: loadAtStart, end: os.loadavg()[0] };
    const ratio = (k) => Math.round((out[0][k] / out[1][k]) * 100) / 100;
    const ratios = out.length > 1 ? { msP50: ratio('msP50'), msP99: ratio('msP99'), msMax: ratio('msMax'), setIfsMean: ratio('setIfsMean') } : null;
    if (process.argv.includes('--json')) console.log(JSON.stringify({ libs: out, ratios, load }));
    else {
      for (const o of out) console.log(`${o.lib}: ${o.saves} saves, ${o.failed} failed ${JSON.stringify(o.codes)}, ${o.lost} lost; ${o.overProcs} took more SET_IFs than processes; SET_IFs a save mean ${o.setIfsMean.toFixed(2)} p50 ${o.setIfsP50} p99 ${o.setIfsP99} max ${o.setIfsMax}; ms p50 ${o.msP50} p99 ${o.msP99} max ${o.msMax}`);
      if (ratios !== null) console.log(`this/versus: ms p50 ${ratios.msP50}x p99 ${ratios.msP99}x max ${ratios.msMax}x; SET_IFs a save ${ratios.setIfsMean}x`);
      console.log(`load average ${load.start.toFixed(1)} at the start, ${load.end.toFixed(1)} at the end`);
    }
  } finally {
    stopping = true;
    for (const lib of libs) for (const c of lib.children || []) c.send({ stop: true });
    await client.close();
    await relay.close();
    await daemon.cleanup();
  }
}
