'use strict';
// test:express4: the Express cases under Express 4 too.
// Stop 62's lifetimes (a slow Express page takes the lifetime this process's newer save set)
// and keepReads' token (a @fastify/session save merges over its own read), with sessd killed
// (-9) and restarted on its data directory while the slow page runs, and two workers (each
// its own SessdStore, as two processes of a cluster) on that sessd: a logout made on the other
// worker after a "remember me" on this one stands (the hint is no licence to write the
// session back), and so does a cart add; the 30 days stand in sessd and the browser. Guards,
// passing at stop 63. About 2 s.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');
const { Browser, Gates, listen, closeServer, once, persistentDaemon } = require('./helpers');
const { fastifyApp, json, HOUR, MONTH } = require('./apps61-fastify-app');

const DAY = 24 * HOUR;

async function newStore(t, daemon, namespace, opts = {}) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace, ...opts });
  await once(store, 'connect');
  return store;
}

// worker(t, store, gates): an Express worker of the shop on store.
async function worker(t, store, gates) {
  const a = express();
  a.use(session({ store, secret: 'node63-restart', name: 'sid', saveUninitialized: false, resave: false, rolling: true, cookie: { maxAge: HOUR } }));
  a.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.json({ sid: req.sessionID });
  });
  a.post('/remember', (req, res) => {
    req.session.cookie.maxAge = MONTH;
    res.json({ ok: true });
  });
  a.post('/cart', (req, res) => {
    req.session.cart = [...(req.session.cart || []), req.query.item];
    res.json({ cart: req.session.cart });
  });
  a.post('/logout', (req, res) => req.session.destroy(() => res.json({ ok: true })));
  a.get('/slow', async (req, res) => {
    await gates.hold('A');
    req.session.note = 'late';
    res.json({ user: req.session.user || null });
  });
  const { server, base } = await listen(a);
  t.after(() => closeServer(server));
  return base;
}

function ok(r) {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

// restart(daemon): sessd killed and started again on its data directory.
async function restart(daemon) {
  await daemon.stop('SIGKILL');
  await daemon.start();
}

for (const other of ['logout', 'cart']) {
  test(`express-session, two workers, sessd restarted: a ${other === 'logout' ? 'logout' : 'cart add'} on the other worker after "remember me" on this one stands after a slow page read before both`, async (t) => {
    const daemon = await persistentDaemon(t);
    const ns = `node63-workers-${other}`;
    const gates = new Gates();
    const s1 = await newStore(t, daemon, ns);
    const s2 = await newStore(t, daemon, ns);
    t.after(() => {
      s1.close();
      s2.close();
    });
    const one = await worker(t, s1, gates);
    const two = await worker(t, s2, gates);
    const br = new Browser(one);
    const { sid } = ok(await br.post('/login'));
    const slow = br.get('/slow');
    await gates.arrived('A');
    ok(await br.post('/remember'));
    await restart(daemon);
    if (other === 'logout') ok(await br.post('/logout', {}, two));
    else ok(await br.post('/cart?item=fig', {}, two));
    gates.open('A');
    ok(await slow);
    const data = await s1.client.get(ns, sid);
    if (other === 'logout') {
      assert.equal(data, null, 'the slow page wrote the session back after the logout');
      return;
    }
    const sess = JSON.parse(data.toString('utf8'));
    assert.deepEqual(sess.cart, ['fig'], 'the cart add on the other worker was lost');
    assert.equal(sess.note, 'late');
    // Within a second: express-session's maxAge setter takes originalMaxAge from the clock again
    // (the expiry less now), a millisecond short when it ticks between (the /remember page's own).
    assert.ok(Math.abs(sess.cookie.originalMaxAge - MONTH) <= 1000, `the slow page undid "remember me" in sessd: ${sess.cookie.originalMaxAge} ms`);
    assert.ok(await s1.client.ttl(ns, sid) > 29 * DAY);
  });
}

test('@fastify/session, sessd restarted while a slow page runs: a logout made after the restart stands, a cart add made before it too', async (t) => {
  const daemon = await persistentDaemon(t);
  const gates = new Gates();
  const store = await newStore(t, daemon, 'node63-fastify-restart', { keepReads: true });
  const br = await fastifyApp(t, store, gates);
  json(await br.post('/login?user=di'));
  const { sid } = json(await br.get('/page'));
  const slow = br.get('/slow?name=A&note=late');
  await gates.arrived('A');
  json(await br.post('/cart?item=fig'));
  await restart(daemon);
  const slow2 = br.get('/slow?name=B&note=later');
  await gates.arrived('B');
  gates.open('A');
  json(await slow);
  assert.deepEqual(JSON.parse((await store.client.get('node63-fastify-restart', sid)).toString()).cart, ['fig']);
  json(await br.post('/logout'));
  gates.open('B');
  json(await slow2);
  assert.equal(await store.client.get('node63-fastify-restart', sid), null, 'the slow page wrote the session back after the logout');
});
