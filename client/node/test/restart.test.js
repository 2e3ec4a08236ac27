'use strict';
// A planned restart of sessd (SIGTERM, as every deploy does) under a steady stream of requests
// from an Express app: the daemon ends each connection with SHUTTING_DOWN after the replies to
// what it carried out (PROTOCOL.md "Statuses"), so the requests still waiting were not carried
// out. The pool sends each once more on another ready connection, else fails it as during an
// outage (ESESSD_DISCONNECTED, status 503). The app's users see 200, or 503 while sessd is
// away, never a 500.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, Client } = require('..');
const { Daemon, Browser, listen, closeServer, waitFor, sleep, once } = require('./helpers');

const USERS = 24;
const RESTARTS = 3;

// The shape of the operator's shop: login, session saves, flash pushes and pops, and the
// "no session: 503" guard of the README. The error handler answers err.statusCode (the README's
// advice; Express's own handler does the same).
function makeApp(store) {
  const app = express();
  app.lateErrors = [];
  app.use(session({ store, secret: 'restart-test', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.use((req, res, next) => (req.session ? next() : res.status(503).send('no session')));
  const save = (req) => new Promise((ok, ko) => req.session.save((e) => (e ? ko(e) : ok())));
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res)).catch(next);
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.query.u;
      req.session.items = [];
      save(req).then(() => res.json({ ok: true }), next);
      return undefined;
    });
  });
  app.post('/inc', wrap(async (req, res) => {
    if (!req.session.user) return res.status(401).send('not logged in');
    req.session.items = (req.session.items || []).concat([Number(req.query.n)]);
    await save(req);
    return res.json({ ok: true });
  }));
  // As most apps write it: change the session and answer, leaving the save to
  // express-session, which sends the answer before its save completes.
  app.post('/add', (req, res) => {
    if (!req.session.user) return res.status(401).send('not logged in');
    req.session.added = (req.session.added || []).concat([Number(req.query.n)]);
    return res.json({ ok: true });
  });
  app.get('/added', (req, res) => res.status(req.session.user ? 200 : 401).json(req.session.added || []));
  app.post('/flash', wrap(async (req, res) => {
    if (!req.session.user) return res.status(401).send('not logged in');
    return res.json({ n: await req.flash('info', req.query.m) });
  }));
  app.get('/flash', wrap(async (req, res) => res.json(await req.flash('info'))));
  app.get('/state', (req, res) => res.status(req.session.user ? 200 : 401).json({ user: req.session.user || null }));
  app.use((err, req, res, next) => {
    if (res.headersSent) {
      // A save failed after express-session had sent the response: a change answered 200
      // and lost. Kept for the assertion's message.
      app.lateErrors.push(`${req.method} ${req.url}: ${err.code} ${err.message}`);
      return next(err);
    }
    return res.status(err.statusCode || 500).json({ code: err.code || null, message: err.message });
  });
  return app;
}

// restartUnderLoad(t, sealed): the daemon (with --data-dir; sealed: with --auth-file, the
// store sealing its connections) restarted RESTARTS times with SIGTERM while USERS logged-in
// users keep making requests; every answer must be a 200 or a 503.
async function restartUnderLoad(t, sealed) {
  const d = new Daemon();
  const secret = 'restart-test-secret-0123456789';
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  if (sealed) d.extraArgs.push('--auth-file', d.writeSecret(secret + '\n'));
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'restart', reconnectMinMs: 20, reconnectMaxMs: 200, auth: sealed ? secret : undefined });
  const app = makeApp(store);
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  await once(store, 'connect');

  const users = [];
  for (let i = 0; i < USERS; i++) {
    const br = new Browser(base);
    assert.equal((await br.post(`/login?u=u${i}`)).status, 200);
    users.push(br);
  }

  const counts = new Map();
  const failures = [];
  const acknowledged = users.map(() => []);
  let running = true;
  async function user(br, i) {
    for (let n = 0; running; n++) {
      const step = n % 5;
      let r;
      try {
        if (step === 0) r = await br.post(`/inc?n=${n}`);
        else if (step === 1) r = await br.post(`/flash?m=m${n}`);
        else if (step === 2) r = await br.get('/flash');
        else if (step === 3) {
          r = await br.post(`/add?n=${n}`);
          if (r.status === 200) acknowledged[i].push(n);
        } else r = await br.get('/state');
      } catch (err) {
        failures.push(`user ${i}: ${err.code || err.message}`);
        continue;
      }
      counts.set(r.status, (counts.get(r.status) || 0) + 1);
      if (r.status !== 200 && r.status !== 503) failures.push(`user ${i} step ${step}: ${r.status} ${r.body}`);
    }
  }
  const load = users.map((br, i) => user(br, i));

  await sleep(700);
  for (let k = 0; k < RESTARTS; k++) {
    const before = counts.get(200) || 0;
    await d.stop('SIGTERM');
    await sleep(300);
    await d.start();
    // The app serves again by itself once the pool has reconnected.
    await waitFor(() => (counts.get(200) || 0) > before + 4 * USERS, 'pages served after the restart');
  }
  await sleep(300);
  running = false;
  await Promise.all(load);

  const summary = JSON.stringify(Object.fromEntries(counts));
  t.diagnostic(`statuses ${summary}`);
  assert.deepEqual(failures.slice(0, 10), [], `statuses ${summary}`);
  // Every change answered 200 was saved: one whose save a restarting daemon did not carry
  // out waited for the pool to reconnect instead of failing after the answer had gone out.
  const lost = [];
  for (let i = 0; i < USERS; i++) {
    const r = await users[i].get('/added');
    assert.equal(r.status, 200, r.body);
    const saved = new Set(JSON.parse(r.body));
    for (const n of acknowledged[i]) if (!saved.has(n)) lost.push(`user ${i}: ${n}`);
  }
  assert.deepEqual(lost, [], `${lost.length} acknowledged changes lost; late errors: ${app.lateErrors.join(' | ')}`);
  assert.ok((counts.get(200) || 0) > 0, summary);
}

test('SIGTERM restarts of sessd under load: users get 200 or 503, never 500', { timeout: 120000 }, (t) => restartUnderLoad(t, false));

test('SIGTERM restarts of sessd under load, sealed connections: 200 or 503, never 500', { timeout: 120000 }, (t) => restartUnderLoad(t, true));

// The pool sends a request that was not carried out once more, on another ready connection:
// a stopping daemon (SHUTTING_DOWN) in front of a pool whose other connection is fine. Played
// by a fake peer that answers HELLO on every connection, then, on the first connection to
// receive a GET, answers SHUTTING_DOWN instead.
test('a request not carried out (SHUTTING_DOWN) is sent again on another connection, within restartWaitMs', async (t) => {
  const codec = require('../lib/codec');
  const { encode } = require('@msgpack/msgpack');
  const { fakePeer } = require('./helpers');
  const reply = (s, id, status, result) => s.write(codec.encodeReply(id, status, Buffer.from(encode(result))));
  // stoppingPeer(saysBye): the fake peer; a GET on a socket for which saysBye(socket) holds is
  // answered SHUTTING_DOWN, any other NOT_FOUND. Its gets count the GETs.
  const stoppingPeer = async (saysBye) => {
    const peer = { sock: null, gets: 0 };
    ({ sockPath: peer.sock } = await fakePeer(t, (s, req) => {
      if (req.op === codec.OP.HELLO) return reply(s, req.request_id, codec.STATUS.OK, { version: 1, max_frame: 1048576, server_id: '0'.repeat(32) });
      if (req.op !== codec.OP.GET) return reply(s, req.request_id, codec.STATUS.OK, null);
      peer.gets++;
      if (saysBye(s)) return reply(s, 0, codec.STATUS.SHUTTING_DOWN, 'stopping');
      return reply(s, req.request_id, codec.STATUS.NOT_FOUND, null);
    }));
    return peer;
  };
  let stopped = null;
  const peer = await stoppingPeer((s) => {
    if (stopped !== null && stopped !== s) return false;
    stopped = s;
    return true;
  });
  const sock = peer.sock;
  const client = new Client({ url: `unix:${sock}`, poolSize: 2, reconnectMinMs: 5000 });
  t.after(() => client.terminate());
  await waitFor(() => client.slots.every((s) => s.conn && s.conn.state === 'ready'), 'both connections ready');
  assert.equal(await client.get(null, 'a'), null, 'answered by the other connection');
  assert.equal(peer.gets, 2);

  // With no other ready connection it waits for the pool to reconnect (the daemon is
  // restarting) and goes out there: a save failed at once would lose a change express-session
  // already announced (its redirect leaves before the save completes).
  stopped = null;
  peer.gets = 0;
  const waits = new Client({ url: `unix:${sock}`, poolSize: 1, reconnectMinMs: 20 });
  t.after(() => waits.terminate());
  await once(waits, 'connect');
  assert.equal(await waits.get(null, 'c'), null, 'answered once the pool reconnected');
  assert.equal(peer.gets, 2);

  // With restartWaitMs 0 (or nothing ready in time) it fails as an outage does, not carried out.
  stopped = null;
  peer.gets = 0;
  const only = new Client({ url: `unix:${sock}`, poolSize: 1, reconnectMinMs: 5000, restartWaitMs: 0 });
  t.after(() => only.terminate());
  await once(only, 'connect');
  await assert.rejects(only.get(null, 'b'), (err) => err.code === 'ESESSD_DISCONNECTED' && err.status === 503 && err.notCarriedOut === true);
  assert.equal(peer.gets, 1);

  // The stop reaches the pool's connections one by one: the request sent again may land on
  // a connection saying SHUTTING_DOWN as well. Within restartWaitMs it goes out again, once
  // the pool has reconnected (a CI run lost an acknowledged cart add to this).
  const byeSockets = new Set();
  const peer2 = await stoppingPeer((s) => {
    if (byeSockets.size >= 2 && !byeSockets.has(s)) return false;
    byeSockets.add(s);
    return true;
  });
  const twice = new Client({ url: `unix:${peer2.sock}`, poolSize: 2, reconnectMinMs: 20 });
  t.after(() => twice.terminate());
  await waitFor(() => twice.slots.every((s) => s.conn && s.conn.state === 'ready'), 'both connections ready');
  assert.equal(await twice.get(null, 'e'), null, 'answered after two SHUTTING_DOWNs');
  assert.equal(peer2.gets, 3);

  // Nothing ready within restartWaitMs: the same 503.
  stopped = null;
  peer.gets = 0;
  const late = new Client({ url: `unix:${sock}`, poolSize: 1, reconnectMinMs: 60000, restartWaitMs: 100 });
  t.after(() => late.terminate());
  await once(late, 'connect');
  await assert.rejects(late.get(null, 'd'), (err) => err.code === 'ESESSD_DISCONNECTED' && err.status === 503 && err.notCarriedOut === true);
  assert.equal(peer.gets, 1);
});

// A stopping daemon says SHUTTING_DOWN (request id 0) to idle connections too: the pool's
// 'disconnect' must carry that goodbye, not a "reply without a request" protocol error
// (operators alert on ESESSD_PROTOCOL), plain and sealed.
for (const sealed of [false, true]) {
  test(`SIGTERM with idle connections: 'disconnect' says SHUTTING_DOWN, not a protocol error${sealed ? ' (sealed)' : ''}`, async (t) => {
    const d = new Daemon();
    const secret = 'idle-goodbye-secret-0123456789';
    if (sealed) d.extraArgs.push('--auth-file', d.writeSecret(secret + '\n'));
    await d.start();
    t.after(() => d.cleanup());
    const store = new SessdStore({ url: d.unixUrl, namespace: 'idle-bye', poolSize: 2, reconnectMinMs: 60000, auth: sealed ? secret : undefined });
    t.after(() => store.client.terminate());
    await store.set('abc', { cookie: {}, a: 1 });
    await waitFor(() => store.client.slots.every((s) => s.conn && s.conn.state === 'ready' && s.conn.pendingCount === 0), 'both connections ready and idle');
    const closes = [];
    for (const s of store.client.slots) s.conn.on('close', (err) => closes.push(err));
    const disconnected = once(store, 'disconnect');
    await d.stop('SIGTERM');
    const err = await disconnected;
    assert.equal(err.code, 'ESESSD_SHUTTING_DOWN', err.message);
    await waitFor(() => closes.length === 2, 'both connections closed');
    for (const e of closes) assert.notEqual(e.code, 'ESESSD_PROTOCOL', e.message);
  });
}
