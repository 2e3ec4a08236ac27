#!/usr/bin/env node
'use strict';
// Latency of a page view with flash.locals() and nothing queued, one request at a time:
// "load" (the store reads the session with LOAD, so the empty pop costs no round trip) beside
// "get+pop" (the store's connections marked as lacking LOAD, as against a daemon older than
// it: GET, then FLASH_POP, as every page did before LOAD). Both apps run in this process on
// one private sessd over its Unix socket, each its own logged-in user over a keep-alive
// connection. Requests alternate between the two apps one by one (on a shared, loaded machine
// a burst of noise then hits both alike). Prints the median, p90 and p99 of each, the median
// of the paired differences, and the sessd requests each page made.
//
//   node bench/page-flash.js [--requests 1000] [--warmup 100]
//
// SESSD_BIN as for the tests (default ../../build/daemon/sessd).

const http = require('http');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, codec } = require('..');
const { Daemon, listen, closeServer } = require('../test/helpers');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const REQUESTS = arg('requests', 1000);
const WARMUP = arg('warmup', 100);

async function startApp(url, lacksLoad) {
  const store = new SessdStore({ url, namespace: lacksLoad ? 'bench-get-pop' : 'bench-load' });
  await store.client.ready();
  const ops = [];
  for (const slot of store.client.slots) {
    const request = slot.conn.request.bind(slot.conn);
    slot.conn.request = (op, ...rest) => {
      ops.push(op);
      return request(op, ...rest);
    };
  }
  // What requestNewer() remembers after an UNKNOWN_OP: LOAD is then a GET, without asking.
  if (lacksLoad) for (const slot of store.client.slots) slot.conn.lacksLoad = true;
  const app = express();
  app.use(session({ store, secret: 'bench', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.get('/login', (req, res) => {
    req.session.user = 'ann';
    res.send('ok');
  });
  app.get('/', flash.locals(), (req, res) => {
    const msgs = Object.values(res.locals.flash).flat();
    res.send(`${msgs.map((m) => `<p>${m}</p>`).join('')}<p>Hello ${req.session.user}</p>`);
  });
  const { server, base } = await listen(app);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const login = await get(base + '/login', agent, null);
  const cookie = login.headers['set-cookie'][0].split(';')[0];
  return { store, server, base, agent, cookie, lacksLoad, ops, times: [] };
}

function get(url, agent, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: cookie ? { cookie } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
  });
}

// view(app): one page view; its time in microseconds.
async function view(app) {
  const t0 = process.hrtime.bigint();
  const res = await get(app.base + '/', app.agent, app.cookie);
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  return us;
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main() {
  const daemon = await new Daemon().start();
  const apps = [await startApp(daemon.unixUrl, false), await startApp(daemon.unixUrl, true)];
  try {
    for (let i = 0; i < WARMUP; i++) for (const app of apps) await view(app);
    for (const app of apps) app.ops.length = 0;
    const diffs = [];
    for (let i = 0; i < REQUESTS; i++) {
      // Which goes first alternates too.
      const order = i % 2 ? [1, 0] : [0, 1];
      for (const k of order) apps[k].times.push(await view(apps[k]));
      diffs.push(apps[0].times[i] - apps[1].times[i]);
    }
    const out = apps.map((app) => {
      const s = [...app.times].sort((a, b) => a - b);
      const perPage = {};
      for (const op of app.ops) {
        const name = Object.keys(codec.OP).find((k) => codec.OP[k] === op);
        perPage[name] = (perPage[name] || 0) + 1 / REQUESTS;
      }
      return { name: app.lacksLoad ? 'get+pop' : 'load', n: s.length, p50: pct(s, 0.5), p90: pct(s, 0.9), p99: pct(s, 0.99), perPage };
    });
    for (const o of out) {
      const per = Object.entries(o.perPage).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
      console.log(`${o.name.padEnd(8)} n=${o.n}  p50 ${(o.p50 / 1000).toFixed(3)} ms  p90 ${(o.p90 / 1000).toFixed(3)} ms  p99 ${(o.p99 / 1000).toFixed(3)} ms  per page: ${per}`);
    }
    const d = diffs.sort((a, b) => a - b);
    console.log(`load / get+pop: p50 ${(out[0].p50 / out[1].p50).toFixed(2)}x, p90 ${(out[0].p90 / out[1].p90).toFixed(2)}x; ` +
      `median paired difference ${(pct(d, 0.5) / 1000).toFixed(3)} ms`);
    const lacks = apps.map((a) => a.store.client.lacksLoad);
    if (lacks[0] !== false) throw new Error('the daemon does not know LOAD: the "load" app fell back to GET');
    if (lacks[1] === false) throw new Error('the "get+pop" app used LOAD');
  } finally {
    for (const app of apps) {
      app.agent.destroy();
      await closeServer(app.server);
      app.store.close();
    }
    await daemon.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
