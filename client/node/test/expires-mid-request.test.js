'use strict';
// A session that ends in sessd while a request of it is under way. The request read it (LOAD)
// while it lived, served the page as the signed-in user and renewed the browser's cookie for
// a whole maxAge, but its touch (or its save) at the end came after sessd's end and found
// nothing: the next click was signed out, its cart add gone, though the last page had just
// given the cookie its full lifetime. Found by bench/soak.js on a loaded machine (requests of
// 1-2.6 s): a user back shortly before the cookie expired saw the page, then a cart add 481
// and 822 ms later found no session, 11.6 and 17 s before the end that page had given it. Any
// request that runs across its session's end does it: a slow page, a slow payment call before
// the save. A logout that comes meanwhile must still end the session.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, codec } = require('..');
const { Daemon, Browser, listen, closeServer, sleep, waitFor, frameProxy, cookieExpiresMs } = require('./helpers');

const { OP } = codec;

const MAX_AGE = 60000;
// sessd's end of the session when the slow request comes, and how long the request takes: the
// request reads the session well before that end and answers well after it.
const LEFT_MS = 1000;
const SLOW_MS = 2500;

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  await daemon.cleanup();
});

// shop(t, namespace, maxAge): a login, a page and a cart add that each wait ?wait= ms first
// (the cart add before its save, as a payment call would), a logout, and the store's 'gone'
// events. maxAge null: a browser-session cookie, and the store's ttl option is the lifetime.
async function shop(t, namespace, maxAge = MAX_AGE) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace, ttl: MAX_AGE / 1000 });
  t.after(() => store.client.terminate());
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: 'mid-request', resave: false, saveUninitialized: false, rolling: true, cookie: { maxAge } }));
  const wait = (req) => sleep(Number(req.query.wait || 0));
  app.post('/login', (req, res, next) => req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = 'ann';
    return req.session.save((e) => (e ? next(e) : res.redirect(303, '/')));
  }));
  app.get('/', async (req, res) => {
    await wait(req);
    res.json({ user: req.session.user || null, cart: req.session.cart || [] });
  });
  app.post('/cart', async (req, res, next) => {
    if (!req.session.user) return res.status(401).json({ error: 'not signed in' });
    await wait(req);
    (req.session.cart || (req.session.cart = [])).push(req.body.item);
    return req.session.save((e) => (e ? next(e) : res.redirect(303, '/')));
  });
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/'))));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  return { store, b: new Browser(base), gone };
}

function sidOf(b) {
  return decodeURIComponent(b.cookies.get('connect.sid')).slice(2).split('.')[0];
}

// signedInNear(t, namespace, maxAge): a signed-in browser whose session sessd ends in LEFT_MS,
// as when the user comes back just before it ends: saved (its cookie's expiry written) well
// before its last touch, which left it LEFT_MS.
async function signedInNear(t, namespace, maxAge = MAX_AGE) {
  const s = await shop(t, namespace, maxAge);
  assert.equal((await s.b.post('/login')).status, 303);
  const sid = sidOf(s.b);
  const stored = JSON.parse(await s.store.client.get(namespace, sid));
  if (maxAge !== null) stored.cookie.expires = new Date(Date.now() + LEFT_MS - maxAge).toISOString();
  await s.store.client.set(namespace, sid, JSON.stringify(stored), LEFT_MS);
  return s;
}

test('a page whose request runs across its session\'s end in sessd: the renewal the browser got holds, the next click is signed in', async (t) => {
  const ns = 'mid-request-page';
  const { store, b } = await signedInNear(t, ns);
  const r = await b.get(`/?wait=${SLOW_MS}`);
  assert.deepEqual(JSON.parse(r.body), { user: 'ann', cart: [] }, 'the page was served signed in');
  const drops = cookieExpiresMs(r);
  const sessd = await store.client.ttl(ns, sidOf(b));
  // sessd read its clock before its answer came: its session surely ends before the browser
  // drops the cookie only if it ends before answered + sessd. The clock read before asking, as
  // here until stop 56, could fail under load by the TTL request's own wait (as
  // slow-after-save.test.js did: "ends the session in 59925 ms, the browser's cookie in 59926 ms").
  const answered = Date.now();
  assert.ok(sessd !== null && answered + sessd >= drops, `the page renewed the browser's cookie to ${drops - answered} ms from now, and sessd keeps the session ${sessd === null ? 'no longer (gone)' : `${sessd} ms`}`);
  assert.deepEqual(JSON.parse((await b.get('/')).body), { user: 'ann', cart: [] }, 'the next page is signed in');
});

test('a browser-session cookie (the store\'s ttl is the lifetime) whose request runs across the session\'s end: the next click is signed in', async (t) => {
  const ns = 'mid-request-no-max-age';
  const { store, b } = await signedInNear(t, ns, null);
  const r = await b.get(`/?wait=${SLOW_MS}`);
  assert.deepEqual(JSON.parse(r.body), { user: 'ann', cart: [] }, 'the page was served signed in');
  const sessd = await store.client.ttl(ns, sidOf(b));
  assert.ok(sessd !== null && sessd > MAX_AGE - 10000, `sessd keeps the session ${sessd === null ? 'no longer (gone)' : `${sessd} ms`}, not the store's ttl of ${MAX_AGE} ms`);
  assert.deepEqual(JSON.parse((await b.get('/')).body), { user: 'ann', cart: [] }, 'the next page is signed in');
});

test('a cart add that waits (a payment call) across its session\'s end before saving: the add answered 303 is kept', async (t) => {
  const ns = 'mid-request-save';
  const { b, gone } = await signedInNear(t, ns);
  const r = await b.post(`/cart?wait=${SLOW_MS}`, { item: 'pear' });
  assert.equal(r.status, 303, r.body);
  assert.deepEqual(gone, [], 'the save found the session (no \'gone\')');
  assert.deepEqual(JSON.parse((await b.get('/')).body), { user: 'ann', cart: ['pear'] }, 'the add answered 303 is in the cart');
});

test('a logout while a slow request of the session runs: the session stays ended', async (t) => {
  const ns = 'mid-request-logout';
  const { store, b } = await signedInNear(t, ns);
  const sid = sidOf(b);
  // The slow request has read the session (and, near its end, renews it) before the logout:
  // waited for, where a fixed 300 ms was a guess a loaded machine need not meet (a logout
  // first, and the slow page was served signed out).
  let read = false;
  const get = store.get;
  store.get = function readOnce(id, cb) {
    return get.call(this, id, (err, sess) => {
      read = true;
      cb(err, sess);
    });
  };
  const slow = b.get(`/?wait=${SLOW_MS}`);
  await waitFor(() => read, 'the slow request to read the session');
  const other = new Browser(b.base);
  other.cookies = new Map(b.cookies);
  assert.equal((await other.post('/logout')).status, 303);
  assert.equal(JSON.parse((await slow).body).user, 'ann');
  assert.equal(await store.client.get(ns, sid), null, 'the logout holds after the slow request ended');
  await waitFor(async () => (await store.client.ttl(ns, sid)) === null, 'no TTL left either');
});

test('a session that had already ended when the request read it stays ended', async (t) => {
  const ns = 'mid-request-ended';
  const { store, b } = await shop(t, ns);
  assert.equal((await b.post('/login')).status, 303);
  const sid = sidOf(b);
  assert.equal(await store.client.touch(ns, sid, 50), true);
  await waitFor(async () => (await store.client.ttl(ns, sid)) === null, 'the session ended');
  assert.deepEqual(JSON.parse((await b.get('/')).body), { user: null, cart: [] });
  assert.equal(await store.client.get(ns, sid), null);
});

test('a daemon without TTL: the store reads sessions as before, asking TTL once per connection', async (t) => {
  const ops = [];
  const { url } = await frameProxy(t, daemon.sock, {
    onRequest: (frame) => {
      const { op } = codec.decodeRequest(frame);
      ops.push(op);
      // [0x15, request_id, ns, id]: a fixarray of 4, then the opcode as a positive fixint.
      if (frame[4] === 0x94 && frame[5] === OP.TTL) frame[5] = 0x7f;
      return frame;
    },
  });
  const store = new SessdStore({ url, namespace: 'mid-request-old', poolSize: 1, ttl: 60 });
  t.after(() => store.client.terminate());
  // A cookie without maxAge: its data does not say how long sessd keeps it.
  const data = JSON.stringify({ cookie: { originalMaxAge: null, expires: null, path: '/' }, user: 'ann' });
  await store.client.set('mid-request-old', 's', data, 1000);
  assert.equal((await store.get('s')).user, 'ann');
  assert.equal(store.client.lacksTtl, true);
  ops.length = 0;
  assert.equal((await store.get('s')).user, 'ann');
  assert.deepEqual(ops, [OP.LOAD], 'asked once per connection');
});

test('a browser-session cookie under a long lifetime (the default day): reads ask no TTL', async (t) => {
  const ops = [];
  const { url } = await frameProxy(t, daemon.sock, {
    onRequest: (frame) => {
      ops.push(codec.decodeRequest(frame).op);
      return frame;
    },
  });
  const store = new SessdStore({ url, namespace: 'mid-request-long', poolSize: 1 });
  t.after(() => store.client.terminate());
  // Near the end of its day, and a cookie without maxAge: nothing in its data says so.
  const data = JSON.stringify({ cookie: { originalMaxAge: null, expires: null, path: '/' }, user: 'ann' });
  await store.client.set('mid-request-long', 's', data, 1000);
  ops.length = 0;
  assert.equal((await store.get('s')).user, 'ann');
  assert.equal((await store.get('s')).user, 'ann');
  assert.deepEqual(ops, [OP.LOAD, OP.LOAD], 'a LOAD a read, no TTL beside it');
});
