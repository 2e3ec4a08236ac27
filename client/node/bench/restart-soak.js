#!/usr/bin/env node
'use strict';
// What users see of a restart of sessd: three app "workers" (three stores and Express apps in
// this process, each its own pool) serve logged-in users who load a page and add to a list in
// the session, one request after another, while sessd (with --data-dir) is restarted twice: a
// deploy (SIGTERM, the new sessd started ~300 ms after the old one exited) and a crash
// (SIGKILL, started again 1 s later, as systemd's RestartSec=1s does). Prints, for each, the
// answers by status in the seconds after it, the slowest 200, the stores' 'disconnect' events,
// and at the end the adds answered 200 that the sessions lost.
//
//   node bench/restart-soak.js [--users 30] [--pkg DIR] [--data DIR]
//
// --data: start sessd on this data directory instead of an empty one, e.g. one that
// bench/restart --data filled with a million sessions, to see what a large store's
// restart costs (it is written to: the users' sessions go in a namespace of their own). Each
// restart's window then lasts until the users are served again, and its line says the
// downtime: from the first request that failed to the first served again after it.
//
// --pkg: the connect-sessd package to run (default this one), e.g. an older checkout's
// client/node, to compare. SESSD_BIN as for the tests (default ../../build/daemon/sessd).

const http = require('http');
const path = require('path');
const express = require('express');
const session = require('express-session');
const { Daemon, listen, closeServer, sleep } = require('../test/helpers');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : def;
}
const USERS = Number(arg('users', 30));
const PKG = path.resolve(arg('pkg', path.join(__dirname, '..')));
const DATA = arg('data', null);
// After a long start, how long a window goes on past the ready file: the pools retry at most
// reconnectMaxMs (2 s) apart.
const BACK_MS = 3000;
const { SessdStore } = require(PKG);

function makeApp(store) {
  const app = express();
  app.use(session({ store, secret: 'soak', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use((req, res, next) => (req.session ? next() : res.status(503).send('no session')));
  app.post('/login', (req, res) => {
    req.session.user = req.query.u;
    req.session.added = [];
    res.json({ ok: true });
  });
  app.get('/page', (req, res) => res.status(req.session.user ? 200 : 401).json(req.session.added || []));
  app.post('/add', (req, res) => {
    req.session.added = (req.session.added || []).concat([Number(req.query.n)]);
    res.json({ ok: true });
  });
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    return res.status(err.statusCode || 500).json({ code: err.code || null });
  });
  return app;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// request(base, method, p, cookie): { status, body, cookie }.
function request(base, method, p, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(p, base), { method, agent, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        const set = res.headers['set-cookie'];
        resolve({ status: res.statusCode, body, cookie: set ? set[0].split(';')[0] : cookie });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function main() {
  // A large store takes a minute or more to load (sessd(8)).
  const d = new Daemon(DATA ? { readyMs: 600000 } : {});
  d.extraArgs = ['--data-dir', DATA ? path.resolve(DATA) : path.join(d.dir, 'data')];
  await d.start();
  const apps = [];
  const disconnects = [];
  for (let i = 0; i < 3; i++) {
    const store = new SessdStore({ url: d.unixUrl, namespace: 'soak' });
    await store.client.ready();
    store.on('disconnect', (err) => disconnects.push({ at: Date.now(), worker: i, code: err && err.code }));
    const { server, base } = await listen(makeApp(store));
    apps.push({ store, server, base });
  }
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const base = apps[i % 3].base;
    const r = await request(base, 'POST', `/login?u=u${i}`);
    users.push({ base, cookie: r.cookie, acknowledged: [] });
  }

  const answers = []; // { at, status, ms }
  let running = true;
  const loop = async (u) => {
    for (let n = 0; running; n++) {
      const t0 = Date.now();
      let r;
      try {
        r = n % 2 ? await request(u.base, 'POST', `/add?n=${n}`, u.cookie) : await request(u.base, 'GET', '/page', u.cookie);
      } catch (err) {
        answers.push({ at: t0, status: err.code, ms: Date.now() - t0 });
        continue;
      }
      answers.push({ at: t0, status: r.status, ms: Date.now() - t0 });
      if (n % 2 && r.status === 200) u.acknowledged.push(n);
      // A 503 comes back at once: pace the retries as a browser's user would, not in a spin.
      if (r.status === 503) await sleep(10);
    }
  };
  const load = users.map(loop);

  const events = [];
  await sleep(1500);
  let at = Date.now();
  await d.stop('SIGTERM');
  await sleep(300);
  await d.start();
  events.push({ name: 'SIGTERM, started again 300 ms after the exit', at, until: Math.max(at + 2500, Date.now() + BACK_MS) });
  await sleep(events[events.length - 1].until - Date.now());
  at = Date.now();
  await d.stop('SIGKILL');
  await sleep(1000);
  await d.start();
  events.push({ name: 'SIGKILL, started again 1 s later', at, until: Math.max(at + 3500, Date.now() + BACK_MS) });
  await sleep(events[events.length - 1].until - Date.now());
  running = false;
  await Promise.all(load);

  const steady = answers.filter((a) => a.at < events[0].at);
  console.log(`connect-sessd at ${PKG}; ${USERS} users on 3 workers; ${Math.round(steady.length / ((events[0].at - steady[0].at) / 1000))} requests/s before the restarts`);
  for (const e of events) {
    const inside = answers.filter((a) => a.at >= e.at && a.at < e.until);
    const by = {};
    for (const a of inside) by[a.status] = (by[a.status] || 0) + 1;
    const slowest = Math.max(0, ...inside.filter((a) => a.status === 200).map((a) => a.ms));
    const said = disconnects.filter((x) => x.at >= e.at && x.at < e.until).map((x) => `worker ${x.worker}: ${x.code}`);
    console.log(`${e.name}: ${JSON.stringify(by)} in the next ${(e.until - e.at) / 1000} s; slowest 200 ${slowest} ms; disconnect events: ${said.length ? said.join(', ') : 'none'}`);
    const failed = inside.filter((a) => a.status !== 200);
    if (failed.length) {
      const first = Math.min(...failed.map((a) => a.at));
      const back = inside.filter((a) => a.status === 200 && a.at > first).map((a) => a.at + a.ms);
      console.log(`  downtime: ${back.length ? ((Math.min(...back) - first) / 1000).toFixed(2) + ' s' : 'not served again in the window'} from the first failed request; ${failed.length} failed`);
    }
  }
  let lost = 0;
  for (const u of users) {
    let r = await request(u.base, 'GET', '/page', u.cookie);
    // A pool still backing off answers 503: not a loss. Ask again for a few seconds.
    for (let i = 0; i < 50 && r.status === 503; i++) {
      await sleep(100);
      r = await request(u.base, 'GET', '/page', u.cookie);
    }
    const saved = new Set(r.status === 200 ? JSON.parse(r.body) : []);
    lost += u.acknowledged.filter((n) => !saved.has(n)).length;
  }
  console.log(`adds answered 200: ${users.reduce((k, u) => k + u.acknowledged.length, 0)}, lost: ${lost}`);
  for (const a of apps) {
    await closeServer(a.server);
    a.store.close();
  }
  agent.destroy();
  await d.cleanup();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
