'use strict';
// @fastify/session on a SessdStore with keepReads (stop 61), read adversarially at stop 62.
//
// "Remember me": a longer cookie.maxAge set by one tab
// while a slow page of the same session, loaded before it, is still running. @fastify/session
// saves the slow page's session with the cookie it restored at its load, and sends the browser
// that cookie after the save: before stop 62 the slow page's save, merged over its kept read
// (keepReads), still wrote its own cookie over the other tab's (a copied session's cookie was
// always taken for changed), and the 30 days became the hour again, in sessd, in the stored
// cookie (whose expiry @fastify/session ends sessions by) and in the browser's cookie. A page
// that does set the lifetime (remember-me off, or on, in the slow page itself) still has its
// way.
//
// Which kept read a save merges over. With @fastify/session's rolling: false (the README's
// advice against a slow page undoing a logout) a page that changes nothing does not save, and
// leaves its read kept until it ages out (5 minutes). A later request whose change takes the
// session back to what such a read holds (an item taken out of the cart again, a theme
// switched back) had its save matched to that older read (readOf: the read whose keys differ
// least from the copy) rather than its own: nothing looked changed, the save merged over the
// newer data and the change was lost with a 200.
//
// What the keeper holds: one session's share of the budget, and bytes kept as the socket read
// them. About 4 s.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { Session } = require('express-session');
const { ReadKeeper } = require('../lib/store');
const { Daemon, Gates, collectWarnings, cookieExpiresMs, countCalls, once } = require('./helpers');
const { fastifyApp, json, HOUR, MONTH } = require('./apps61-fastify-app');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

async function newStore(namespace, opts = {}) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace, ...opts });
  await once(store, 'connect');
  return store;
}

// lifetime(store, ns, sid, r): what ends the session: sessd's TTL, the stored cookie's
// originalMaxAge and expiry (from now), and the browser's cookie from the response r (from now).
async function lifetime(store, ns, sid, r) {
  const now = Date.now();
  const stored = await store.client.get(ns, sid);
  const cookie = stored === null ? null : JSON.parse(stored.toString('utf8')).cookie;
  return {
    ttl: await store.client.ttl(ns, sid),
    maxAge: cookie && cookie.originalMaxAge,
    storedLeft: cookie && Date.parse(cookie.expires) - now,
    browserLeft: r && cookieExpiresMs(r) - now,
  };
}

const DAY = 24 * HOUR;

for (const keepReads of [true, undefined]) {
  const named = keepReads === undefined ? 'keepReads detected' : 'keepReads: true';
  for (const note of keepReads ? ['', 'late'] : ['']) {
    test(`@fastify/session (${named}): "remember me" set in one tab outlives a slow page${note ? ' that changes a key' : ''}, loaded before it, that ends after`, async (t) => {
      const ns = `apps62-remember-${keepReads}-${note}`;
      const store = await newStore(ns, { keepReads });
      const gates = new Gates();
      const br = await fastifyApp(t, store, gates);
      json(await br.post('/cart?item=fig'));
      json(await br.post('/login?user=ann'));
      const { sid } = json(await br.get('/page'));

      const slow = br.get(`/slow?name=A&note=${note}`);
      await gates.arrived('A');
      const remembered = await br.post('/remember?on=1');
      json(remembered);
      const set = await lifetime(store, ns, sid, remembered);
      assert.ok(set.ttl > 29 * DAY && set.maxAge === MONTH && set.browserLeft > 29 * DAY, `the remember-me page did not set 30 days: ${JSON.stringify(set)}`);
      gates.open('A');
      const r = await slow;
      assert.equal(json(r).user, 'ann');

      const after = await lifetime(store, ns, sid, r);
      assert.equal(after.maxAge, MONTH, `the slow page wrote its hour back over "remember me": ${JSON.stringify(after)}`);
      assert.ok(after.ttl > 29 * DAY, `sessd ends the session in ${after.ttl} ms, not 30 days`);
      assert.ok(after.storedLeft > 29 * DAY, `the stored cookie ends in ${after.storedLeft} ms`);
      assert.ok(after.browserLeft > 29 * DAY, `the slow page's response gave the browser a cookie of ${after.browserLeft} ms`);
      const page = json(await br.get('/page'));
      assert.equal(page.user, 'ann');
      assert.equal(page.note, note || null);
      assert.deepEqual(page.cart, ['fig']);
      const next = await lifetime(store, ns, sid, null);
      assert.equal(next.maxAge, MONTH, 'the next page lost "remember me"');
    });
  }
}

// The other way round: "remember me" was on when the slow page loaded, another tab turns it
// off; the hour stands (taking the longer of the two kept a forgotten session for 30 days).
test('@fastify/session: "remember me" turned off in one tab stays off after a slow page loaded before it', async (t) => {
  const ns = 'apps62-forget';
  const store = await newStore(ns, { keepReads: true });
  const gates = new Gates();
  const br = await fastifyApp(t, store, gates);
  json(await br.post('/login?user=bo&remember=1'));
  const { sid } = json(await br.get('/page'));
  assert.equal((await lifetime(store, ns, sid, null)).maxAge, MONTH);

  const slow = br.get('/slow?name=A&note=late');
  await gates.arrived('A');
  json(await br.post('/remember?on=0'));
  gates.open('A');
  const r = await slow;
  json(r);
  const after = await lifetime(store, ns, sid, r);
  assert.equal(after.maxAge, HOUR, `the slow page wrote the 30 days it read back: ${JSON.stringify(after)}`);
  assert.ok(after.ttl <= HOUR && after.ttl > HOUR - 60000, `sessd ends the session in ${after.ttl} ms`);
  assert.ok(after.browserLeft <= HOUR + 1000, `the browser keeps its cookie ${after.browserLeft} ms`);
  assert.equal(json(await br.get('/page')).note, 'late');
});

// A slow page that itself sets the lifetime (its own remember-me box) has its way over a save
// of another tab made meanwhile that did not (a cart add), whose change is kept too.
test('@fastify/session: a slow page that sets "remember me" itself keeps it over another tab\'s save made meanwhile', async (t) => {
  const ns = 'apps62-slow-sets';
  const store = await newStore(ns, { keepReads: true });
  const gates = new Gates();
  const br = await fastifyApp(t, store, gates);
  json(await br.post('/login?user=cy'));
  const { sid } = json(await br.get('/page'));

  const slow = br.get('/slow?name=A&remember=1');
  await gates.arrived('A');
  json(await br.post('/cart?item=pear'));
  gates.open('A');
  const r = await slow;
  json(r);
  const after = await lifetime(store, ns, sid, r);
  assert.equal(after.maxAge, MONTH, JSON.stringify(after));
  assert.ok(after.ttl > 29 * DAY && after.browserLeft > 29 * DAY, JSON.stringify(after));
  assert.deepEqual(json(await br.get('/page')).cart, ['pear']);
});

for (const rolling of [false, true]) {
  test(`@fastify/session (rolling: ${rolling}): an item taken out of the cart again stays out after a page that read the cart without it`, async (t) => {
    const store = await newStore(`apps62-uncart-${rolling}`, { keepReads: true });
    const br = await fastifyApp(t, store, new Gates(), { rolling });
    json(await br.post('/login?user=ann'));
    json(await br.post('/cart?item=fig'));
    json(await br.get('/page'));
    json(await br.post('/cart?item=pear'));
    assert.deepEqual(json(await br.get('/page')).cart, ['fig', 'pear']);
    assert.deepEqual(json(await br.post('/cart/remove?item=pear')).cart, ['fig']);
    assert.deepEqual(json(await br.get('/page')).cart, ['fig'], 'the removal was answered 200 and lost');
  });
}

test('@fastify/session (rolling: false): a theme switched back stays switched back', async (t) => {
  const store = await newStore('apps62-theme', { keepReads: true });
  const br = await fastifyApp(t, store, new Gates(), { rolling: false });
  json(await br.post('/login?user=bo'));
  json(await br.post('/theme?theme=light'));
  json(await br.get('/page'));
  json(await br.post('/theme?theme=dark'));
  json(await br.get('/page'));
  json(await br.post('/theme?theme=light'));
  assert.equal(json(await br.get('/page')).theme, 'light', 'switching back to light was lost');
});

// One session's reads hold at most a sixteenth of the budget (the oldest go first past it), and
// a read larger than that is not kept at all (returned dropped: its save is whole), so that
// one visitor with a large session cannot push every other session's reads out. Before stop
// 62, 16 reads of a session of a sixteenth of the budget held all of it, and one read of the
// whole budget's size dropped every other read.
test('one session\'s kept reads hold at most a sixteenth of the budget', () => {
  const budget = 1600000;
  const keeper = new ReadKeeper(60000, budget);
  const small = JSON.stringify({ user: 'ann' });
  for (let i = 0; i < 20; i++) keeper.add(`other${i}`, small, small, i);
  const big = JSON.stringify({ blob: 'x'.repeat(budget / 16 - 1000) });
  for (let i = 0; i < 16; i++) keeper.add('big', big, big, 100 + i);
  assert.equal(keeper.reads('big', 200).length, 1, 'a large session kept more than its share');
  assert.ok(keeper.bytes <= budget);
  for (let i = 0; i < 20; i++) assert.equal(keeper.reads(`other${i}`, 200).length, 1, `other${i}'s read was pushed out by one session's`);

  const huge = JSON.stringify({ blob: 'y'.repeat(budget) });
  const read = keeper.add('huge', huge, huge, 300);
  assert.equal(read.kept, false, 'a read past a session\'s share is kept');
  // Its token holds it (stop 63: test/node63-fastify-busy-keeper.test.js).
  assert.equal(read.text, huge);
  assert.equal(keeper.reads('huge', 300), undefined);
  for (let i = 0; i < 20; i++) assert.equal(keeper.reads(`other${i}`, 300).length, 1, `other${i}'s read was pushed out by a huge one`);
});

// A kept read of bytes (a session that is not UTF-8) held the socket read they are a view of:
// other replies, such as a large session read beside it, stayed in memory past what the budget
// counts. Through the store and sessd: what the kept reads hold, each ArrayBuffer once, is at
// most what the budget counts. Before stop 62: 20 reads of 90 bytes counted 14,080 bytes and held
// 2,623,240, the chunks their replies came in.
test('kept reads of bytes hold no more memory than the budget counts', async (t) => {
  const store = await newStore('apps62-views', { keepReads: true });
  t.after(() => store.close());
  const expires = new Date(Date.now() + 3600000).toISOString();
  const latin1 = Buffer.concat([Buffer.from(`{"cookie":{"originalMaxAge":3600000,"expires":"${expires}"},"name":"caf`), Buffer.from([0xe9]), Buffer.from('"}')]);
  const large = Buffer.from(JSON.stringify({ blob: 'z'.repeat(120000) }));
  await store.client.set('apps62-views', 'large', large, 3600000);
  for (let i = 0; i < 20; i++) await store.client.set('apps62-views', `s${i}`, latin1, 3600000);
  for (let i = 0; i < 20; i++) await Promise.all([store.client.get('apps62-views', 'large'), store.get(`s${i}`), store.client.get('apps62-views', 'large')]);
  const held = new Set();
  let bytes = 0;
  for (const [, list] of store.keptReads.byKey) {
    for (const r of list) {
      for (const v of [r.data, r.text]) {
        if (typeof v === 'string') bytes += Buffer.byteLength(v);
        else if (v !== null && !held.has(v.buffer)) {
          held.add(v.buffer);
          bytes += v.buffer.byteLength;
        }
      }
    }
  }
  assert.equal(store.keptReads.count, 20);
  assert.ok(bytes <= store.keptReads.bytes, `the kept reads hold ${bytes} bytes; the budget counts ${store.keptReads.bytes}`);
});

// Two fastify apps on one store (two routes of a site, or two instances in one process) and a
// third on a store of its own (another process): a slow page on the first, a cart add on the
// third, a theme set on the second, "remember me" ticked on the third, all while the slow
// page is loaded; each change stands after it ends, and so do the 30 days.
test('@fastify/session: two apps on one store and one on another, each change made while a slow page runs stands', async (t) => {
  const ns = 'apps62-apps';
  const shared = await newStore(ns, { keepReads: true });
  const other = await newStore(ns, { keepReads: true });
  const gates = new Gates();
  const one = await fastifyApp(t, shared, gates);
  const two = await fastifyApp(t, shared, gates);
  const three = await fastifyApp(t, other, gates);
  json(await one.post('/login?user=di'));
  const { sid } = json(await one.get('/page'));
  // One visitor: the same cookie on each app (as behind a load balancer).
  two.cookies = one.cookies;
  three.cookies = one.cookies;
  const slow = one.get('/slow?name=A&note=slow');
  await gates.arrived('A');
  json(await three.post('/cart?item=fig'));
  json(await two.post('/theme?theme=dark'));
  json(await three.post('/remember?on=1'));
  gates.open('A');
  const r = await slow;
  assert.equal(json(r).user, 'di');
  const page = json(await two.get('/page'));
  assert.deepEqual(page.cart, ['fig']);
  assert.equal(page.theme, 'dark');
  assert.equal(page.note, 'slow');
  const after = await lifetime(shared, ns, sid, r);
  assert.equal(after.maxAge, MONTH, JSON.stringify(after));
  assert.ok(after.ttl > 29 * DAY && after.browserLeft > 29 * DAY, JSON.stringify(after));
  assert.equal(shared.keptReads.count, 0, 'a read is left kept after every request saved');
});

// keepReads turns itself on only for a session object of another framework's class. An
// Express app's are express-session's Session (a subclass too), or carry req as their own
// property (another copy of express-session); a plain object or one without a prototype is
// the app's own store.set(). None of them turns it on (nor warns): an Express app that did
// would keep every read for 5 minutes and pay for it on every page.
test('keepReads is not turned on by an Express session, a subclass of one, or an object of the app\'s', async (t) => {
  const warnings = collectWarnings(t, 'CONNECT_SESSD_KEEP_READS');
  const store = await newStore('apps62-detect');
  t.after(() => store.close());
  const cookie = () => ({ originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), path: '/' });
  class AppSession extends Session {}
  const fakeReq = { sessionID: 'x', sessionStore: store };
  const sessions = [
    { user: 'plain', cookie: cookie() },
    Object.assign(Object.create(null), { user: 'no prototype', cookie: cookie() }),
    Object.assign(new Session(fakeReq), { user: 'express-session', cookie: cookie() }),
    Object.assign(new AppSession(fakeReq), { user: 'subclass', cookie: cookie() }),
  ];
  // Another copy of express-session's Session: its own class, req its own property.
  class OtherCopy {
    constructor(req) {
      Object.defineProperty(this, 'req', { value: req });
    }
  }
  sessions.push(Object.assign(new OtherCopy(fakeReq), { user: 'other copy', cookie: cookie() }));
  for (const [i, sess] of sessions.entries()) {
    await store.get(`d${i}`);
    await store.set(`d${i}`, sess);
  }
  assert.equal(store.keptReads, null, 'keepReads was turned on');
  assert.deepEqual(warnings, []);
  // A class of another framework does turn it on, with one warning.
  class OtherFramework {}
  await store.set('d9', Object.assign(new OtherFramework(), { user: 'fw', cookie: cookie() }));
  await store.set('d9', Object.assign(new OtherFramework(), { user: 'fw', cookie: cookie() }));
  assert.notEqual(store.keptReads, null);
  assert.equal(warnings.length, 1);
});

// A save whose own read has gone out of the keeper (aged, or past the budget) merges over it all
// the same (stop 63: its token holds it; before, it was whole), and takes no other read of the
// session: that read is not the one its object was copied from, and may hold what its request
// changed a key back to. The other read stays for its own request's save.
test('a copy whose read aged out of the keeper merges over it and leaves the other reads kept', async (t) => {
  const ns = 'apps62-dropped';
  const store = await newStore(ns, { keepReads: true });
  t.after(() => store.close());
  store.keptReads = new ReadKeeper(50);
  const expires = new Date(Date.now() + 3600000).toISOString();
  await store.set('d', { cookie: { originalMaxAge: 3600000, expires, path: '/' }, n: 0 });
  class Copy {}
  // @fastify/session keeps the read cookie's token in the cookie options it holds on its Session
  // (a symbol-keyed property): here as a copy keeps it.
  const copy = async () => {
    const read = await store.get('d');
    const c = Object.assign(new Copy(), read);
    c[Symbol('cookie options')] = { ...read.cookie };
    c.cookie = { ...read.cookie };
    return c;
  };
  const a = await copy();
  await new Promise((resolve) => setTimeout(resolve, 80));
  const b = await copy();
  assert.equal(store.keptReads.count, 1, 'a\'s read is still kept past its age');
  const calls = countCalls(store.client, ['setIf', 'touchIf', 'set']);
  a.n = 1;
  await store.set('d', a);
  assert.deepEqual(calls, ['setIf'], 'a copy whose read aged out was saved whole');
  assert.equal(store.keptReads.count, 1, 'it took the other request\'s read');
  // b's save merges over its own read: a CONFLICT with a's write, then its change over it.
  calls.length = 0;
  b.m = 2;
  await store.set('d', b);
  assert.deepEqual(calls, ['setIf', 'setIf']);
  const stored = JSON.parse((await store.client.get(ns, 'd')).toString());
  assert.equal(stored.n, 1, 'b\'s save undid a\'s change');
  assert.equal(stored.m, 2);
});
