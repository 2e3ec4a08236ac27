'use strict';
// A planned restart of sessd (SIGTERM, as every deploy does) under a steady stream of requests
// from an Express app: the daemon ends each connection with SHUTTING_DOWN after the replies to
// what it carried out (PROTOCOL.md "Statuses"), so the requests still waiting were not carried
// out. The pool sends each once more on another ready connection, else once it has
// reconnected; requests made while it reconnects wait for it, reads too, within restartWaitMs
// of the loss, and the store says nothing to express-session unless that passes. A restart
// that is back within restartWaitMs costs the app's users latency, not errors: only 200s.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, Client } = require('..');
const { Daemon, sealedDaemon, Browser, listen, closeServer, waitFor, waitWhileProgressing, sleep, settledThisTurn, once, countCalls } = require('./helpers');

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
// store sealing its connections) restarted RESTARTS times with SIGTERM, each back ~300 ms after
// it exited, while USERS logged-in users keep making requests; every answer must be a 200 (a
// 503 was the rule before the pool waited for a restart: 0.1-0.5 s of them per restart).
async function restartUnderLoad(t, sealed) {
  const d = new Daemon();
  const secret = 'restart-test-secret-0123456789';
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  if (sealed) d.extraArgs.push('--auth-file', d.writeSecret(secret + '\n'));
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'restart', reconnectMinMs: 20, reconnectMaxMs: 200, auth: sealed ? secret : undefined });
  const { app, base } = await serve(t, store);

  const users = [];
  for (let i = 0; i < USERS; i++) {
    const br = new Browser(base);
    assert.equal((await br.post(`/login?u=u${i}`)).status, 200);
    users.push(br);
  }

  const counts = new Map();
  // The restart after which each user last had a 200 (0: the first daemon).
  const servedAfter = users.map(() => 0);
  let restarted = 0;
  const failures = [];
  const acknowledged = users.map(() => []);
  const events = [];
  store.on('disconnect', (err) => events.push(`disconnect ${err && err.code}`));
  store.on('connect', () => events.push('connect'));
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
      if (r.status === 200) servedAfter[i] = restarted;
      if (r.status !== 200) failures.push(`user ${i} step ${step}: ${r.status} ${r.body}`);
    }
  }
  const load = users.map((br, i) => user(br, i));

  try {
    await sleep(700);
    for (let k = 1; k <= RESTARTS; k++) {
      await d.stop('SIGTERM');
      await sleep(300);
      await d.start();
      restarted = k;
      // The app serves every user again by itself once the pool has reconnected: each has had
      // a 200 since sessd was back. Waited for as long as pages keep coming: a loaded machine
      // serves them slowly (4-5 a second at load 41-57), and 4 x USERS pages in 15 s, the wait
      // until stop 56, failed there above load 35; a pool that never reconnects serves none.
      await waitWhileProgressing(() => servedAfter.every((r) => r === k), () => counts.get(200) || 0,
        () => `every user served after restart ${k} (${servedAfter.filter((r) => r === k).length} of ${USERS} so far)`);
    }
    await sleep(300);
  } finally {
    // Failed or not, the users stop, or they keep the file's process alive (crash.test.js).
    running = false;
    await Promise.all(load);
  }

  const summary = JSON.stringify(Object.fromEntries(counts));
  t.diagnostic(`statuses ${summary}; events ${JSON.stringify(events)}`);
  assert.deepEqual(failures.slice(0, 10), [], `statuses ${summary}`);
  // express-session was never told the store was down: it never served a request without
  // a session.
  assert.deepEqual(events, []);
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

test('SIGTERM restarts of sessd under load: users get only 200s, and every change answered 200 is kept', { timeout: 120000 }, (t) => restartUnderLoad(t, false));

test('SIGTERM restarts of sessd under load, sealed connections: only 200s', { timeout: 120000 }, (t) => restartUnderLoad(t, true));

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
    // restartWaitMs 0: 'disconnect' at once, with the goodbye (after a reconnecting window it
    // would carry the last failed attempt's error).
    const store = new SessdStore({ url: d.unixUrl, namespace: 'idle-bye', poolSize: 2, reconnectMinMs: 60000, restartWaitMs: 0, auth: sealed ? secret : undefined });
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

// settle(promise): { ok, value } or { ok: false, err }, and when it settled (ms).
function settle(promise) {
  return promise.then((value) => ({ ok: true, value, at: Date.now() }), (err) => ({ ok: false, err, at: Date.now() }));
}

// serve(t, store): { app, base }: the app of makeApp on store, listening once the store has
// connected; the server and the store closed after t.
async function serve(t, store) {
  const app = makeApp(store);
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  await once(store, 'connect');
  return { app, base };
}

// loggedIn(t, store): the app of makeApp on store, listening, and a browser logged in to it.
async function loggedIn(t, store) {
  const br = new Browser((await serve(t, store)).base);
  assert.equal((await br.post('/login?u=ann')).status, 200);
  return br;
}

test('sessd down longer than restartWaitMs: one disconnect when the window ends, the waiting requests fail with 503, later ones at once', async (t) => {
  const d = new Daemon();
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  await d.start();
  t.after(() => d.cleanup());
  // The window is long enough for the page below to reach the app within it on a loaded machine:
  // 300 ms, until stop 56, was not at load 50, and the page found the store down already
  // (503 "no session", not the store's ESESSD_DISCONNECTED).
  const WAIT_MS = 2000;
  const store = new SessdStore({ url: d.unixUrl, namespace: 'long', restartWaitMs: WAIT_MS, reconnectMinMs: 20, reconnectMaxMs: 100 });
  const br = await loggedIn(t, store);
  const events = [];
  store.on('disconnect', (err) => events.push({ name: 'disconnect', code: err && err.code, at: Date.now() }));
  store.on('connect', () => events.push({ name: 'connect', at: Date.now() }));

  const stopped = Date.now();
  await d.stop('SIGKILL');
  await waitFor(() => store.client.reconnecting, 'the reconnecting window');
  assert.equal(store.connected, true, 'nothing said yet');
  // A page and a read made in the window wait for it to end, then fail as an outage.
  const page = settle(br.get('/state'));
  const read = settle(store.get('nobody'));
  const change = settle(store.client.set('long', 'x', 'v', 60000));
  const p = await page;
  assert.ok(p.ok, p.err && p.err.message);
  assert.equal(p.value.status, 503, p.value.body);
  assert.equal(JSON.parse(p.value.body).code, 'ESESSD_DISCONNECTED');
  for (const r of [await read, await change]) {
    assert.ok(!r.ok && r.err.code === 'ESESSD_DISCONNECTED' && r.err.statusCode === 503 && r.err.notCarriedOut === true, r.err && r.err.message);
  }
  assert.deepEqual(events.map((e) => e.name), ['disconnect']);
  const waited = events[0].at - stopped;
  assert.ok(waited >= WAIT_MS - 20 && waited < WAIT_MS + 1700, `disconnect ${waited} ms after the kill`);
  assert.ok(['ECONNREFUSED', 'ENOENT', 'ECONNRESET'].includes(events[0].code), events[0].code);
  assert.equal(store.connected, false);
  assert.equal(store.client.reconnecting, false);

  // Down: requests fail at once, and express-session serves pages without a session.
  const refused = [store.get('nobody'), store.client.set('long', 'x', 'v', 60000)];
  assert.ok(await settledThisTurn(refused), 'failed at once, not after a timer or an attempt');
  await assert.rejects(refused[0], (err) => err.code === 'ESESSD_DISCONNECTED' && err.statusCode === 503);
  await assert.rejects(refused[1], (err) => err.code === 'ESESSD_DISCONNECTED');
  const down = await br.get('/state');
  assert.equal(down.status, 503);
  assert.equal(down.body, 'no session');
  await sleep(400);
  assert.equal(events.length, 1, 'one disconnect, not one per attempt');

  await d.start();
  await waitFor(() => events.length === 2, 'connect');
  assert.deepEqual(events.map((e) => e.name), ['disconnect', 'connect']);
  assert.equal((await br.get('/state')).status, 200);
});

test('restartWaitMs 0: disconnect at the loss and fail at once, as before the reconnecting window', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'zero', restartWaitMs: 0, reconnectMinMs: 20, reconnectMaxMs: 100 });
  const br = await loggedIn(t, store);
  const events = [];
  store.on('disconnect', (err) => events.push(`disconnect ${err.code}`));
  store.on('connect', () => events.push('connect'));
  const disconnected = once(store, 'disconnect');
  const gone = d.stop('SIGTERM');
  await disconnected;
  await gone;
  assert.equal(store.client.reconnecting, false);
  assert.equal(store.connected, false);
  const refused = [store.get('nobody'), store.client.set('zero', 'x', 'v', 60000)];
  assert.ok(await settledThisTurn(refused), 'failed at once, not after a timer or an attempt');
  await assert.rejects(refused[0], (err) => err.code === 'ESESSD_DISCONNECTED' && err.statusCode === 503);
  await assert.rejects(refused[1], (err) => err.code === 'ESESSD_DISCONNECTED');
  assert.equal((await br.get('/state')).status, 503);
  const connected = once(store, 'connect');
  await d.start();
  await connected;
  assert.deepEqual(events, ['disconnect ESESSD_SHUTTING_DOWN', 'connect']);
});

// restartableDaemonAndClient(t): a sessd with a data directory (so that its sessions survive
// the restarts the test makes), and a ready Client of two connections that reconnects within
// 100 ms and waits up to 10 s for it; both cleaned up after t.
async function restartableDaemonAndClient(t) {
  const d = new Daemon();
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  await d.start();
  t.after(() => d.cleanup());
  // The window outlasts a restart of sessd on a loaded machine: at load 54, 10 s (until stop
  // 56) ended before the new daemon was ready ("sessd is not connected: connect ENOENT").
  const c = new Client({ url: d.unixUrl, poolSize: 2, reconnectMinMs: 20, reconnectMaxMs: 100, restartWaitMs: 30000 });
  t.after(() => c.terminate());
  await c.ready();
  return { d, c };
}

test('the reconnecting window: requests of every kind wait and go once sessd is back; no event; no timer per request; close() fails the waiters at once', async (t) => {
  const { d, c } = await restartableDaemonAndClient(t);
  const events = [];
  c.on('disconnect', (err) => events.push(`disconnect ${err.code}`));
  c.on('connect', () => events.push('connect'));
  await c.set('w', 'a', 'A', 60000);
  await c.flashPush('w', 'a', 'info', 'one', 60000);

  await d.stop('SIGTERM');
  await waitFor(() => c.reconnecting, 'the reconnecting window');
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const reads = Array.from({ length: 500 }, () => settle(c.get('w', 'a')));
  const waiting = {
    load: settle(c.load('w', 'a')),
    ttl: settle(c.ttl('w', 'a')),
    count: settle(c.count('w')),
    stats: settle(c.stats(null)),
    ids: settle(c.ids('w')),
    set: settle(c.set('w', 'b', 'B', 60000)),
    pop: settle(c.flashPop('w', 'a', 'info')),
    ready: settle(c.ready({ timeoutMs: 5000 })),
  };
  assert.ok(timers() - before <= 2, `${timers() - before} timers for ${reads.length + 8} waiting requests`);
  await sleep(200);
  await d.start();
  for (const r of await Promise.all(reads)) assert.equal(r.ok && String(r.value), 'A', r.err && r.err.message);
  const r = {};
  for (const [k, v] of Object.entries(waiting)) {
    r[k] = await v;
    assert.ok(r[k].ok, `${k}: ${r[k].err && r[k].err.message}`);
  }
  assert.deepEqual(r.load.value.flashes, 1);
  assert.ok(r.ttl.value > 0);
  // 'b' is set by a waiting request too, on whichever connection: before these or after.
  assert.ok(r.count.value === 1 || r.count.value === 2, String(r.count.value));
  assert.ok(r.ids.value.includes('a'), String(r.ids.value));
  assert.deepEqual(r.pop.value, ['one'], 'the pop went once');
  assert.equal(String(await c.get('w', 'b')), 'B');
  assert.deepEqual(events, [], 'back within restartWaitMs: no disconnect, no connect');
  assert.equal(c.reconnecting, false);

  // close() in the window: the waiting requests fail now with ESESSD_CLOSED, not in 10 s.
  await d.stop('SIGKILL');
  await waitFor(() => c.reconnecting, 'the reconnecting window');
  const held = Array.from({ length: 100 }, (_, i) => settle(i % 2 ? c.get('w', 'a') : c.set('w', 'a', 'x', 60000)));
  await sleep(50);
  c.close();
  assert.ok(await settledThisTurn(held), 'the waiting requests failed at close(), not later');
  for (const h of await Promise.all(held)) assert.ok(!h.ok && h.err.code === 'ESESSD_CLOSED', h.err && h.err.message);
  assert.equal(c.reconnecting, false);
});

test('a restart with another secret is no restart to wait out: disconnect with ESESSD_AUTH at the first refused attempt, requests fail at once', async (t) => {
  const secret = 'restart-auth-secret-0123456789';
  const d = await sealedDaemon(secret + '\n');
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'auth', auth: secret, restartWaitMs: 20000, reconnectMinMs: 20, reconnectMaxMs: 100 });
  t.after(() => store.client.terminate());
  await once(store, 'connect');
  const events = [];
  store.on('disconnect', (err) => events.push(err.code));
  await d.stop('SIGTERM');
  await waitFor(() => store.client.reconnecting, 'the reconnecting window');
  const waiting = settle(store.get('x'));
  d.writeSecret('another-secret-0123456789abcdef\n');
  const started = Date.now();
  await d.start();
  await waitFor(() => events.length > 0, 'a disconnect event', 5000);
  assert.ok(Date.now() - started < 5000, 'not after restartWaitMs');
  assert.deepEqual(events, ['ESESSD_AUTH']);
  const r = await waiting;
  assert.ok(!r.ok && r.err.code === 'ESESSD_AUTH', r.err && r.err.message);
  await assert.rejects(store.get('x'), (err) => err.code === 'ESESSD_AUTH');
  assert.equal(store.client.reconnecting, false);
  await sleep(300);
  assert.deepEqual(events, ['ESESSD_AUTH'], 'said once');
});

test('count() and length() in flight, or made, as sessd stops wait out its restart too: no 503 from the admin connection', async (t) => {
  const { d, c } = await restartableDaemonAndClient(t);
  await c.set('n', 'a', 'A', 600000);
  // COUNT goes over a connection of its own (see adminRequest): it hears SHUTTING_DOWN, or its
  // break, on its own, and its next attempt may meet a daemon that no longer listens, before
  // the pool's connections have opened the reconnecting window.
  const errors = [];
  let counts = 0;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      try {
        assert.equal(await c.count('n'), 1);
        counts++;
      } catch (err) {
        errors.push(`${err.code}: ${err.message}`);
      }
    }
  };
  const loops = Array.from({ length: 8 }, loop);
  for (const signal of ['SIGTERM', 'SIGKILL', 'SIGTERM']) {
    const before = counts;
    await waitFor(() => counts > before + 50, 'counts before the restart');
    await d.stop(signal);
    await d.start();
  }
  const before = counts;
  await waitFor(() => counts > before + 50, 'counts after the last restart');
  stop = true;
  await Promise.all(loops);
  assert.deepEqual(errors.slice(0, 5), [], `${errors.length} counts failed`);
});

test('ids() across a restart: a scan that the restart cut starts over on the new daemon, so it still lists every session', async (t) => {
  const { d, c } = await restartableDaemonAndClient(t);
  const N = 3000;
  await Promise.all(Array.from({ length: N }, (_, i) => c.set('scan', `s${i}`, 'v', 600000)));
  // LIST's order is random per daemon start (PROTOCOL.md "Administration"): a cursor of the old
  // daemon resumes nothing on the new one, and the rest of the scan would pass sessions over.
  const sizes = [];
  // A scan is 300 LIST pages: waited for as long as pages keep coming, since a loaded machine
  // (load 50) took more than the 15 s a fixed wait gave a whole scan until stop 56.
  const pages = countCalls(c, ['list']);
  let stop = false;
  const loop = (async () => {
    while (!stop) sizes.push((await c.ids('scan', 10)).length);
  })();
  for (const signal of ['SIGTERM', 'SIGTERM', 'SIGKILL']) {
    const before = sizes.length;
    await waitWhileProgressing(() => sizes.length > before, () => pages.length, 'a scan before the restart');
    await sleep(50);
    await d.stop(signal);
    await d.start();
  }
  const before = sizes.length;
  await waitWhileProgressing(() => sizes.length > before + 1, () => pages.length, 'scans after the last restart');
  stop = true;
  await loop;
  assert.deepEqual(sizes.filter((n) => n !== N), [], `scans of ${N} sessions`);
});

test('timing options that a timer cannot hold are refused, not turned into 1 ms', () => {
  // Node's setTimeout takes Infinity, or anything past 2^31-1 ms, as 1 ms: restartWaitMs
  // Infinity ("wait for ever") ended every reconnecting window at once, and timeoutMs
  // Infinity ("no timeout"; 0 is that) failed requests after 1 ms.
  const url = 'unix:/nonexistent/sessd.sock';
  for (const key of ['timeoutMs', 'connectTimeoutMs', 'reconnectMinMs', 'reconnectMaxMs', 'restartWaitMs']) {
    for (const bad of [Infinity, 2 ** 31, -1, NaN, 'soon']) {
      assert.throws(() => new Client({ url, [key]: bad }), RangeError, `${key}: ${String(bad)}`);
    }
    const c = new Client({ url, [key]: 2 ** 31 - 1 });
    c.terminate();
  }
  // poolSize NaN made a pool of no connection, which never connected; below 1 is 1, as ever.
  for (const bad of [1.5, NaN, 'two', Infinity]) {
    assert.throws(() => new Client({ url, poolSize: bad }), RangeError, `poolSize: ${String(bad)}`);
  }
  const one = new Client({ url, poolSize: 0 });
  assert.equal(one.slots.length, 1);
  one.terminate();
  // Numbers given as strings (read from the environment) keep working.
  const c = new Client({ url, timeoutMs: '3000', restartWaitMs: '8000', poolSize: '3' });
  assert.equal(c.restartWaitMs, 8000);
  assert.equal(c.slots.length, 3);
  c.terminate();
});
