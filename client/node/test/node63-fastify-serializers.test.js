'use strict';
// @fastify/session and express-session on a SessdStore whose serializer is not JSON
// (MessagePack's raw bytes, and JSON's own functions wrapped in an object, which the store
// cannot tell from any other serializer): stop 62's token, the lifetime a slow page takes from
// another tab's save, and a logout during a slow page, each as under JSON. MessagePack writes a
// Cookie's own fields, its expiry as _expires: before stop 63 such a cookie read back was taken
// for changed by every request, so a slow page wrote its lifetime over the "remember me" of
// another tab (both frameworks), and each Express page view that changed nothing was a save,
// not a touch, its read asking sessd the session's TTL besides. About 2 s.

const test = require('node:test');
const assert = require('node:assert/strict');
const { encode, decode } = require('@msgpack/msgpack');
const { SessdStore } = require('..');
const express = require('express');
const session = require('express-session');
const { Daemon, Browser, Gates, listen, closeServer, once, countCalls } = require('./helpers');
const { fastifyApp, json, HOUR, MONTH } = require('./apps61-fastify-app');

const DAY = 24 * HOUR;
let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// Stop 64 added JSON with a reviver that makes Dates of ISO times (as apps that keep dates in
// the session do): the read cookie's expiry is a Date, not text. msgpackr with records and a
// superjson were checked the same way at stop 64 (not kept: packages this one does not need).
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const serializers = {
  msgpack: { raw: true, stringify: (o) => encode(o), parse: (b) => decode(b) },
  'JSON wrapped': { stringify: (o) => JSON.stringify(o), parse: (s) => JSON.parse(s) },
  'JSON with a Date reviver': { stringify: (o) => JSON.stringify(o), parse: (s) => JSON.parse(s, (k, v) => (typeof v === 'string' && ISO_TIME.test(v) ? new Date(v) : v)) },
};

async function newStore(namespace, serializer) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace, keepReads: true, serializer });
  await once(store, 'connect');
  return store;
}

// stored(store, ns, sid): the session as sessd holds it, and its TTL.
async function stored(store, ns, sid) {
  const data = await store.client.get(ns, sid);
  return { sess: data === null ? null : await store.parse(data), ttl: await store.client.ttl(ns, sid) };
}

for (const [name, serializer] of Object.entries(serializers)) {
  test(`@fastify/session, ${name}: "remember me" in one tab outlives a slow page that changes a key, and a cart add made meanwhile stands`, async (t) => {
    const ns = `node63-ser-remember-${name}`;
    const store = await newStore(ns, serializer);
    const gates = new Gates();
    const br = await fastifyApp(t, store, gates);
    json(await br.post('/login?user=ann'));
    const { sid } = json(await br.get('/page'));
    const slow = br.get('/slow?name=A&note=late');
    await gates.arrived('A');
    json(await br.post('/remember?on=1'));
    json(await br.post('/cart?item=fig'));
    gates.open('A');
    json(await slow);
    const { sess, ttl } = await stored(store, ns, sid);
    assert.equal(sess.cookie.originalMaxAge, MONTH, `the slow page wrote its hour back: ${JSON.stringify(sess.cookie)}`);
    assert.ok(ttl > 29 * DAY, `sessd keeps the session ${ttl} ms`);
    assert.deepEqual(sess.cart, ['fig']);
    assert.equal(sess.note, 'late');
  });

  test(`@fastify/session (rolling: false), ${name}: an item taken out of the cart again stays out, and a logout during a slow page stands`, async (t) => {
    const ns = `node63-ser-uncart-${name}`;
    const store = await newStore(ns, serializer);
    const gates = new Gates();
    const br = await fastifyApp(t, store, gates, { rolling: false });
    json(await br.post('/login?user=bo'));
    json(await br.post('/cart?item=fig'));
    json(await br.get('/page'));
    json(await br.post('/cart?item=pear'));
    json(await br.get('/page'));
    assert.deepEqual(json(await br.post('/cart/remove?item=pear')).cart, ['fig']);
    const { sid, cart } = json(await br.get('/page'));
    assert.deepEqual(cart, ['fig'], 'the removal was answered 200 and lost');

    const slow = br.get('/slow?name=A&note=late');
    await gates.arrived('A');
    json(await br.post('/logout'));
    gates.open('A');
    json(await slow);
    assert.equal((await stored(store, ns, sid)).sess, null, 'the slow page wrote the session back after the logout');
  });
}

test('express-session, msgpack: a page view that changes nothing is a touch, and "remember me" in one tab outlives a slow page read before it', async (t) => {
  const ns = 'node63-ser-express';
  const store = await newStore(ns, serializers.msgpack);
  const gates = new Gates();
  const a = express();
  a.use(session({ store, secret: 'node63-serializers', name: 'sid', resave: false, saveUninitialized: false, rolling: true, cookie: { maxAge: HOUR } }));
  a.post('/login', (req, res) => {
    req.session.user = 'cy';
    res.json({ sid: req.sessionID });
  });
  a.post('/remember', (req, res) => {
    req.session.cookie.maxAge = MONTH;
    res.json({ ok: true });
  });
  a.get('/page', (req, res) => res.json({ user: req.session.user || null }));
  a.get('/slow', async (req, res) => {
    await gates.hold('A');
    res.json({ user: req.session.user || null });
  });
  const { server, base } = await listen(a);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  const br = new Browser(base);
  const { sid } = JSON.parse((await br.post('/login')).body);
  const calls = countCalls(store.client, ['setIf', 'touchIf', 'set', 'touch', 'ttlIfKnown']);
  assert.equal((await br.get('/page')).status, 200);
  assert.equal((await br.get('/page')).status, 200);
  // Nor does its read ask sessd how long the session has left: the expiry its data holds says.
  assert.deepEqual(calls, ['touchIf', 'touchIf'], 'a page view that changed nothing saved the session, or asked its TTL');
  const slow = br.get('/slow');
  await gates.arrived('A');
  assert.equal((await br.post('/remember')).status, 200);
  gates.open('A');
  assert.equal((await slow).status, 200);
  const { sess, ttl } = await stored(store, ns, sid);
  // Within a second: express-session's maxAge setter takes originalMaxAge from the clock again
  // (the expiry less now), a millisecond short when it ticks between (the /remember page's own).
  assert.ok(Math.abs(sess.cookie.originalMaxAge - MONTH) <= 1000, `the slow page wrote ${sess.cookie.originalMaxAge} ms over "remember me"`);
  assert.ok(ttl > 29 * DAY, `sessd keeps the session ${ttl} ms`);
  assert.equal(sess.user, 'cy');
});
