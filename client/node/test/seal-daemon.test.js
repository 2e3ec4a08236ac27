'use strict';
// Sealed connections (PROTOCOL.md "Sealed connections") against the real daemon: one started
// with --auth-file, one without. Every operation, a 1 MB session, a long pipeline and
// express-session over sealed connections; the refusals (a wrong secret, a daemon without
// one) as ESESSD_AUTH; seal: false for the plain HELLO; a daemon restart.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const express = require('express');
const session = require('express-session');
const { Client, SessdStore, SessdError, flash, codec } = require('..');
const { Daemon, sealedDaemon, Browser, listen, closeServer, waitFor, once } = require('./helpers');

const SECRET = 'sealed-daemon-secret-4c1f0e9a7b3d5e28';
const WRONG = 'sealed-daemon-wrong-secret-00112233';

let authed; // --auth-file holding SECRET
let plain; // no --auth-file

test.before(async () => {
  authed = await sealedDaemon(SECRET + '\n');
  plain = await new Daemon().start();
});

test.after(async () => {
  if (authed) await authed.cleanup();
  if (plain) await plain.cleanup();
});

function client(t, opts) {
  const c = new Client({ poolSize: 1, ...opts });
  t.after(() => c.terminate());
  return c;
}

test('seal: every operation round trips over sealed connections, unix and tcp', async (t) => {
  for (const url of [authed.unixUrl, authed.tcpUrl]) {
    const c = client(t, { url, auth: SECRET, poolSize: 2 });
    assert.equal(c.seal, true);
    const hello = await c.ready();
    assert.equal(hello.auth, true);
    assert.equal(hello.kx.key.length, 32);
    assert.equal(hello.kx.proof.length, 32);
    assert.ok(c.slots.every((s) => s.conn.sealed));
    const ns = 'seal-ops';
    const id = `s-${url.slice(0, 3)}`;
    await c.ping();
    assert.equal(await c.get(ns, id), null);
    await c.set(ns, id, 'hello sealed', 60000);
    assert.equal(String(await c.get(ns, id)), 'hello sealed');
    assert.equal(await c.touch(ns, id, 120000), true);
    const page = await c.list(ns, 0, 1000);
    const entry = page.entries.find((e) => e.id === id);
    assert.ok(entry && entry.ttlMs > 60000 && entry.ttlMs <= 120000, JSON.stringify(page));
    assert.equal(await c.flashPush(ns, id, 'info', 'one', 60000), 1);
    assert.equal(await c.flashPush(ns, id, 'info', { two: [2] }, 60000), 2);
    assert.equal(await c.flashPush(ns, id, 'error', 'three', 60000), 1);
    assert.deepEqual(await c.flashPop(ns, id, 'info'), ['one', { two: [2] }]);
    assert.deepEqual(await c.flashPop(ns, id, null), { error: ['three'] });
    assert.ok((await c.count(ns)) >= 1); // the admin connection is sealed too
    assert.equal((await c.stats(ns)).sessions >= 1, true);
    assert.equal(await c.destroy(ns, id), true);
    assert.equal(await c.destroy(ns, id), false);
    assert.equal(await c.get(ns, id), null);
    assert.equal(c.adminConn.sealed, true);
  }
});

test('seal: a 1 MB session, and one as large as max_data allows', async (t) => {
  const c = client(t, { url: authed.unixUrl, auth: SECRET });
  const hello = await c.ready();
  const mb = crypto.randomBytes(1000000);
  await c.set('seal-big', 'mb', mb, 60000);
  assert.ok((await c.get('seal-big', 'mb')).equals(mb));
  // The largest a SET with this id can carry (PROTOCOL.md "HELLO", max_data): its frame is
  // exactly max_frame, and its GET reply too, each spanning 17 records.
  let n = hello.max_data;
  while (codec.encodeRequest(codec.OP.SET, 1, [null, 'max', Buffer.alloc(n), 60000]).length - 4 > hello.max_frame) n--;
  const max = crypto.randomBytes(n);
  await c.set(null, 'max', max, 60000);
  assert.ok((await c.get(null, 'max')).equals(max));
  // Over it: refused by the client, the connection intact.
  await assert.rejects(c.set(null, 'max', Buffer.alloc(hello.max_frame), 60000), (err) => err instanceof SessdError && err.statusName === 'TOO_LARGE');
  assert.equal(await c.get('seal-big', 'absent'), null);
  assert.equal(c.slots[0].conn.state, 'ready');
});

test('seal: many pipelined requests on one sealed connection', async (t) => {
  const c = client(t, { url: authed.tcpUrl, auth: SECRET });
  await c.ready();
  const conn = c.slots[0].conn;
  // 5000 requests made in one tick, sizes from 0 to 70 KB, then their reads, again at once.
  const N = 5000;
  const values = Array.from({ length: N }, (_, i) => crypto.randomBytes(i % 97 === 0 ? 70000 + i : i % 500));
  await Promise.all(values.map((v, i) => c.set('seal-pipe', `k${i}`, v, 60000)));
  const got = await Promise.all(values.map((_, i) => c.get('seal-pipe', `k${i}`)));
  for (let i = 0; i < N; i++) assert.ok(got[i].equals(values[i]), `value ${i}`);
  // Mixed operations on one session, in order.
  const ops = [];
  for (let i = 0; i < 300; i++) ops.push(c.flashPush('seal-pipe', 'f', 'info', `m${i}`, 60000));
  ops.push(c.flashPop('seal-pipe', 'f', 'info'));
  const res = await Promise.all(ops);
  assert.deepEqual(res.slice(0, 300), Array.from({ length: 300 }, (_, i) => i + 1));
  assert.deepEqual(res[300], Array.from({ length: 300 }, (_, i) => `m${i}`));
  assert.equal(c.slots[0].conn, conn, 'the same connection throughout');
  assert.equal(await c.count('seal-pipe'), N + 1);
});

test('seal: express-session and flash over a sealed store', async (t) => {
  const store = new SessdStore({ url: authed.unixUrl, auth: SECRET, namespace: 'seal-express' });
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: 'cookie-secret', name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      req.session.blob = 'b'.repeat(200000); // a session of several records
      req.flash('info', `welcome ${req.body.user}`).then(() => res.json({ ok: true }), next);
      return undefined;
    });
  });
  app.get('/me', (req, res, next) => {
    req.flash('info').then((msgs) => res.json({ user: (req.session && req.session.user) || null, blob: req.session && req.session.blob ? req.session.blob.length : 0, msgs }), next);
  });
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.client.terminate();
  });
  await once(store, 'connect');
  const br = new Browser(base);
  assert.equal((await br.post('/login', { user: 'ann' })).status, 200);
  assert.deepEqual(JSON.parse((await br.get('/me')).body), { user: 'ann', blob: 200000, msgs: ['welcome ann'] });
  assert.deepEqual(JSON.parse((await br.get('/me')).body), { user: 'ann', blob: 200000, msgs: [] });
  // The session is in the daemon, for any client with the secret, sealed or not.
  const check = client(t, { url: authed.tcpUrl, auth: SECRET, seal: false });
  assert.equal(await check.count('seal-express'), 1);
});

test('seal: a wrong secret is ESESSD_AUTH, and nothing is carried out', async (t) => {
  const c = client(t, { url: authed.unixUrl, auth: WRONG, poolSize: 2 });
  const disconnected = once(c, 'disconnect');
  const early = await Promise.allSettled([c.set('seal-wrong', 'a', 'x', 60000), c.get('seal-wrong', 'a'), c.flashPush('seal-wrong', 'a', 'info', 'm', 60000)]);
  for (const r of early) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason.code, 'ESESSD_AUTH', r.reason.stack);
  }
  const answer = early.map((r) => r.reason).find((e) => e instanceof SessdError);
  assert.ok(answer, 'the HELLO request rejects with the daemon answer');
  assert.equal(answer.statusName, 'AUTH_FAILED');
  assert.match(answer.message, /wrong proof/);
  assert.equal((await disconnected).code, 'ESESSD_AUTH');
  await assert.rejects(c.get('seal-wrong', 'a'), (err) => err.code === 'ESESSD_AUTH');
  const ok = client(t, { url: authed.unixUrl, auth: SECRET });
  assert.equal(await ok.count('seal-wrong'), 0);
});

test('seal: a daemon without --auth-file refuses a sealed client (ESESSD_AUTH)', async (t) => {
  const c = client(t, { url: plain.unixUrl, auth: SECRET });
  const disconnected = once(c, 'disconnect');
  const early = await Promise.allSettled([c.set('seal-nosecret', 'a', 'x', 60000), c.get('seal-nosecret', 'a')]);
  for (const r of early) assert.equal(r.reason && r.reason.code, 'ESESSD_AUTH');
  const answer = early.map((r) => r.reason).find((e) => e instanceof SessdError);
  assert.ok(answer);
  assert.equal(answer.statusName, 'AUTH_FAILED');
  assert.match(answer.message, /no --auth-file/);
  assert.equal((await disconnected).code, 'ESESSD_AUTH');
  const check = client(t, { url: plain.unixUrl });
  assert.equal(await check.count('seal-nosecret'), 0);
});

test('seal: seal: false keeps the plain HELLO, with and without --auth-file', async (t) => {
  for (const url of [authed.unixUrl, plain.tcpUrl]) {
    const store = new SessdStore({ url, auth: SECRET, seal: false, namespace: 'seal-off' });
    t.after(() => store.client.terminate());
    assert.equal(store.client.seal, false);
    const hello = await once(store, 'connect');
    assert.equal(hello.kx, undefined);
    assert.equal(hello.auth ?? null, url === plain.tcpUrl ? null : true);
    assert.equal(store.client.slots[0].conn.sealed, false);
    await store.set('p', { cookie: { maxAge: 60000 }, user: 'pat' });
    assert.equal((await store.get('p')).user, 'pat');
  }
  // Without a secret, nothing changes either.
  const none = client(t, { url: plain.unixUrl });
  assert.equal(none.seal, false);
  await none.ping();
});

test('seal: after a daemon restart the pool reconnects, with a fresh exchange', async (t) => {
  const d = await sealedDaemon(SECRET);
  t.after(() => d.cleanup());
  // restartWaitMs: 'disconnect' soon after the stop (the daemon is started again only after it).
  const c = client(t, { url: d.unixUrl, auth: SECRET, poolSize: 2, reconnectMinMs: 20, reconnectMaxMs: 200, restartWaitMs: 300 });
  const first = await c.ready();
  await c.set(null, 'r', 'before', 60000);
  const down = once(c, 'disconnect');
  await d.stop();
  await down;
  const up = once(c, 'connect');
  await d.start();
  const second = await up;
  assert.notEqual(second.server_id, first.server_id);
  assert.notDeepEqual(Buffer.from(second.kx.key), Buffer.from(first.kx.key));
  await waitFor(() => c.slots.every((s) => s.conn && s.conn.state === 'ready'), 'both connections');
  // Many requests on both fresh connections (records numbered from 0 again on each).
  await Promise.all(Array.from({ length: 200 }, (_, i) => c.set(null, `r${i}`, `after ${i}`, 60000)));
  assert.equal(String(await c.get(null, 'r7')), 'after 7');
});

// sessd counts a sealed connection as authenticated only once a record from the client has
// opened (a recorded HELLO can be replayed), and closes it at --hello-timeout until then. The
// pool's connections are opened ahead of use: each sends a PING after its HELLO, so one left
// idle is kept (without it, each was closed with SHUTTING_DOWN and opened again every
// --hello-timeout).
test('seal: idle pool connections outlive --hello-timeout', async (t) => {
  const d = new Daemon();
  d.extraArgs = ['--auth-file', d.writeSecret(SECRET), '--hello-timeout', '1'];
  await d.start();
  t.after(() => d.cleanup());
  const c = client(t, { url: d.unixUrl, auth: SECRET, poolSize: 2 });
  await c.ready();
  await waitFor(() => c.slots.every((s) => s.conn && s.conn.state === 'ready'), 'both connections');
  const conns = c.slots.map((s) => s.conn);
  await new Promise((resolve) => setTimeout(resolve, 2500));
  assert.ok(c.slots.every((s, i) => s.conn === conns[i] && s.conn.state === 'ready'), 'a pool connection was closed and opened again');
  await c.ping();
});
