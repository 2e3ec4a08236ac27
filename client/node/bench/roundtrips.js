#!/usr/bin/env node
'use strict';
// Round trips and latency per action, one request at a time, of this checkout's connect-sessd
// beside another's (--versus DIR: its client/node, e.g. a worktree of main), both apps in this
// process on one private sessd over its Unix socket, each with its own visitor. The actions
// alternate between the two apps one by one (which goes first alternates too), so that a burst
// of noise on a shared machine hits both alike. An action's round trips are those it waited
// for one after another: each request to sessd counts 1 + the deepest reply the action had
// received when it was sent (the connections' request() wrapped, as bench/page-flash.js does).
// Prints each action's median and p90 in ms for both, the ratio of medians, the median CPU
// of this process (the app and its HTTP client, one request at a time) per action, and round
// trips (the median action's, the most in parentheses).
// --delay-ms N puts a relay between the apps and sessd that holds each of sessd's replies N ms,
// as a store on another host would (over the local Unix socket a round trip is some 60 us,
// lost in the noise of a shared machine).
//
//   node bench/roundtrips.js --versus /tmp/base/client/node [--rounds 300] [--warmup 30] [--delay-ms 1]
//
// SESSD_BIN as for the tests (default ../../build/daemon/sessd).

const path = require('path');
const http = require('http');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : def;
}
const ROUNDS = Number(arg('rounds', 300));
const WARMUP = Number(arg('warmup', 30));
const VERSUS = arg('versus', null);
const DELAY_MS = Number(arg('delay-ms', 0));
if (!VERSUS) {
  console.error('usage: node bench/roundtrips.js --versus DIR [--rounds N] [--warmup N]');
  process.exit(2);
}

const here = path.resolve(__dirname, '..');
const express = require('express');
const session = require('express-session');
const { Passport } = require('passport');
const { Strategy } = require('passport-local');
const { Daemon, listen, closeServer } = require('../test/helpers');
const { waveRelay } = require('../test/waverelay');

async function startApp(dir, url, name) {
  const { SessdStore, flash, codec } = require(path.resolve(dir));
  const opName = Object.fromEntries(Object.entries(codec.OP).map(([k, v]) => [v, k]));
  const store = new SessdStore({ url, namespace: `rt-${name}` });
  await store.client.ready();
  const app = { name, store, cur: null, times: {}, cpu: {}, depth: {}, ops: {} };
  for (const slot of store.client.slots) {
    const request = slot.conn.request.bind(slot.conn);
    slot.conn.request = (op, ...rest) => {
      const p = request(op, ...rest);
      const c = app.cur;
      if (c) {
        const d = c.maxDone + 1;
        c.ops.push(opName[op]);
        const done = () => {
          if (d > c.maxDone) c.maxDone = d;
        };
        p.then(done, done);
      }
      return p;
    };
  }
  const passport = new Passport();
  passport.use(new Strategy((u, p, done) => done(null, { id: u })));
  passport.serializeUser((u, done) => done(null, u.id));
  passport.deserializeUser((id, done) => done(null, { id }));
  const ex = express();
  ex.use(express.urlencoded({ extended: false }));
  ex.use(session({ store, secret: 'bench', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  ex.use(flash());
  ex.use(passport.initialize());
  ex.use(passport.session());
  ex.get('/', flash.locals(), (req, res) => {
    const msgs = Object.values(res.locals.flash).flat();
    res.send(`${msgs.map((m) => `<p>${m}</p>`).join('')}<p>${(req.session.cart || []).length} items</p>`);
  });
  ex.post('/login', passport.authenticate('local', { successRedirect: '/', failureRedirect: '/', successFlash: 'Welcome' }));
  ex.post('/cart', (req, res) => {
    req.session.cart = [...(req.session.cart || []).slice(-20), req.body.item];
    req.flash('info', `Added ${req.body.item}`);
    res.redirect(303, '/');
  });
  ex.post('/form', (req, res) => {
    req.flash('error', 'Bad email');
    res.redirect(303, '/');
  });
  ex.post('/logout', (req, res, next) => req.logout((err) => {
    if (err) return next(err);
    req.flash('info', 'Signed out');
    return res.redirect(303, '/');
  }));
  const { server, base } = await listen(ex);
  app.server = server;
  app.base = base;
  app.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  app.cookie = null;
  return app;
}

function request(app, method, p, form) {
  const body = form ? new URLSearchParams(form).toString() : null;
  const headers = {};
  if (app.cookie) headers.cookie = app.cookie;
  if (body) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(app.base + p, { method, headers, agent: app.agent }, (res) => {
      for (const c of res.headers['set-cookie'] || []) app.cookie = c.split(';')[0];
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// The actions, in the order a visitor makes them; each is measured on its own.
const ACTIONS = [
  ['login', (app) => request(app, 'POST', '/login', { username: 'ann', password: 'pw' })],
  ['page showing a flash', (app) => request(app, 'GET', '/')],
  ['page view', (app) => request(app, 'GET', '/')],
  ['cart add', (app) => request(app, 'POST', '/cart', { item: 'pear' })],
  ['page showing a flash', (app) => request(app, 'GET', '/')],
  ['form error', (app) => request(app, 'POST', '/form', {})],
  ['page showing a flash', (app) => request(app, 'GET', '/')],
  ['logout', (app) => request(app, 'POST', '/logout', {})],
  ['page showing a flash', (app) => request(app, 'GET', '/')],
];

async function timed(app, name, fn, keep) {
  app.cur = { ops: [], maxDone: 0 };
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const status = await fn(app);
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  // Let a touch the response did not wait for land before the next action.
  await new Promise((resolve) => setImmediate(resolve));
  const c = app.cur;
  app.cur = null;
  if (status >= 400) throw new Error(`${app.name} ${name}: ${status}`);
  if (!keep) return;
  (app.times[name] = app.times[name] || []).push(us);
  (app.cpu[name] = app.cpu[name] || []).push(cpu.user + cpu.system);
  (app.depth[name] = app.depth[name] || []).push(c.maxDone);
  app.ops[name] = c.ops.join(' ');
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

async function main() {
  const daemon = await new Daemon().start();
  const relay = DELAY_MS > 0 ? await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), DELAY_MS) : null;
  const url = relay ? relay.url : daemon.unixUrl;
  const apps = [await startApp(here, url, 'this'), await startApp(VERSUS, url, 'versus')];
  try {
    for (let round = 0; round < WARMUP + ROUNDS; round++) {
      for (const [name, fn] of ACTIONS) {
        const order = round % 2 ? [1, 0] : [0, 1];
        for (const k of order) await timed(apps[k], name, fn, round >= WARMUP);
      }
    }
    const names = [...new Set(ACTIONS.map(([n]) => n))];
    console.log(`${'action'.padEnd(22)} ${'this p50/p90 ms'.padEnd(17)} ${'versus p50/p90 ms'.padEnd(19)} p50 ratio  cpu us this/versus  round trips this / versus`);
    for (const n of names) {
      const [a, b] = apps.map((app) => [...app.times[n]].sort((x, y) => x - y));
      // The median action's; the most any took in parentheses (a loaded machine can be slower
      // to send the second request than sessd is to answer the first).
      const [da, db] = apps.map((app) => {
        const d = [...app.depth[n]].sort((x, y) => x - y);
        return `${pct(d, 0.5)} (${d[d.length - 1]})`;
      });
      const f = (s) => `${(pct(s, 0.5) / 1000).toFixed(3)}/${(pct(s, 0.9) / 1000).toFixed(3)}`;
      const [ca, cb] = apps.map((app) => pct([...app.cpu[n]].sort((x, y) => x - y), 0.5));
      console.log(`${n.padEnd(22)} ${f(a).padEnd(17)} ${f(b).padEnd(19)} ${(pct(a, 0.5) / pct(b, 0.5)).toFixed(2)}x      ${`${ca}/${cb}`.padEnd(17)} ${da} / ${db}   (${apps[0].ops[n]} / ${apps[1].ops[n]})`);
    }
  } finally {
    for (const app of apps) {
      app.agent.destroy();
      await closeServer(app.server);
      app.store.close();
    }
    if (relay) relay.close();
    await daemon.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
