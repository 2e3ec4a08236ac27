'use strict';
// Concurrent saves of one session (SET_IF, PROTOCOL.md): with real Express, express-session
// and the real daemon, a save writes only the keys its request changed, so two requests
// that changed different keys both land, an unmodified resave clobbers nothing, a request
// that finishes after logout does not bring the session back (nor does its flash:
// FLASH_PUSH_EXISTING), and a key both changed goes through mergeKey. Each scenario is also
// run with merge: false, where it must go wrong: the tests can fail. Slow requests wait on
// gates the test opens, so the overlap is certain.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const path = require('path');
const express = require('express');
const session = require('express-session');
const { encode, decode } = require('@msgpack/msgpack');
const { Client, SessdStore, flash, codec, dataTag } = require('..');
const { Daemon, Browser, Gates, requireOp, listen, closeServer, waitFor, fakePeer, sleep, REPO_DIR } = require('./helpers');

const { OP, STATUS } = codec;
const SECRET = 'merge-test-secret';
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
  await requireOp(daemon.unixUrl, OP.SET_IF, [null, 'p', Buffer.from('y'), 60000, Buffer.alloc(16)], 'SET_IF',
    (c) => c.set('merge-probe', 'p', 'x', 60000));
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

const json = (r) => JSON.parse(r.body);

// The session's keys and values, without the cookie.
function view(sess) {
  if (!sess) return null;
  const { cookie, ...rest } = sess;
  return rest;
}

// apply(sess, body): body's fields set keys (set_k=v), delete them (del=k, comma separated),
// or push to the cart (item=x).
function apply(sess, body) {
  for (const [k, v] of Object.entries(body)) {
    if (k.startsWith('set_')) sess[k.slice(4)] = v;
  }
  if (body.del) for (const k of body.del.split(',')) delete sess[k];
  if (body.item) (sess.cart || (sess.cart = [])).push(body.item);
  if (body.remember) sess.cookie.maxAge = Number(body.remember);
}

function makeApp(store, gates, sessionOpts = {}) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 }, ...sessionOpts }));
  app.use(flash());
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res)).catch(next);
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      res.json({ sid: req.sessionID });
      return undefined;
    });
  });
  app.get('/me', (req, res) => res.json({ sid: req.sessionID, session: view(req.session) }));
  app.post('/set', (req, res) => {
    apply(req.session, req.body);
    res.json(view(req.session));
  });
  // Loads the session (express-session did, before this runs), waits for the gate, changes it.
  app.post('/slow', wrap(async (req, res) => {
    await gates.hold(req.body.gate);
    apply(req.session, req.body);
    res.json(view(req.session));
  }));
  // Loads the session, waits for the gate, pushes a flash in one of req.flash's forms;
  // answers { n: what req.flash resolved to }.
  app.post('/slow-flash', wrap(async (req, res) => {
    await gates.hold(req.body.gate);
    const forms = {
      one: () => req.flash('info', 'too late'),
      many: () => req.flash('info', ['too', 'late']),
      format: () => req.flash('info', 'too %s', 'late'),
    };
    // Which session the request held, for the expiry test: on a loaded machine its session
    // may have expired before this request read it, and it then held a new one.
    res.set('x-held-sid', req.sessionID);
    res.json({ n: await forms[req.body.form]() });
  }));
  // Saves twice: one change, save(), the gate, another change, then express-session's save.
  app.post('/twice', wrap(async (req, res) => {
    await gates.hold(`${req.body.gate}-1`);
    req.session.a = req.body.a;
    await new Promise((resolve, reject) => req.session.save((err) => (err ? reject(err) : resolve())));
    await gates.hold(`${req.body.gate}-2`);
    req.session.b = req.body.b;
    res.json(view(req.session));
  }));
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
  // passport >= 0.6: clears the user, saves, then regenerates.
  app.post('/logout-regen', (req, res, next) => {
    delete req.session.user;
    req.session.save((err) => {
      if (err) return next(err);
      req.session.regenerate((err2) => (err2 ? next(err2) : res.json({ ok: true, sid: req.sessionID })));
      return undefined;
    });
  });
  app.use((err, req, res, next) => res.status(500).json({ code: err.code || null, message: err.message }));
  return app;
}

// An app on its own store; returns { store, base, gates, calls } (calls: client method counts).
async function setup(t, storeOpts = {}, sessionOpts = {}) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'merge-test', ...storeOpts });
  const calls = { setIf: 0, set: 0, touch: 0, touchIf: 0, get: 0, load: 0 };
  for (const m of Object.keys(calls)) {
    const orig = store.client[m].bind(store.client);
    store.client[m] = (...args) => {
      calls[m]++;
      return orig(...args);
    };
  }
  const gates = new Gates();
  const { server, base } = await listen(makeApp(store, gates, sessionOpts));
  t.after(async () => {
    for (const open of gates.waiting.values()) open();
    await closeServer(server);
    store.close();
  });
  return { store, base, gates, calls };
}

async function login(base, user) {
  const br = new Browser(base);
  const sid = json(await br.post('/login', { user })).sid;
  return { br, sid };
}

test('client: setIf stores only over the data it expects; CONFLICT keeps the connection', async (t) => {
  const c = new Client({ url: daemon.tcpUrl, poolSize: 1 });
  t.after(() => c.close());
  const ns = 'merge-client';
  const tag = (s) => dataTag(Buffer.from(s));
  assert.deepEqual(tag('x'), crypto.createHash('blake2b512').update('x').digest().subarray(0, 16));
  assert.equal(await c.setIf(ns, 'nope', 'v', 60000, tag('v')), 'not_found');
  assert.equal(await c.get(ns, 'nope'), null, 'not_found creates nothing');
  await c.set(ns, 's', 'one', 60000);
  assert.equal(await c.flashPush(ns, 's', 'info', 'kept', 60000), 1);
  assert.equal(await c.setIf(ns, 's', 'two', 60000, tag('one')), 'ok');
  assert.equal((await c.get(ns, 's')).toString(), 'two');
  assert.equal(await c.setIf(ns, 's', 'three', 60000, tag('one')), 'conflict');
  assert.equal((await c.get(ns, 's')).toString(), 'two', 'a conflict changes nothing');
  await c.ping(); // still open
  assert.equal(c.slots[0].conn.state, 'ready');
  // The tag is of the bytes exactly as GET returns them, whatever they are.
  const bin = crypto.randomBytes(300);
  await c.set(ns, 's', bin, 60000);
  assert.equal(await c.setIf(ns, 's', 'four', 60000, dataTag(await c.get(ns, 's'))), 'ok');
  assert.deepEqual(await c.flashPop(ns, 's', 'info'), ['kept'], 'SET_IF keeps the flashes');
  // A session that only holds flashes has no data to compare: not_found.
  await c.flashPush(ns, 'fo', 'info', 'x', 60000);
  assert.equal(await c.setIf(ns, 'fo', 'v', 60000, tag('')), 'not_found');
  // A tag of the wrong size is refused locally (the daemon would close the connection).
  await assert.rejects(c.setIf(ns, 's', 'v', 60000, Buffer.alloc(15)), TypeError);
  await assert.rejects(c.setIf(ns, 's', 'v', 60000, 'x'.repeat(16)), TypeError);
  assert.equal(c.lacksSetIf, false);
});

test('client: a daemon without SET_IF (UNKNOWN_OP) gets a plain SET, and is asked once per connection', async (t) => {
  const data = new Map();
  const ops = [];
  const { sockPath } = await fakePeer(t, (s, req) => {
    ops.push(req.op);
    const reply = (status, result) => s.write(codec.encodeReply(req.request_id, status, Buffer.from(encode(result))));
    const nil = Buffer.from([0xc0]);
    switch (req.op) {
      case OP.HELLO: reply(STATUS.OK, { version: 1, max_frame: 1048576 }); break;
      case OP.SET_IF: reply(STATUS.UNKNOWN_OP, 'unknown opcode'); break;
      case OP.SET: data.set(req.id, Buffer.from(req.data_hex, 'hex')); s.write(codec.encodeReply(req.request_id, STATUS.OK, nil)); break;
      case OP.GET:
        if (data.has(req.id)) reply(STATUS.OK, data.get(req.id));
        else s.write(codec.encodeReply(req.request_id, STATUS.NOT_FOUND, nil));
        break;
      case OP.TOUCH: s.write(codec.encodeReply(req.request_id, data.has(req.id) ? STATUS.OK : STATUS.NOT_FOUND, nil)); break;
      default: reply(STATUS.UNKNOWN_OP, 'unknown opcode');
    }
  });
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const store = new SessdStore({ url: `unix:${sockPath}`, poolSize: 1 });
  t.after(() => store.close());
  const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' };
  await store.set('s', { cookie, n: 1 });
  const s1 = await store.get('s');
  s1.n = 2;
  await store.set('s', s1); // SET_IF: UNKNOWN_OP, then SET
  assert.equal((await store.get('s')).n, 2);
  const s2 = await store.get('s');
  s2.n = 3;
  await store.set('s', s2); // the connection is known to lack it: SET at once
  assert.equal((await store.get('s')).n, 3);
  assert.deepEqual(ops.filter((op) => op === OP.SET_IF || op === OP.SET), [OP.SET, OP.SET_IF, OP.SET, OP.SET]);
  assert.equal(store.client.lacksSetIf, true);
  assert.equal(store.client.slots[0].conn.state, 'ready', 'UNKNOWN_OP left the connection open');
  await waitFor(() => warnings.some((w) => w.code === 'ESESSD_NO_SET_IF'), 'the ESESSD_NO_SET_IF warning', 2000);
  assert.equal(warnings.filter((w) => w.code === 'ESESSD_NO_SET_IF').length, 1);
  // An unmodified save is still a TOUCH, after the TOUCH_IF the daemon does not know either.
  const s3 = await store.get('s');
  await store.set('s', s3);
  assert.deepEqual(ops.slice(-2), [OP.TOUCH_IF, OP.TOUCH]);
});

test('client: flashPushExisting pushes only to a session with data', async (t) => {
  const c = new Client({ url: daemon.tcpUrl, poolSize: 1 });
  t.after(() => c.close());
  const ns = 'merge-flash-client';
  assert.equal(await c.flashPushExisting(ns, 'nope', 'info', 'x', 60000), null, 'a missing session');
  assert.equal(await c.count(ns), 0, 'nothing was created');
  await c.set(ns, 's', '{}', 60000);
  assert.equal(await c.flashPushExisting(ns, 's', 'info', 'a', 60000), 1);
  assert.equal(await c.flashPushExisting(ns, 's', 'info', { b: [2] }, 60000), 2);
  assert.equal(await c.flashPushExisting(ns, 's', 'error', 'c', 60000), 1);
  assert.deepEqual(await c.flashPop(ns, 's', null), { info: ['a', { b: [2] }], error: ['c'] });
  // A flash-only session (a first visit's, not saved yet) has no data: nothing is pushed.
  assert.equal(await c.flashPush(ns, 'fo', 'info', 'kept', 60000), 1);
  assert.equal(await c.flashPushExisting(ns, 'fo', 'info', 'x', 60000), null, 'a flash-only session');
  assert.deepEqual(await c.flashPop(ns, 'fo', 'info'), ['kept']);
  // Expired, destroyed: nothing is pushed, nothing comes back.
  await c.set(ns, 'short', '{}', 50);
  await sleep(150);
  assert.equal(await c.flashPushExisting(ns, 'short', 'info', 'x', 60000), null, 'an expired session');
  assert.equal(await c.destroy(ns, 's'), true);
  assert.equal(await c.flashPushExisting(ns, 's', 'info', 'x', 60000), null, 'a destroyed session');
  for (const id of ['nope', 's', 'short']) assert.equal(await c.get(ns, id), null, id);
  assert.deepEqual((await c.ids(ns)).filter((id) => id !== 'fo'), []);
  assert.equal(c.lacksFlashPushExisting, false);
});

test('client: a daemon without FLASH_PUSH_EXISTING (UNKNOWN_OP) gets a FLASH_PUSH, and is asked again after a reconnection', async (t) => {
  let upgraded = false; // after the restart: a daemon that knows it, and holds no session
  const queues = new Map();
  const ops = [];
  const { sockets, sockPath } = await fakePeer(t, (s, req) => {
    ops.push(req.op);
    const reply = (status, result) => s.write(codec.encodeReply(req.request_id, status, Buffer.from(encode(result))));
    if (req.op === OP.HELLO) {
      reply(STATUS.OK, { version: 1, max_frame: 1048576 });
    } else if (req.op === OP.FLASH_PUSH) {
      const key = `${req.id}/${req.type}`;
      queues.set(key, [...(queues.get(key) || []), req.msg]);
      reply(STATUS.OK, queues.get(key).length);
    } else if (req.op === OP.FLASH_PUSH_EXISTING && upgraded) {
      if (req.id === 'limited') reply(STATUS.LIMIT, 'too many flashes');
      else reply(STATUS.NOT_FOUND, null);
    } else {
      reply(STATUS.UNKNOWN_OP, 'unknown opcode');
    }
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, reconnectMinMs: 10, reconnectMaxMs: 50 });
  t.after(() => c.terminate());
  await c.ready();
  // Three pushes at once, all asked: each falls back, and they keep their order.
  assert.deepEqual(await Promise.all(['a', 'b', 'c'].map((m) => c.flashPushExisting(null, 's', 'info', m, 1000))), [1, 2, 3]);
  assert.deepEqual(queues.get('s/info'), ['a', 'b', 'c']);
  const [E, P] = [OP.FLASH_PUSH_EXISTING, OP.FLASH_PUSH];
  assert.deepEqual(ops.slice(1), [E, E, E, P, P, P]);
  assert.equal(c.lacksFlashPushExisting, true);
  assert.equal(c.slots[0].conn.state, 'ready', 'UNKNOWN_OP left the connection open');
  // The connection is known to lack it: FLASH_PUSH at once.
  ops.length = 0;
  assert.equal(await c.flashPushExisting(null, 's', 'info', 'd', 1000), 4);
  assert.deepEqual(ops, [P]);
  // The daemon restarts, upgraded: the new connection asks again, and a missing session gets
  // nothing.
  upgraded = true;
  // Back at once: the pool reconnects within restartWaitMs, and says nothing ('connect' is
  // for a pool that said 'disconnect').
  const before = c.slots[0].conn;
  for (const s of sockets) s.destroy();
  await waitFor(() => c.slots[0].conn !== before && c.slots[0].conn.state === 'ready', 'the reconnection');
  ops.length = 0;
  assert.equal(await c.flashPushExisting(null, 'gone', 'info', 'x', 1000), null);
  assert.equal(c.lacksFlashPushExisting, false);
  // An error other than UNKNOWN_OP is the caller's: no FLASH_PUSH behind its back.
  await assert.rejects(c.flashPushExisting(null, 'limited', 'info', 'x', 1000), (err) => err.code === 'ESESSD_LIMIT');
  assert.deepEqual(ops, [E, E]);
  assert.deepEqual([...queues.keys()], ['s/info']);
});

// A: loads, waits; B: changes another key and saves; A: changes its key and saves. Returns
// the session as sessd holds it afterwards.
async function differentKeys(t, storeOpts, rounds) {
  const { store, base, gates } = await setup(t, storeOpts);
  const { br, sid } = await login(base, 'ann');
  for (let i = 0; i < rounds; i++) {
    const slow = br.post('/slow', { gate: `g${i}`, [`set_a${i}`]: `A${i}`, del: i > 0 ? `b${i - 1}x` : 'none' });
    await gates.arrived(`g${i}`);
    assert.equal((await br.post('/set', { [`set_b${i}`]: `B${i}`, [`set_b${i}x`]: 'gone soon' })).status, 200);
    gates.open(`g${i}`);
    assert.equal((await slow).status, 200);
  }
  return { store, sess: view(await store.get(sid)) };
}

test('two concurrent requests changing different keys: both changes land (20 rounds); a deleted key stays deleted', async (t) => {
  const rounds = 20;
  const { sess } = await differentKeys(t, {}, rounds);
  const want = { user: 'ann' };
  for (let i = 0; i < rounds; i++) {
    want[`a${i}`] = `A${i}`;
    want[`b${i}`] = `B${i}`;
  }
  // Each slow request deleted the key the previous round's fast request set.
  want[`b${rounds - 1}x`] = 'gone soon';
  assert.deepEqual(sess, want);

  // Control: without merging, the slow request's whole-session save loses B's change.
  const control = (await differentKeys(t, { merge: false }, 1)).sess;
  assert.deepEqual(control, { user: 'ann', a0: 'A0' }, 'merge: false must lose the concurrent change (else this test proves nothing)');
});

// n requests, all loaded before any saves, each adds its own key (or a cart item); then all
// save at once.
async function stampede(t, storeOpts, n, body) {
  const { store, base, gates } = await setup(t, storeOpts);
  const { br, sid } = await login(base, 'bo');
  const reqs = [];
  for (let i = 0; i < n; i++) {
    reqs.push(br.post('/slow', { gate: `s${i}`, ...body(i) }));
    await gates.arrived(`s${i}`);
  }
  for (let i = 0; i < n; i++) gates.open(`s${i}`);
  const statuses = (await Promise.all(reqs)).map((r) => r.status);
  return { statuses, sess: view(await store.get(sid)) };
}

test('16 requests saving at once, each its own key: none is lost, none fails', async (t) => {
  const n = 16;
  const { statuses, sess } = await stampede(t, {}, n, (i) => ({ [`set_k${i}`]: String(i) }));
  assert.deepEqual(statuses, Array(n).fill(200));
  for (let i = 0; i < n; i++) assert.equal(sess[`k${i}`], String(i), `k${i} lost: ${JSON.stringify(sess)}`);
  const control = await stampede(t, { merge: false }, n, (i) => ({ [`set_k${i}`]: String(i) }));
  const kept = Object.keys(control.sess).filter((k) => k.startsWith('k')).length;
  assert.ok(kept < n, `merge: false kept all ${kept}: the test cannot tell`);
});

// Cart items as the example shop could merge them: what this request added to the base,
// added to what the other request stored.
function mergeCart(key, base, mine, theirs) {
  if (key !== 'cart') return mine;
  const added = (mine || []).slice((base || []).length);
  return [...(theirs || []), ...added];
}

test('a key both requests changed: last writer wins, or mergeKey decides', async (t) => {
  // mergeKey's arguments, in a gated two-request run.
  const seen = [];
  const { store, base, gates } = await setup(t, {
    mergeKey: (key, b, mine, theirs) => {
      seen.push({ key, base: b, mine, theirs });
      return mergeCart(key, b, mine, theirs);
    },
  });
  const { br, sid } = await login(base, 'cy');
  await br.post('/set', { item: 'bread' });
  const slow = br.post('/slow', { gate: 'g', item: 'apple', set_note: 'mine' });
  await gates.arrived('g');
  await br.post('/set', { item: 'pear', set_other: 'theirs' });
  gates.open('g');
  assert.equal((await slow).status, 200);
  assert.deepEqual(view(await store.get(sid)), { user: 'cy', cart: ['bread', 'pear', 'apple'], note: 'mine', other: 'theirs' });
  // Called once, for the one key both changed (note: only this request; other: only the other).
  assert.deepEqual(seen, [{ key: 'cart', base: ['bread'], mine: ['bread', 'apple'], theirs: ['bread', 'pear'] }]);

  // Without mergeKey, the key is last-writer-wins: the slow request's cart.
  const lww = await setup(t);
  const u = await login(lww.base, 'dee');
  const slow2 = u.br.post('/slow', { gate: 'g', item: 'apple' });
  await lww.gates.arrived('g');
  await u.br.post('/set', { item: 'pear', set_other: 'theirs' });
  lww.gates.open('g');
  await slow2;
  assert.deepEqual(view(await lww.store.get(u.sid)), { user: 'dee', cart: ['apple'], other: 'theirs' });

  // 12 cart adds at once, merged by mergeCart: every item is in the cart.
  const n = 12;
  const r = await stampede(t, { mergeKey: mergeCart }, n, (i) => ({ item: `item${i}` }));
  assert.deepEqual(r.statuses, Array(n).fill(200));
  assert.deepEqual([...r.sess.cart].sort(), Array.from({ length: n }, (_, i) => `item${i}`).sort());
  // mergeKey returning undefined deletes the key.
  const del = await setup(t, { mergeKey: () => undefined });
  const v = await login(del.base, 'eve');
  const slow3 = v.br.post('/slow', { gate: 'g', set_x: 'mine' });
  await del.gates.arrived('g');
  await v.br.post('/set', { set_x: 'theirs' });
  del.gates.open('g');
  await slow3;
  assert.deepEqual(view(await del.store.get(v.sid)), { user: 'eve' });
});

test('logout race: a slow request that saves after the logout does not bring the session back', async (t) => {
  for (const logout of ['/logout', '/logout-regen']) {
    for (const change of [{ set_cart: 'lemons' }, {}]) {
      for (const sessionOpts of [{}, { resave: true }, { rolling: true }]) {
        const what = `${logout} ${JSON.stringify(change)} ${JSON.stringify(sessionOpts)}`;
        const { store, base, gates } = await setup(t, {}, sessionOpts);
        const gone = [];
        store.on('gone', (sid) => gone.push(sid));
        const { br, sid } = await login(base, 'fay');
        const old = new Browser(base);
        old.cookies.set('sid', br.cookies.get('sid'));
        const slow = br.post('/slow', { gate: 'g', ...change });
        await gates.arrived('g');
        assert.equal((await br.post(logout)).status, 200, what);
        assert.equal(await store.get(sid), null, what);
        gates.open('g');
        assert.equal((await slow).status, 200, what);
        assert.equal(await store.get(sid), null, `${what}: the session came back`);
        assert.equal(json(await old.get('/me')).session.user, undefined, `${what}: the old cookie is logged in again`);
        // Saved (SET_IF or TOUCH) and found gone: said once. An unmodified session that
        // express-session only touches (resave: false) is not a save.
        const saved = Object.keys(change).length > 0 || sessionOpts.resave;
        assert.deepEqual(gone, saved ? [sid] : [], what);
      }
    }
  }
  // Control: without merging, the slow save writes the session back, logged in.
  const { store, base, gates } = await setup(t, { merge: false });
  const { br, sid } = await login(base, 'gus');
  const slow = br.post('/slow', { gate: 'g', set_cart: 'lemons' });
  await gates.arrived('g');
  await br.post('/logout');
  gates.open('g');
  await slow;
  assert.equal((await store.get(sid)).user, 'gus', 'merge: false must resurrect the session (else this test proves nothing)');
});

// nothingStored(store, sid, others, what): sessd holds nothing under sid, by every way of
// looking, and the store's namespace holds only the ids in others.
async function nothingStored(store, sid, others, what) {
  assert.equal(await store.get(sid), null, what);
  assert.equal(await store.client.get(store.namespace, sid), null, what);
  assert.deepEqual(await store.client.flashPop(store.namespace, sid, null), {}, what);
  // The id checked is said too: a loaded machine listed one once (merge-flash-expired, stop 66),
  // and whether it was sid come back or another session was not known.
  assert.deepEqual(await store.ids(), others, `${what}: the id came back (the one checked: ${sid})`);
  assert.equal(await store.length(), others.length, what);
  assert.equal(await store.client.count(store.namespace), others.length, what);
}

test('logout race: a slow request\'s flash after the logout resolves 0, and does not bring the id back', async (t) => {
  let round = 0;
  for (const logout of ['/logout', '/logout-regen']) {
    for (const form of ['one', 'many', 'format']) {
      const what = `${logout} ${form}`;
      const { store, base, gates } = await setup(t, { namespace: `merge-flash-${++round}` });
      const { br, sid } = await login(base, 'fay');
      const slow = br.post('/slow-flash', { gate: 'g', form });
      await gates.arrived('g');
      const out = await br.post(logout);
      assert.equal(out.status, 200, what);
      assert.equal(await store.get(sid), null, what);
      gates.open('g');
      const r = await slow;
      assert.equal(r.status, 200, `${what}: ${r.body}`);
      assert.deepEqual(json(r), { n: 0 }, what);
      // /logout-regen leaves the new, logged-out session.
      await nothingStored(store, sid, logout === '/logout' ? [] : [json(out).sid], what);
    }
  }
  // Control: while the session lives, the slow request's flash is pushed.
  const { store, base, gates } = await setup(t, { namespace: 'merge-flash-kept' });
  const { br, sid } = await login(base, 'gus');
  const slow = br.post('/slow-flash', { gate: 'g', form: 'many' });
  await gates.arrived('g');
  gates.open('g');
  assert.deepEqual(json(await slow), { n: 2 });
  assert.deepEqual(await store.client.flashPop(store.namespace, sid, 'info'), ['too', 'late']);
  assert.equal((await store.get(sid)).user, 'gus');
});

test('a session that expires while a slow request holds it: that request\'s flash resolves 0, and the id does not come back', async (t) => {
  // 1.5 s: the slow request must read the login's session before it expires (400 ms was too
  // short once on a loaded machine, stop 66: the id listed at the end was not known).
  const maxAge = 1500;
  const { store, base, gates } = await setup(t, { namespace: 'merge-flash-expired' }, { cookie: { maxAge } });
  const { br, sid } = await login(base, 'gil');
  const slow = br.post('/slow-flash', { gate: 'g', form: 'one' });
  await gates.arrived('g');
  await sleep(maxAge + 200);
  gates.open('g');
  const r = await slow;
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['x-held-sid'], sid, 'the slow request held the login\'s session (else it expired first: the machine was too slow for this test)');
  assert.deepEqual(json(r), { n: 0 });
  await nothingStored(store, sid, [], 'expired');
});

test('an unmodified resave (resave: true) is a TOUCH_IF: it clobbers no concurrent change', async (t) => {
  for (const merge of [true, false]) {
    const { store, base, gates, calls } = await setup(t, { merge }, { resave: true });
    const { br, sid } = await login(base, 'hal');
    const slow = br.post('/slow', { gate: 'g' });
    await gates.arrived('g');
    await br.post('/set', { set_x: 'changed' });
    const before = { ...calls };
    gates.open('g');
    await slow;
    const after = view(await store.get(sid));
    if (merge) {
      assert.deepEqual(after, { user: 'hal', x: 'changed' });
      // The first conflicts (the /set saved after the slow request read the session); the
      // second touches over what that save stored.
      assert.equal(calls.touchIf - before.touchIf, 2, 'the resave was a TOUCH_IF, twice');
      assert.equal(calls.touch - before.touch, 0);
      assert.equal(calls.setIf - before.setIf, 0);
    } else {
      assert.deepEqual(after, { user: 'hal' }, 'merge: false must clobber (else this test proves nothing)');
    }
  }
});

test('a session saved twice in one request, with merges, keeps every change', async (t) => {
  const { store, base, gates, calls } = await setup(t);
  const { br, sid } = await login(base, 'ida');
  const twice = br.post('/twice', { gate: 't', a: 'first', b: 'second' });
  await gates.arrived('t-1');
  await br.post('/set', { set_x: 'x' }); // before the first save: it merges
  gates.open('t-1');
  await gates.arrived('t-2');
  assert.deepEqual(view(await store.get(sid)), { user: 'ida', x: 'x', a: 'first' });
  await br.post('/set', { set_y: 'y', del: 'x' }); // before the second
  gates.open('t-2');
  assert.deepEqual(json(await twice), { user: 'ida', a: 'first', b: 'second' });
  assert.deepEqual(view(await store.get(sid)), { user: 'ida', a: 'first', b: 'second', y: 'y' });
  // Without a concurrent change in between, a second save needs no merge.
  const before = { ...calls };
  const twice2 = br.post('/twice', { gate: 'u', a: 'first2', b: 'second2' });
  await gates.arrived('u-1');
  gates.open('u-1');
  await gates.arrived('u-2');
  gates.open('u-2');
  await twice2;
  assert.equal(calls.load - before.load, 1, 'one load: the session\'s');
  // A daemon older than LOAD: the load is a GET.
  assert.equal(calls.get - before.get, store.client.lacksLoad ? 1 : 0, 'no re-read');
  assert.equal(calls.setIf - before.setIf, 2);
  assert.deepEqual(view(await store.get(sid)), { user: 'ida', a: 'first2', b: 'second2', y: 'y' });
});

test('a cookie changed by another request (remember me) survives a concurrent save, with its expiry', async (t) => {
  const { store, base, gates } = await setup(t);
  const { br, sid } = await login(base, 'jo');
  const month = 30 * 86400 * 1000;
  const slow = br.post('/slow', { gate: 'g', set_page: '2' });
  await gates.arrived('g');
  await br.post('/set', { remember: String(month), set_remembered: 'yes' });
  gates.open('g');
  await slow;
  const s = await store.get(sid);
  assert.equal(s.page, '2');
  assert.equal(s.remembered, 'yes');
  assert.ok(Math.abs(s.cookie.originalMaxAge - month) < 5000, JSON.stringify(s.cookie));
  const page = await store.client.list('merge-test', 0, 1000);
  const ttl = page.entries.find((e) => e.id === sid).ttlMs;
  assert.ok(ttl > month - 60000, `the session's ttl ${ttl} is the remembered cookie's`);
});

test('retries are bounded: a session that changes under every attempt fails with ESESSD_CONFLICT', async (t) => {
  for (const attempts of [3, undefined]) {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: 'merge-bounded', mergeAttempts: attempts });
    const other = new Client({ url: daemon.tcpUrl, poolSize: 1 });
    t.after(() => {
      store.close();
      other.close();
    });
    const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' };
    await store.set('s', { cookie, n: 0 });
    let setIfs = 0;
    let writes = 0;
    const origSetIf = store.client.setIf.bind(store.client);
    // Before each SET_IF, another client changes the session.
    store.client.setIf = async (...args) => {
      setIfs++;
      await other.set('merge-bounded', 's', JSON.stringify({ cookie, n: 0, other: ++writes }), 60000);
      return origSetIf(...args);
    };
    const s = await store.get('s');
    s.mine = true;
    // A 503 (try again), as NO_MEMORY and BUSY are, not an app bug's 500.
    await assert.rejects(store.set('s', s), (err) => err.code === 'ESESSD_CONFLICT' && err.statusCode === 503 && err.status === 503);
    assert.equal(setIfs, attempts ?? 25);
    const stored = await store.get('s');
    assert.equal(stored.mine, undefined, 'nothing of a failed save is stored');
    assert.equal(stored.other, writes);
  }
  assert.throws(() => new SessdStore({ mergeAttempts: 0, client: {} }), TypeError);
  assert.throws(() => new SessdStore({ merge: 'yes', client: {} }), TypeError);
  assert.throws(() => new SessdStore({ mergeKey: {}, client: {} }), TypeError);
});

test('the store API outside Express: get then set merges; a session never read is SET whole', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'merge-api' });
  t.after(() => store.close());
  const cookie = () => ({ originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' });
  await store.set('s', { cookie: cookie(), a: 1, b: 1 });
  const x = await store.get('s');
  const y = await store.get('s');
  x.a = 2;
  y.b = 2;
  delete y.a; // y deletes a, which x changed: last writer (y) wins
  await store.set('s', x);
  await store.set('s', y);
  assert.deepEqual(view(await store.get('s')), { b: 2 });
  // The hidden state is in no serialization.
  assert.deepEqual(Object.keys(x), ['cookie', 'a', 'b']);
  assert.doesNotMatch(JSON.stringify(x), /tag|raw|forms/);
  // A plain object (not read from sessd) is written whole, as before.
  await store.set('s', { cookie: cookie(), fresh: true });
  assert.deepEqual(view(await store.get('s')), { fresh: true });
  // Saved under another id: a copy, written whole.
  const z = await store.get('s');
  z.copy = true;
  await store.set('t', z);
  assert.deepEqual(view(await store.get('t')), { fresh: true, copy: true });
  // A session destroyed since it was read: set() does not recreate it, and says 'gone'.
  const w = await store.get('t');
  await store.destroy('t');
  w.late = true;
  const gone = [];
  store.on('gone', (sid, sess) => gone.push([sid, sess]));
  await store.set('t', w);
  assert.equal(await store.get('t'), null);
  assert.deepEqual(gone, [['t', w]]);
  // A merged save keeps the cookie another save stored (a longer one, "remember me"), but
  // the caller's plain cookie object is left as it is (adoptLifetime is for an express-session
  // Cookie only): it gains no maxAge, which its next save would write into the session.
  await store.set('u', { cookie: cookie(), a: 1 });
  const r = await store.get('u');
  const m = await store.get('u');
  const month = 30 * 86400 * 1000;
  m.cookie = { ...m.cookie, originalMaxAge: month, expires: new Date(Date.now() + month).toISOString() };
  await store.set('u', m);
  r.a = 2;
  const before = JSON.stringify(r.cookie);
  await store.set('u', r);
  assert.equal(JSON.stringify(r.cookie), before);
  assert.ok(!('maxAge' in r.cookie), JSON.stringify(r.cookie));
  const u = await store.get('u');
  assert.equal(u.a, 2);
  assert.equal(u.cookie.originalMaxAge, month);
});

// A logout that lands between a save's CONFLICT and its read of the session again: the save
// does not write the session back (the user stays logged out), ends without an error and
// says 'gone', as when the logout came before its first SET_IF.
test('a session destroyed after a save\'s CONFLICT and before its read again is not written back', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'merge-gone' });
  const other = new Client({ url: daemon.tcpUrl, poolSize: 1 });
  t.after(() => {
    store.close();
    other.close();
  });
  const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' };
  await store.set('s', { cookie, user: 'ann' });
  const s = await store.get('s');
  await other.set('merge-gone', 's', JSON.stringify({ cookie, user: 'ann', seen: 1 }), 60000);
  const outcomes = [];
  const origSetIf = store.client.setIf.bind(store.client);
  store.client.setIf = async (...args) => {
    const outcome = await origSetIf(...args);
    outcomes.push(outcome);
    if (outcome === 'conflict') await other.destroy('merge-gone', 's');
    return outcome;
  };
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  s.page = 2;
  await store.set('s', s);
  assert.deepEqual(outcomes, ['conflict'], 'one SET_IF, answered CONFLICT');
  assert.equal(await other.get('merge-gone', 's'), null, 'the destroyed session was written back');
  assert.deepEqual(gone, ['s']);
});

test('the example shop: 8 cart adds at once, all loaded before any saved, add up with its mergeKey', async (t) => {
  const { createApp, mergeSession } = require(path.join(REPO_DIR, 'examples/express-demo/app.js'));
  const n = 8;
  const run = async (storeOpts) => {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: 'merge-shop', ...storeOpts });
    // Every request's load waits until all n have loaded: they all start from the same cart.
    let waiting = null;
    const origGet = store.get.bind(store);
    store.get = (sid, cb) => {
      origGet(sid).then(async (s) => {
        if (waiting) {
          waiting.count++;
          if (waiting.count === n) waiting.release();
          await waiting.all;
        }
        return s;
      }).then((s) => cb(null, s), cb);
    };
    const app = createApp({ store, secret: SECRET, flash: { middleware: () => flash(), locals: () => flash.locals() } });
    const { server, base } = await listen(app);
    t.after(async () => {
      await closeServer(server);
      store.close();
    });
    const br = new Browser(base);
    await br.post('/login', { username: 'kim' });
    await br.post('/cart', { item: '2 pears' });
    let release;
    waiting = { count: 0, all: new Promise((r) => { release = r; }), release: () => release() };
    const adds = await Promise.all(Array.from({ length: n }, (_, i) => br.post('/cart', { item: i % 2 ? '1 apple' : '1 lemon' })));
    waiting = null;
    assert.deepEqual(adds.map((r) => r.status), Array(n).fill(303));
    const page = (await br.get('/')).body;
    return [...page.matchAll(/<li>(\d+ [^<]*)<\/li>/g)].map((m) => m[1]).sort();
  };
  assert.deepEqual(await run({ mergeKey: mergeSession }), ['2 pears', `${n / 2} apple`, `${n / 2} lemon`]);
  // Control: without mergeKey the cart is last-writer-wins: one add survives.
  assert.equal((await run({})).length, 2, 'without mergeKey, concurrent adds must be lost (else this test proves nothing)');
  assert.equal(mergeSession('user', 'a', 'b', 'c'), 'b');
});

test('a serializer other than JSON (MessagePack, raw bytes) merges the same way', async (t) => {
  const serializer = { raw: true, stringify: (o) => encode(o), parse: (b) => decode(b) };
  const seen = [];
  const store = new SessdStore({
    url: daemon.unixUrl,
    namespace: 'merge-msgpack',
    serializer,
    mergeKey: (key, base, mine, theirs) => {
      seen.push([key, base, mine, theirs]);
      return [...theirs, ...mine.slice(base.length)];
    },
  });
  t.after(() => store.close());
  const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000), httpOnly: true, path: '/' };
  await store.set('s', { cookie, list: [1], a: 0, d: 'x' });
  const x = await store.get('s');
  const y = await store.get('s');
  assert.ok(Buffer.isBuffer(await store.client.get('merge-msgpack', 's')));
  x.a = 1;
  x.list.push(2);
  y.list.push(3);
  delete y.d;
  await store.set('s', x);
  await store.set('s', y);
  assert.deepEqual(view(await store.get('s')), { list: [1, 2, 3], a: 1 });
  assert.deepEqual(seen, [['list', [1], [1, 3], [1, 2]]]);
  // Unchanged: a TOUCH, no write.
  const z = await store.get('s');
  const before = await store.client.get('merge-msgpack', 's');
  let setIfs = 0;
  const orig = store.client.setIf.bind(store.client);
  store.client.setIf = (...args) => {
    setIfs++;
    return orig(...args);
  };
  await store.set('s', z);
  assert.equal(setIfs, 0);
  assert.deepEqual(await store.client.get('merge-msgpack', 's'), before);
});

// connect-redis hands a ttl function the Session express-session gave set(), and apps read
// sess.cookie.maxAge in it. A merged save (another request saved meanwhile) must give it
// the same, not the re-read JSON (no maxAge, expires a string): that save failed, after its
// response had gone out, and its change was lost.
test('a ttl function reading sess.cookie.maxAge works on a merged save too', async (t) => {
  const seen = [];
  const ttl = (sess) => {
    seen.push(typeof sess.cookie.maxAge);
    return Math.ceil(sess.cookie.maxAge / 1000);
  };
  const { store, base, gates } = await setup(t, { ttl });
  const { br, sid } = await login(base, 'ty');
  const slow = br.post('/slow', { gate: 'g', set_page: '2' });
  await gates.arrived('g');
  await br.post('/set', { set_other: 'yes' });
  gates.open('g');
  assert.equal((await slow).status, 200);
  // express-session holds the response's last byte until its save is done.
  assert.deepEqual(view(await store.get(sid)), { user: 'ty', other: 'yes', page: '2' });
  assert.ok(seen.length >= 3, `the ttl function ran for every save (${seen.length})`);
  assert.deepEqual([...new Set(seen)], ['number']);
  const entry = (await store.client.list('merge-test', 0, 1000)).entries.find((e) => e.id === sid);
  assert.ok(entry.ttlMs > 3600000 - 60000, `the session's ttl ${entry.ttlMs} is the cookie's`);
});
