'use strict';
// A slow request that changed nothing must not undo the lifetime another request saved
// meanwhile (TOUCH_IF, PROTOCOL.md "Sessions"). express-session touches at the end of such a
// request with the cookie it read: a plain TOUCH set that lifetime exactly, so a "remember me"
// saved while an XHR poll was in flight ended with the poll's one hour (the user logged out
// the next day though the browser kept its 30-day cookie), and a "forget me" got its 30 days
// back. Real Express apps and express-session over HTTP, the real daemon; slow requests wait
// on gates the test opens, so the overlap is certain.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { encode } = require('@msgpack/msgpack');
const { Client, SessdStore, flash, codec, dataTag } = require('..');
const { Daemon, Browser, Gates, requireOp, listen, closeServer, fakePeer, sleep } = require('./helpers');

const { OP, STATUS } = codec;
const SECRET = 'touch-if-test-secret';
const NS = 'touch-if-test';
const HOUR = 3600 * 1000;
const MONTH = 30 * 24 * HOUR;
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
  await requireOp(daemon.unixUrl, OP.TOUCH_IF, [null, 'p', 60000, Buffer.alloc(16)], 'TOUCH_IF');
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

const json = (r) => JSON.parse(r.body);

// An app as the review's: login, a "remember me" and a "forget me" that set the cookie's
// maxAge, and a poll that reads the session, waits for its gate and changes nothing.
function makeApp(store, gates, sessionOpts) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: HOUR }, ...sessionOpts }));
  app.use(flash());
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      if (req.body.remember) {
        req.session.cookie.maxAge = MONTH;
        req.session.remember = true;
      }
      res.json({ sid: req.sessionID });
      return undefined;
    });
  });
  app.post('/remember', (req, res) => {
    req.session.cookie.maxAge = MONTH;
    req.session.remember = true;
    res.json({ ok: true });
  });
  // A "remember me" that sets the cookie alone: express-session does not save it, it touches.
  app.post('/remember-cookie', (req, res) => {
    req.session.cookie.maxAge = MONTH;
    res.json({ ok: true });
  });
  app.post('/forget', (req, res) => {
    req.session.cookie.maxAge = HOUR;
    req.session.remember = false;
    res.json({ ok: true });
  });
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
  // The save-first pattern both READMEs recommend: change, save, then answer. With a gate,
  // the request reads the session and waits before its change.
  app.post('/cart', (req, res, next) => {
    const gate = req.query.gate;
    (gate ? gates.hold(gate) : Promise.resolve()).then(() => {
      req.session.cart = (req.session.cart || 0) + 1;
      req.session.save((err) => (err ? next(err) : res.json({ cart: req.session.cart })));
    }, next);
  });
  // A login that saves before its flash, as a redirect after it needs.
  app.post('/login-save', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      req.session.save((saveErr) => {
        if (saveErr) return next(saveErr);
        req.flash('info', `Welcome, ${req.body.user}`).then(() => res.json({ sid: req.sessionID }), next);
        return undefined;
      });
      return undefined;
    });
  });
  app.get('/flashes', (req, res, next) => req.flash().then((all) => res.json(all), next));
  app.get('/poll', (req, res, next) => {
    const gate = req.query.gate;
    (gate ? gates.hold(gate) : Promise.resolve()).then(() => res.json({ user: req.session.user || null }), next);
  });
  app.use((err, req, res, next) => res.status(500).json({ code: err.code || null, message: err.message }));
  return app;
}

// Two app processes' worth (one store each, sharing the daemon and namespace), as a site
// behind a load balancer runs; the browser's requests may reach either. Returns
// { stores, bases, gates, touchIfs } (touchIfs: TOUCH_IF calls made by the stores' clients).
async function setup(t, sessionOpts = {}, storeOpts = {}) {
  const gates = new Gates();
  const stores = [];
  const bases = [];
  const touchIfs = { n: 0 };
  for (let i = 0; i < 2; i++) {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: NS, ...storeOpts });
    const orig = store.client.touchIf.bind(store.client);
    store.client.touchIf = (...args) => {
      touchIfs.n++;
      return orig(...args);
    };
    const { server, base } = await listen(makeApp(store, gates, sessionOpts));
    t.after(async () => {
      for (const open of gates.waiting.values()) open();
      await closeServer(server);
      store.close();
    });
    stores.push(store);
    bases.push(base);
  }
  return { stores, bases, gates, touchIfs };
}

async function login(base, user, remember = false) {
  const br = new Browser(base);
  const sid = json(await br.post('/login', remember ? { user, remember: '1' } : { user })).sid;
  return { br, sid };
}

// The session's remaining lifetime in sessd, in ms (null: none).
const ttlOf = (store, sid) => store.client.ttl(NS, sid);

for (const resave of [false, true]) {
  // resave: true: express-session saves the unmodified session instead of touching it, and
  // the store turns that save into the same touch.
  test(`remember me survives a slow concurrent request that changed nothing (resave: ${resave})`, async (t) => {
    const { stores, bases, gates, touchIfs } = await setup(t, { resave });
    const { br, sid } = await login(bases[0], `ann-${resave}`);
    assert.ok((await ttlOf(stores[0], sid)) <= HOUR);
    const poll = br.request('GET', '/poll?gate=p', null, bases[0]);
    await gates.arrived('p');
    assert.equal((await br.request('POST', '/remember', {}, bases[1])).status, 200);
    assert.ok((await ttlOf(stores[0], sid)) > MONTH - 60000, 'the remember-me save set 30 days');
    const before = touchIfs.n;
    gates.open('p');
    const r = await poll;
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(json(r), { user: `ann-${resave}` });
    const ttl = await ttlOf(stores[0], sid);
    assert.ok(ttl > MONTH - 60000, `sessd keeps the session ${ttl} ms, not the slow request's hour`);
    assert.ok(touchIfs.n - before >= 1, 'the slow request touched with TOUCH_IF');
    const stored = await stores[0].get(sid);
    assert.equal(stored.remember, true);
    assert.ok(Math.abs(stored.cookie.originalMaxAge - MONTH) < 5000, JSON.stringify(stored.cookie));
  });
}

test('remember me survives a slow concurrent request that changed something and saved first', async (t) => {
  // The review's case: the slow request's save conflicts, is merged, and keeps the 30 days
  // the other request's cookie gives; express-session then touches after that explicit save
  // with the slow request's own hour, and the TOUCH_IF over the merged data it had just
  // written cut the session back to it.
  const { stores, bases, gates, touchIfs } = await setup(t);
  const { br, sid } = await login(bases[0], 'fay');
  const cart = br.request('POST', '/cart?gate=c', {}, bases[0]);
  await gates.arrived('c');
  assert.equal((await br.request('POST', '/remember', {}, bases[1])).status, 200);
  const before = touchIfs.n;
  gates.open('c');
  const r = await cart;
  assert.equal(r.status, 200, r.body);
  const ttl = await ttlOf(stores[0], sid);
  assert.ok(ttl > MONTH - 60000, `sessd keeps the session ${ttl} ms, not the slow request's hour`);
  assert.equal(touchIfs.n - before, 0, 'a request that saved is not touched again');
  const stored = await stores[0].get(sid);
  assert.equal(stored.cart, 1);
  assert.equal(stored.remember, true);
});

test('a save-first cart add costs a LOAD and a SET_IF: no touch after it', async (t) => {
  const { stores, bases, touchIfs } = await setup(t);
  const { br, sid } = await login(bases[0], 'gil');
  const requestsBefore = (await stores[0].client.stats()).requests_total;
  const before = touchIfs.n;
  assert.equal((await br.request('POST', '/cart', {}, bases[0])).status, 200);
  const requests = (await stores[0].client.stats()).requests_total - requestsBefore;
  assert.equal(touchIfs.n - before, 0);
  assert.equal(requests, 3, 'the LOAD, the SET_IF and the STATS that counts them');
  assert.equal((await stores[0].get(sid)).cart, 1);
  assert.ok((await ttlOf(stores[0], sid)) > HOUR - 60000);
});

test('a login that saves before its flash leaves no mark in the session', async (t) => {
  const { stores, bases } = await setup(t);
  const br = new Browser(bases[0]);
  const r = await br.post('/login-save', { user: 'hal' });
  assert.equal(r.status, 200, r.body);
  const { sid } = json(r);
  const stored = await stores[0].get(sid);
  assert.equal(stored.user, 'hal');
  assert.equal(Object.prototype.hasOwnProperty.call(stored, '_flash'), false, JSON.stringify(stored));
  // The browser has the cookie, and the flash is there on the next page.
  assert.deepEqual(json(await br.get('/flashes')), { info: ['Welcome, hal'] });
});

test('forget me is not undone by a slow request that read the 30-day cookie', async (t) => {
  const { stores, bases, gates } = await setup(t);
  const { br, sid } = await login(bases[0], 'bob', true);
  assert.ok((await ttlOf(stores[0], sid)) > MONTH - 60000);
  const poll = br.request('GET', '/poll?gate=f', null, bases[1]);
  await gates.arrived('f');
  assert.equal((await br.request('POST', '/forget', {}, bases[0])).status, 200);
  gates.open('f');
  assert.equal((await poll).status, 200);
  const ttl = await ttlOf(stores[0], sid);
  assert.ok(ttl !== null && ttl <= HOUR, `sessd keeps the session ${ttl} ms: the forget-me hour, not 30 days`);
  assert.equal((await stores[0].get(sid)).remember, false);
});

test('a slow request that changed nothing renews the lifetime when nothing else changed', async (t) => {
  const { stores, bases, gates, touchIfs } = await setup(t);
  const { br, sid } = await login(bases[0], 'cy');
  const poll = br.request('GET', '/poll?gate=r', null, bases[0]);
  await gates.arrived('r');
  await sleep(300);
  const first = await ttlOf(stores[0], sid);
  assert.ok(first <= HOUR - 250, `${first}`);
  const before = touchIfs.n;
  gates.open('r');
  assert.equal((await poll).status, 200);
  assert.equal(touchIfs.n - before, 1, 'one TOUCH_IF, no conflict');
  const ttl = await ttlOf(stores[0], sid);
  assert.ok(ttl > first && ttl <= HOUR, `renewed to an hour from the touch: ${ttl} > ${first}`);
});

for (const rolling of [false, true]) {
  test(`a remember me that sets cookie.maxAge alone outlasts the next page (rolling: ${rolling})`, async (t) => {
    const { stores, bases, touchIfs } = await setup(t, { rolling });
    const setIfs = { n: 0 };
    for (const store of stores) {
      const orig = store.client.setIf.bind(store.client);
      store.client.setIf = (...args) => {
        setIfs.n++;
        return orig(...args);
      };
    }
    const { br, sid } = await login(bases[0], `dee-${rolling}`);
    assert.ok((await ttlOf(stores[0], sid)) <= HOUR);
    assert.equal((await br.post('/remember-cookie', {})).status, 200);
    assert.ok((await ttlOf(stores[0], sid)) > MONTH - 60000, 'the remember-me request set 30 days');
    const stored = await stores[0].get(sid);
    assert.ok(Math.abs(stored.cookie.originalMaxAge - MONTH) < 5000, JSON.stringify(stored.cookie));
    assert.equal(stored.user, `dee-${rolling}`);
    // The next pages, on either app process, change nothing: a TOUCH_IF each, no save, and
    // the 30 days stand.
    const saves = setIfs.n;
    const touches = touchIfs.n;
    for (const base of bases) assert.equal((await br.request('GET', '/poll', null, base)).status, 200);
    const ttl = await ttlOf(stores[0], sid);
    assert.ok(ttl > MONTH - 60000, `sessd keeps the session ${ttl} ms, not the hour the cookie had before`);
    assert.equal(setIfs.n - saves, 0, 'an unchanged page saves nothing');
    assert.equal(touchIfs.n - touches, 2, 'an unchanged page touches');
  });
}

test('a remember me whose cookie save sessd refuses (at --max-memory) is a touch, and no error reaches the app', async (t) => {
  const USERS = 48;
  const full = await new Daemon({ extraArgs: ['--max-memory', '1M'] }).start();
  t.after(() => full.cleanup());
  const filler = new Client({ url: full.unixUrl, poolSize: 1 });
  t.after(() => filler.terminate());
  const store = new SessdStore({ url: full.unixUrl, namespace: NS });
  t.after(() => store.close());
  const app = express();
  // A browser-session cookie: no maxAge, so the remember-me's date makes the data longer.
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false }));
  app.post('/login', (req, res) => {
    req.session.user = 'eve';
    res.json({ sid: req.sessionID });
  });
  app.post('/remember-cookie', (req, res) => {
    req.session.cookie.maxAge = MONTH;
    res.json({ ok: true });
  });
  const seen = [];
  app.use((err, req, res, next) => {
    seen.push(err);
    if (res.headersSent) return next(err);
    return res.status(500).json({ code: err.code || null });
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const br = new Browser(base);
    users.push({ br, sid: json(await br.post('/login', {})).sid });
  }
  // Fill the store to within a small session of --max-memory.
  let n = 0;
  for (const size of [2000, 200, 20, 1]) {
    for (;;) {
      try {
        await filler.set('filler', `f${n++}`, Buffer.alloc(size), 600000);
      } catch (err) {
        assert.equal(err.code, 'ESESSD_NO_MEMORY', String(err));
        break;
      }
    }
  }
  const setIf = store.client.setIf.bind(store.client);
  const refused = [];
  store.client.setIf = (...args) => setIf(...args).catch((err) => {
    refused.push(err.code);
    throw err;
  });
  for (const { br } of users) {
    const r = await br.post('/remember-cookie', {});
    assert.equal(r.status, 200, r.body);
  }
  await sleep(200);
  assert.ok(refused.length >= USERS / 2, `cookie saves refused: ${refused.length} of ${USERS}`);
  assert.ok(refused.every((code) => code === 'ESESSD_NO_MEMORY'), refused.join());
  assert.deepEqual(seen.map((e) => e.code), [], 'no error handed to the app');
  for (const { sid } of users) {
    const ttl = await store.client.ttl(NS, sid);
    assert.ok(ttl > MONTH - 60000, `saved or touched, the session lives 30 days: ${ttl} ms`);
  }
});

test('a slow request\'s touch after a logout does not bring the session back', async (t) => {
  const { stores, bases, gates } = await setup(t);
  const { br, sid } = await login(bases[0], 'dee');
  const poll = br.request('GET', '/poll?gate=l', null, bases[0]);
  await gates.arrived('l');
  assert.equal((await br.request('POST', '/logout', {}, bases[1])).status, 200);
  gates.open('l');
  assert.equal((await poll).status, 200);
  assert.equal(await ttlOf(stores[0], sid), null);
  assert.equal(await stores[0].get(sid), null);
});

test('a conflicting touch takes the stored session\'s lifetime through a ttl function', async (t) => {
  // The app decides the lifetime from the session: a ttl function sees the stored session
  // (remembered), not the slow request's copy.
  const ttl = (sess) => (sess.remember ? MONTH / 1000 : 600);
  const { stores, bases, gates } = await setup(t, {}, { ttl });
  const { br, sid } = await login(bases[0], 'eve');
  assert.ok((await ttlOf(stores[0], sid)) <= 600 * 1000);
  const poll = br.request('GET', '/poll?gate=t', null, bases[0]);
  await gates.arrived('t');
  await br.request('POST', '/remember', {}, bases[1]);
  gates.open('t');
  assert.equal((await poll).status, 200);
  const left = await ttlOf(stores[0], sid);
  assert.ok(left > MONTH - 60000, `${left} ms left`);
});

test('client: touchIf touches only over the data it expects', async (t) => {
  const c = new Client({ url: daemon.tcpUrl, poolSize: 1 });
  t.after(() => c.close());
  const ns = 'touch-if-client';
  const tag = (s) => dataTag(Buffer.from(s));
  assert.equal(await c.touchIf(ns, 'nope', 60000, tag('')), 'not_found');
  assert.equal(await c.ttl(ns, 'nope'), null, 'not_found creates nothing');
  await c.set(ns, 's', 'one', 60000);
  assert.equal(await c.touchIf(ns, 's', HOUR, tag('one')), 'ok');
  assert.ok((await c.ttl(ns, 's')) > HOUR - 5000);
  assert.equal(await c.touchIf(ns, 's', 1000, tag('two')), 'conflict');
  assert.ok((await c.ttl(ns, 's')) > HOUR - 5000, 'a conflict changes nothing');
  assert.equal((await c.get(ns, 's')).toString(), 'one');
  await c.ping(); // still open
  await c.flashPush(ns, 'fo', 'info', 'x', 60000);
  assert.equal(await c.touchIf(ns, 'fo', HOUR, tag('')), 'not_found', 'flashes only: no data');
  assert.ok((await c.ttl(ns, 'fo')) <= 60000);
  await assert.rejects(c.touchIf(ns, 's', 1000, Buffer.alloc(15)), TypeError);
  await assert.rejects(c.touchIf(ns, 's', 0, tag('one')), RangeError);
  assert.equal(c.lacksTouchIf, false);
});

test('client: a daemon without TOUCH_IF (UNKNOWN_OP) gets a plain TOUCH, asked once per connection', async (t) => {
  const ops = [];
  const { sockPath } = await fakePeer(t, (s, req) => {
    ops.push(req.op);
    const nil = Buffer.from([0xc0]);
    switch (req.op) {
      case OP.HELLO: s.write(codec.encodeReply(req.request_id, STATUS.OK, Buffer.from(encode({ version: 1, max_frame: 1048576 })))); break;
      case OP.TOUCH: s.write(codec.encodeReply(req.request_id, req.id === 'here' ? STATUS.OK : STATUS.NOT_FOUND, nil)); break;
      default: s.write(codec.encodeReply(req.request_id, STATUS.UNKNOWN_OP, Buffer.from(encode('unknown opcode'))));
    }
  });
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1 });
  t.after(() => c.close());
  assert.equal(await c.touchIf(null, 'here', 60000, dataTag(Buffer.from('x'))), 'ok');
  assert.equal(await c.touchIf(null, 'gone', 60000, dataTag(Buffer.from('x'))), 'not_found');
  assert.deepEqual(ops.filter((op) => op !== OP.HELLO), [OP.TOUCH_IF, OP.TOUCH, OP.TOUCH]);
  assert.equal(c.lacksTouchIf, true);
  assert.equal(c.slots[0].conn.state, 'ready', 'UNKNOWN_OP left the connection open');
  await sleep(10);
  assert.equal(warnings.filter((w) => w.code === 'ESESSD_NO_TOUCH_IF').length, 1);
});
