'use strict';
// LOAD (PROTOCOL.md "Sessions"): client.load, the store's get() on it, and flash()'s pops that
// skip their round trip when that LOAD found no flash queued. Run with real Express and the
// real daemon; what the package sends is counted by wrapping its connections' request(). A
// daemon older than LOAD is the real one behind a proxy that turns each LOAD into an
// opcode sessd does not know (0x7f, same arguments), which it answers UNKNOWN_OP in turn,
// keeping the connection open, exactly as an older sessd answers 0x16.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { encode } = require('@msgpack/msgpack');
const { Client, SessdStore, flash, codec } = require('..');
const { stateOf } = require('../lib/store');
const { Daemon, Browser, Gates, requireOp, listen, closeServer, waitFor, fakePeer, frameProxy, sleep } = require('./helpers');

const { OP, STATUS } = codec;
const SECRET = 'load-test-secret';
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
  await requireOp(daemon.unixUrl, OP.LOAD, [null, 'probe'], 'LOAD');
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// countOps(client): the opcodes client sends from now on, in order (its connections'
// request() wrapped, those it opens later included).
function countOps(client) {
  const ops = [];
  const wrap = (conn) => {
    const request = conn.request.bind(conn);
    conn.request = (op, ...rest) => {
      ops.push(op);
      return request(op, ...rest);
    };
    return conn;
  };
  for (const slot of client.slots) if (slot.conn) wrap(slot.conn);
  const newConnection = client.newConnection.bind(client);
  client.newConnection = (opts) => wrap(newConnection(opts));
  return ops;
}

// withoutLoad(t, sockPath): a proxy in front of the daemon's Unix socket that rewrites every
// LOAD's opcode to 0x7f while proxy.hiding is true: an older sessd, the real one. Returns
// { url, sockets, proxy }.
async function withoutLoad(t, sockPath) {
  const proxy = { hiding: true };
  const onRequest = (frame) => {
    // [0x16, request_id, ns, id]: a fixarray of 4, then the opcode as a positive fixint.
    if (proxy.hiding && frame[4] === 0x94 && frame[5] === OP.LOAD) frame[5] = 0x7f;
    return frame;
  };
  return { ...(await frameProxy(t, sockPath, { onRequest })), proxy };
}

test('client.load: the data as GET gives it and the flashes queued, all types; null as GET', async (t) => {
  const c = new Client({ url: daemon.tcpUrl, poolSize: 1 });
  t.after(() => c.close());
  const ns = 'load-client';
  const bin = Buffer.from([0, 1, 2, 0xc1, 0xff]);
  await c.set(ns, 's', bin, 60000);
  let r = await c.load(ns, 's');
  assert.deepEqual(Object.keys(r).sort(), ['data', 'flashes']);
  assert.ok(Buffer.isBuffer(r.data));
  assert.deepEqual(r.data, bin);
  assert.deepEqual(r.data, await c.get(ns, 's'));
  assert.equal(r.flashes, 0);
  await c.flashPush(ns, 's', 'info', 'a', 60000);
  await c.flashPush(ns, 's', 'info', { b: 2 }, 60000);
  await c.flashPush(ns, 's', 'error', 'c', 60000);
  r = await c.load(ns, 's');
  assert.equal(r.flashes, 3);
  // LOAD changes nothing: the messages are still there.
  assert.deepEqual(await c.flashPop(ns, 's', 'info'), ['a', { b: 2 }]);
  assert.equal((await c.load(ns, 's')).flashes, 1);
  assert.deepEqual(await c.flashPop(ns, 's', null), { error: ['c'] });
  assert.equal((await c.load(ns, 's')).flashes, 0);
  // NOT_FOUND: missing, holding only flashes, expired, destroyed.
  assert.equal(await c.load(ns, 'missing'), null);
  await c.flashPush(ns, 'fo', 'info', 'x', 60000);
  assert.equal(await c.load(ns, 'fo'), null, 'a flash-only session');
  await c.set(ns, 'short', 'x', 50);
  await sleep(150);
  assert.equal(await c.load(ns, 'short'), null, 'an expired session');
  await c.destroy(ns, 's');
  assert.equal(await c.load(ns, 's'), null, 'a destroyed session');
  assert.equal(c.lacksLoad, false);
  // Arguments the daemon would refuse are refused here, as GET's.
  await assert.rejects(c.load(ns, ''), RangeError);
  await assert.rejects(c.load('x'.repeat(65), 's'), RangeError);
});

test('client.load: data too large for a LOAD reply (LIMIT) is read with GET, its flash count unknown', async (t) => {
  const d = await new Daemon({ extraArgs: ['--max-frame', '4096'] }).start();
  t.after(() => d.cleanup());
  const c = new Client({ url: d.unixUrl, poolSize: 1 });
  t.after(() => c.close());
  const maxData = Number((await c.ready()).max_data);
  const ops = countOps(c);
  const fits = Buffer.alloc(maxData - 10, 'a');
  const over = Buffer.alloc(maxData, 'b');
  await c.set(null, 'fits', fits, 60000);
  await c.set(null, 'over', over, 60000);
  await c.flashPush(null, 'over', 'info', 'x', 60000);
  ops.length = 0;
  assert.deepEqual(await c.load(null, 'fits'), { data: fits, flashes: 0 });
  assert.deepEqual(ops, [OP.LOAD]);
  ops.length = 0;
  assert.deepEqual(await c.load(null, 'over'), { data: over, flashes: null });
  assert.deepEqual(ops, [OP.LOAD, OP.GET]);
  assert.equal(c.lacksLoad, false, 'LIMIT is not UNKNOWN_OP: the next LOAD asks again');
  ops.length = 0;
  assert.deepEqual(await c.load(null, 'fits'), { data: fits, flashes: 0 });
  assert.deepEqual(ops, [OP.LOAD]);
  // The store's session then carries no count: its pops ask, and find the flash.
  const store = new SessdStore({ client: c, serializer: { raw: true, stringify: (s) => s.raw, parse: (b) => ({ raw: b }) } });
  const sess = await store.get('over');
  assert.deepEqual(sess.raw, over);
  assert.equal(stateOf(sess)?.flashCount, undefined);
  assert.equal(stateOf(await store.get('fits')).flashCount.flashes, 0);
  assert.deepEqual(await c.flashPop(null, 'over', null), { info: ['x'] });
});

test('client.load: a result of the wrong shape rejects that call only', async (t) => {
  const results = [[Buffer.from('d')], [Buffer.from('d'), -1], ['str', 0], Buffer.from('d'), [Buffer.from('d'), 1, 2]];
  let n = 0;
  const { sockPath } = await fakePeer(t, (s, req) => {
    const reply = (status, result) => s.write(codec.encodeReply(req.request_id, status, Buffer.from(encode(result))));
    if (req.op === OP.HELLO) reply(STATUS.OK, { version: 1, max_frame: 1048576 });
    else if (req.op === OP.LOAD) reply(STATUS.OK, results[n++ % results.length]);
    else if (req.op === OP.PING) s.write(codec.encodeReply(req.request_id, STATUS.OK, Buffer.from([0xc0])));
    else reply(STATUS.UNKNOWN_OP, 'unknown opcode');
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1 });
  t.after(() => c.terminate());
  for (let i = 0; i < results.length; i++) {
    await assert.rejects(c.load(null, 's'), (err) => err.code === 'ESESSD_PROTOCOL', `result ${i}`);
  }
  await c.ping();
  assert.equal(c.slots[0].conn.state, 'ready');
});

test('client.load: a daemon without LOAD (UNKNOWN_OP) gets a GET, asked once per connection and again after a reconnection', async (t) => {
  const { url, sockets, proxy } = await withoutLoad(t, daemon.sock);
  const c = new Client({ url, poolSize: 1, reconnectMinMs: 10, reconnectMaxMs: 50 });
  t.after(() => c.terminate());
  await c.ready();
  const ops = countOps(c);
  const ns = 'load-old';
  await c.set(ns, 's', 'data', 60000);
  await c.flashPush(ns, 's', 'info', 'x', 60000);
  ops.length = 0;
  // Two at once, both asked: each falls back.
  const both = await Promise.all([c.load(ns, 's'), c.load(ns, 's')]);
  for (const r of both) assert.deepEqual(r, { data: Buffer.from('data'), flashes: null });
  assert.deepEqual(ops, [OP.LOAD, OP.LOAD, OP.GET, OP.GET]);
  assert.equal(c.lacksLoad, true);
  assert.equal(c.slots[0].conn.state, 'ready', 'UNKNOWN_OP left the connection open');
  // The connection is known to lack it: GET at once; a missing session is null.
  ops.length = 0;
  assert.equal(await c.load(ns, 'missing'), null);
  assert.deepEqual(ops, [OP.GET]);
  assert.deepEqual(await c.flashPop(ns, 's', 'info'), ['x'], 'nothing was popped');
  // The daemon is upgraded: the new connection asks again.
  proxy.hiding = false;
  // Back at once: the pool reconnects within restartWaitMs, and says nothing ('connect' is
  // for a pool that said 'disconnect').
  const before = c.slots[0].conn;
  for (const s of sockets) s.destroy();
  await waitFor(() => c.slots[0].conn !== before && c.slots[0].conn.state === 'ready', 'the reconnection');
  ops.length = 0;
  assert.deepEqual(await c.load(ns, 's'), { data: Buffer.from('data'), flashes: 0 });
  assert.deepEqual(ops, [OP.LOAD]);
  assert.equal(c.lacksLoad, false);
});

// An app on store with flash(): GET /login makes a stored session; POST /add pushes body.msg
// and redirects to /page; GET /page shows flash.locals(); GET /self pushes and then pops in one
// request; GET /gated loads the session, waits for the gate ?gate=, then does as /page.
async function serve(t, store, gates) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);
  const show = (req, res) => res.json(res.locals.flash);
  app.get('/login', (req, res) => {
    req.session.user = 'ann';
    res.json({ sid: req.sessionID });
  });
  app.post('/add', wrap(async (req, res) => {
    await req.flash('info', req.body.msg);
    res.redirect(303, '/page');
  }));
  app.get('/page', flash.locals(), show);
  app.get('/self', wrap(async (req, res) => {
    await req.flash('mine', 'pushed here');
    res.json({ mine: await req.flash('mine'), all: await req.flash() });
  }));
  app.get('/self-other-type', wrap(async (req, res) => {
    await req.flash('a', 'one');
    res.json(await req.flash('b'));
  }));
  app.get('/gated', wrap(async (req, res, next) => {
    await gates.hold(req.query.gate);
    next();
  }), flash.locals(), show);
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  return base;
}

// setup(t, url, storeOpts): { store, base, gates, ops, br } with br logged in (a stored
// session) and ops counting what the store's client sends.
async function setup(t, url, storeOpts = {}) {
  const store = new SessdStore({ url, poolSize: 1, namespace: 'load-app', ...storeOpts });
  await store.client.ready();
  const ops = countOps(store.client);
  const gates = new Gates();
  const base = await serve(t, store, gates);
  const br = new Browser(base);
  const login = await br.get('/login');
  assert.equal(login.status, 200);
  return { store, base, gates, ops, br, sid: JSON.parse(login.body).sid };
}

// page(br, ops, p): GET p; { shown (its JSON), ops (the opcodes sent while it ran) }.
async function page(br, ops, p = '/page') {
  ops.length = 0;
  const r = await br.get(p);
  assert.equal(r.status, 200, r.body);
  return { shown: JSON.parse(r.body), ops: ops.slice() };
}

test('flash.locals(): a page with nothing queued shows {} and sends no FLASH_POP', async (t) => {
  const { ops, br } = await setup(t, daemon.unixUrl);
  for (let i = 0; i < 3; i++) {
    const p = await page(br, ops);
    assert.deepEqual(p.shown, {});
    assert.ok(p.ops.includes(OP.LOAD), 'the session was read with LOAD');
    assert.ok(!p.ops.includes(OP.FLASH_POP), `page ${i} sent a FLASH_POP: ${p.ops}`);
    assert.ok(!p.ops.includes(OP.GET));
  }
});

test('a visitor without a session (no cookie) pays no FLASH_POP; its own push is popped, and shows once', async (t) => {
  const { ops, base } = await setup(t, daemon.unixUrl);
  for (let i = 0; i < 3; i++) {
    const anon = new Browser(base);
    const p = await page(anon, ops);
    assert.deepEqual(p.shown, {});
    assert.ok(!p.ops.includes(OP.FLASH_POP), `a cookieless page sent a FLASH_POP: ${p.ops}`);
  }
  // A new session's own push (pushed, then shown, in one request) is still popped.
  const anon = new Browser(base);
  const self = await page(anon, ops, '/self');
  assert.deepEqual(self.shown, { mine: ['pushed here'], all: {} });
  assert.ok(self.ops.includes(OP.FLASH_POP));
});

test('a flash pushed by a POST shows on the page after the redirect, once; the page after shows none, without a pop', async (t) => {
  const { ops, br } = await setup(t, daemon.unixUrl);
  for (let i = 0; i < 3; i++) {
    const r = await br.post('/add', { msg: `added ${i}` });
    assert.equal(r.status, 303);
    const after = await page(br, ops, r.location);
    assert.deepEqual(after.shown, { info: [`added ${i}`] });
    assert.ok(after.ops.includes(OP.FLASH_POP), 'a queued flash is popped');
    const next = await page(br, ops);
    assert.deepEqual(next.shown, {});
    assert.ok(!next.ops.includes(OP.FLASH_POP), `the page after sent a FLASH_POP: ${next.ops}`);
  }
});

test('a push made earlier in the same request is popped by it', async (t) => {
  const { ops, br } = await setup(t, daemon.unixUrl);
  const p = await page(br, ops, '/self');
  assert.deepEqual(p.shown, { mine: ['pushed here'], all: {} });
  assert.deepEqual(p.ops.filter((op) => op === OP.FLASH_POP).length, 2);
  // A push of another type also makes the pop ask: the request's push was of another type, so
  // nothing comes back for b, but a's message stays queued and shows on the next page.
  const q = await page(br, ops, '/self-other-type');
  assert.deepEqual(q.shown, []);
  assert.ok(q.ops.includes(OP.FLASH_POP));
  assert.deepEqual((await page(br, ops)).shown, { a: ['one'] });
});

test('a flash pushed by a concurrent request between the LOAD and the pop shows on this page or the next, once', async (t) => {
  const { ops, gates, br } = await setup(t, daemon.unixUrl);
  for (let i = 0; i < 4; i++) {
    ops.length = 0;
    const slow = br.get(`/gated?gate=g${i}`);
    await gates.arrived(`g${i}`);
    assert.ok(ops.includes(OP.LOAD), 'the slow page has read its session');
    // Another tab adds something; its redirect's page is not followed here.
    const add = await br.post('/add', { msg: `meanwhile ${i}` });
    assert.equal(add.status, 303);
    gates.open(`g${i}`);
    const first = await slow;
    assert.equal(first.status, 200);
    const second = await page(br, ops);
    const third = await page(br, ops);
    const shown = [JSON.parse(first.body), second.shown, third.shown].flatMap((f) => f.info || []);
    assert.deepEqual(shown, [`meanwhile ${i}`], 'shown exactly once');
    assert.deepEqual(third.shown, {});
  }
});

test('a pop after regenerate() asks sessd, and shows what regenerateFlashes "all" moved', async (t) => {
  const { store, ops, gates, br, sid } = await setup(t, daemon.unixUrl, { regenerateFlashes: 'all' });
  // The session has nothing queued when POST /regen loads it...
  assert.deepEqual((await page(br, ops)).shown, {});
  ops.length = 0;
  // ...then a flash arrives for it (pushed directly, as a concurrent request would), and the
  // regenerate moves it to the new id, where the pop finds it.
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false }));
  app.use(flash());
  app.post('/regen', (req, res, next) => {
    gates.hold('regen').then(() => {
      req.session.regenerate((err) => {
        if (err) return next(err);
        req.session.user = 'bob';
        req.flash().then((all) => res.json(all), next);
        return undefined;
      });
    });
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const slow = br.post('/regen', {}, base);
  await gates.arrived('regen');
  await store.client.flashPush(store.namespace, sid, 'info', 'moved', 60000);
  gates.open('regen');
  const r = await slow;
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { info: ['moved'] });
  assert.ok(ops.includes(OP.FLASH_POP));
});

test('a session reloaded after a concurrent push pops it on this page', async (t) => {
  const { store, gates, br } = await setup(t, daemon.unixUrl);
  const app = express();
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false }));
  app.use(flash());
  app.get('/reload', (req, res, next) => {
    gates.hold('reload').then(() => req.session.reload((err) => (err ? next(err) : next())));
  }, flash.locals(), (req, res) => res.json(res.locals.flash));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const slow = br.get('/reload', base);
  await gates.arrived('reload');
  assert.equal((await br.post('/add', { msg: 'before reload' })).status, 303);
  gates.open('reload');
  assert.deepEqual(JSON.parse((await slow).body), { info: ['before reload'] });
});

test('against a daemon without LOAD, pages GET the session and pop: every flash shows once', async (t) => {
  const { url } = await withoutLoad(t, daemon.sock);
  const { store, ops, gates, br } = await setup(t, url);
  const first = await page(br, ops);
  assert.deepEqual(first.shown, {});
  assert.deepEqual(first.ops.slice(0, 3), [OP.LOAD, OP.GET, OP.FLASH_POP]);
  assert.equal(store.client.lacksLoad, true);
  const empty = await page(br, ops);
  assert.deepEqual(empty.shown, {});
  assert.deepEqual(empty.ops.slice(0, 2), [OP.GET, OP.FLASH_POP], 'LOAD is asked once per connection');
  assert.ok(!empty.ops.includes(OP.LOAD));
  for (let i = 0; i < 2; i++) {
    const r = await br.post('/add', { msg: `old ${i}` });
    assert.equal(r.status, 303);
    assert.deepEqual((await page(br, ops, r.location)).shown, { info: [`old ${i}`] });
    assert.deepEqual((await page(br, ops)).shown, {});
  }
  // A concurrent push during a page is shown by it (its pop comes after the push) or the next.
  const slow = br.get('/gated?gate=old');
  await gates.arrived('old');
  assert.equal((await br.post('/add', { msg: 'meanwhile' })).status, 303);
  gates.open('old');
  const slowShown = JSON.parse((await slow).body);
  const nextShown = (await page(br, ops)).shown;
  assert.deepEqual([slowShown, nextShown].flatMap((f) => f.info || []), ['meanwhile']);
  assert.deepEqual((await page(br, ops, '/self')).shown, { mine: ['pushed here'], all: {} });
});
