'use strict';
// @fastify/session on a SessdStore, with requests of one visitor in flight at once.
// @fastify/session copies the session store.get() answers into its own Session (for...in),
// which drops connect-sessd's hidden record of what was read: its save cannot merge over that
// read, so (before stop 61) every save was a whole SET. A slow request loaded before a logout
// then wrote the logged-in session back after it (with @fastify/session's default rolling:
// true, even a page that changes nothing), and a cart item another tab added meanwhile was
// lost to the slow request's copy. The store now keeps its reads by session id for such saves
// (keepReads, see README.md, "Other frameworks"); these are the cases that failed.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { ReadKeeper } = require('../lib/store');
const { Daemon, Gates, collectWarnings, countCalls, once } = require('./helpers');
const { fastifyApp, json } = require('./apps61-fastify-app');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

async function newStore(t, namespace, opts = {}) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace, ...opts });
  await once(store, 'connect');
  return store;
}

// The cases with keepReads: true, and most of them with the option left out (detected:
// @fastify/session's first save turns it on, here the first cart add's).
for (const keepReads of [true, undefined]) {
  const named = keepReads === undefined ? 'keepReads detected' : 'keepReads: true';

  for (const logout of ['/logout', '/logout-regenerate']) {
    for (const note of keepReads ? [false, true] : [false]) {
      test(`@fastify/session (${named}): a slow page${note ? ' that changes a key' : ' that changes nothing'} loaded before a logout (${logout}) does not log the user back in`, async (t) => {
        const ns = `apps61-logout-${keepReads}-${logout.slice(1)}-${note}`;
        const warnings = collectWarnings(t, 'CONNECT_SESSD_KEEP_READS');
        const store = await newStore(t, ns, { keepReads });
        const gates = new Gates();
        const br = await fastifyApp(t, store, gates);
        json(await br.post('/cart?item=fig'));
        json(await br.post('/login?user=ann'));
        const { sid } = json(await br.get('/page'));

        const slow = br.get(`/slow?name=A${note ? '&note=late' : ''}`);
        await gates.arrived('A');
        json(await br.post(logout));
        assert.equal(await store.client.ttl(ns, sid), null, 'the logout ended the session');
        gates.open('A');
        assert.equal(json(await slow).user, 'ann', 'the slow page was served to the user it loaded');

        assert.equal(await store.client.ttl(ns, sid), null, 'the slow page\'s save brought the logged-out session back');
        assert.equal(await store.get(sid), null);
        // The browser holds the cookie of whichever response came last (the slow page's: the
        // old id); either way it is logged out.
        const after = json(await br.get('/page'));
        assert.equal(after.user, null, 'the visitor is logged in again after the logout');
        assert.equal(warnings.length, keepReads === undefined ? 1 : 0, warnings.join('\n'));
      });
    }
  }

  test(`@fastify/session (${named}): a cart item another tab adds while a slow page is loaded is kept`, async (t) => {
    const ns = `apps61-cart-${keepReads}`;
    const store = await newStore(t, ns, { keepReads });
    const gates = new Gates();
    const br = await fastifyApp(t, store, gates);
    json(await br.post('/login?user=bo'));
    json(await br.post('/cart?item=fig'));

    // A page that changes nothing (rolling: its save only renews the session), then one that
    // changes another key.
    for (const note of ['', 'late']) {
      const item = note ? 'plum' : 'pear';
      const slow = br.get(`/slow?name=A&note=${note}`);
      await gates.arrived('A');
      json(await br.post(`/cart?item=${item}`));
      gates.open('A');
      json(await slow);
    }
    const page = json(await br.get('/page'));
    assert.deepEqual(page.cart, ['fig', 'pear', 'plum'], 'the slow page\'s save undid the other tab\'s cart adds');
    assert.equal(page.note, 'late', 'the slow page\'s own change is saved');
    assert.equal(page.user, 'bo');
    // Each request's save claimed its read (rolling: every request saves): none is left kept.
    assert.equal(store.keptReads.count, 0);
    assert.equal(store.keptReads.bytes, 0);
  });

  // Two tabs, each with a slow page: A loaded before the other tab's cart add, C after it. The
  // store holds two reads of the session when the first of them saves, and each save must
  // merge over its own read: over the other's, A's older cart looked like a change of A's and
  // was written back (A over C's read), or C took A's read and left A C's, the same (C first).
  for (const first of keepReads ? ['A', 'C'] : []) {
    test(`@fastify/session (${named}): two slow pages of one session, loaded before and after a cart add, each save over their own read (${first} ends first)`, async (t) => {
      const ns = `apps61-tabs-${keepReads}-${first}`;
      const store = await newStore(t, ns, { keepReads });
      const gates = new Gates();
      const br = await fastifyApp(t, store, gates);
      json(await br.post('/login?user=cy'));
      json(await br.post('/cart?item=fig'));

      const pages = {};
      pages.A = br.get('/slow?name=A&note=from-a');
      await gates.arrived('A');
      json(await br.post('/cart?item=pear'));
      pages.C = br.get('/slow?name=C&theme=dark');
      await gates.arrived('C');
      for (const name of first === 'A' ? ['A', 'C'] : ['C', 'A']) {
        gates.open(name);
        json(await pages[name]);
      }
      const page = json(await br.get('/page'));
      assert.deepEqual(page.cart, ['fig', 'pear']);
      assert.equal(page.note, 'from-a');
      assert.equal(page.theme, 'dark');
      assert.equal(page.user, 'cy');
    });
  }
}

// A key every request changes, merged by the app's mergeKey (README's mergeCart): 20 cart adds
// at once, all kept. Before stop 61 a mergeKey did nothing under @fastify/session (every save
// whole), and an add was lost whenever another request had read the cart before it was saved.
test('@fastify/session (keepReads: true): 20 cart adds at once all stand with a mergeKey', async (t) => {
  const mergeCart = (base = [], mine = [], theirs = []) => {
    const removed = base.filter((item) => !mine.includes(item));
    const added = mine.filter((item) => !base.includes(item) && !theirs.includes(item));
    return [...theirs.filter((item) => !removed.includes(item)), ...added];
  };
  const store = await newStore(t, 'apps61-burst', { keepReads: true, mergeKey: (key, base, mine, theirs) => (key === 'cart' ? mergeCart(base, mine, theirs) : mine) });
  const br = await fastifyApp(t, store, new Gates());
  json(await br.post('/login?user=eve'));
  const adds = await Promise.all(Array.from({ length: 20 }, (_, i) => br.post(`/cart?item=i${i}`)));
  for (const r of adds) json(r);
  const { cart } = json(await br.get('/page'));
  assert.deepEqual([...cart].sort(), Array.from({ length: 20 }, (_, i) => `i${i}`).sort());
});

// keepReads: false is the old whole save, for an app that wants it (and shows that these tests
// can fail: the same slow page does log the user back in).
test('@fastify/session with keepReads: false: a slow page\'s whole save still undoes a logout', async (t) => {
  const ns = 'apps61-logout-off';
  const store = await newStore(t, ns, { keepReads: false });
  const gates = new Gates();
  const br = await fastifyApp(t, store, gates);
  json(await br.post('/login?user=di'));
  const { sid } = json(await br.get('/page'));
  const slow = br.get('/slow?name=A');
  await gates.arrived('A');
  json(await br.post('/logout'));
  gates.open('A');
  json(await slow);
  assert.ok(await store.client.ttl(ns, sid) > 0, 'whole, the save wrote the session back');
  assert.equal(store.keptReads, null);
});

// A copied session's save writes its cookie, never only touches: @fastify/session ends a
// session by the expiry its stored cookie holds (a restored Session whose cookie.expires has
// passed is regenerated), which a TOUCH_IF leaves as the last whole save wrote it; a user
// active for maxAge on pages that change nothing would be logged out. Checked through the
// store with a copy whose cookie is as read (@fastify/session's own differs each time by its
// originalExpires, so its saves write it anyway), and end to end: the stored expiry moves on.
test('a copied session\'s save writes the cookie, so the expiry its data holds moves on', async (t) => {
  const ns = 'apps61-cookie';
  const store = await newStore(t, ns, { keepReads: true });
  t.after(() => store.close());
  const expires = new Date(Date.now() + 3600000).toISOString();
  await store.set('copied-1', { cookie: { originalMaxAge: 3600000, expires, path: '/', httpOnly: true }, user: 'fay' });
  class Copy {}
  const copy = Object.assign(new Copy(), await store.get('copied-1'));
  const calls = countCalls(store.client, ['setIf', 'touchIf', 'set']);
  await store.set('copied-1', copy);
  assert.deepEqual(calls, ['setIf'], 'a copy whose cookie is as read was only touched');
  // A plain object of the app's own is saved whole, and takes no read a request may need.
  await store.get('copied-1');
  calls.length = 0;
  await store.set('copied-1', { cookie: { originalMaxAge: 3600000, expires, path: '/' }, user: 'gus' });
  assert.deepEqual(calls, ['set']);
  assert.equal(store.keptReads.count, 1);

  const gates = new Gates();
  const app = await newStore(t, `${ns}-app`, { keepReads: true });
  const br = await fastifyApp(t, app, gates);
  json(await br.post('/login?user=fay'));
  const { sid } = json(await br.get('/page'));
  const before = Date.parse((await app.get(sid)).cookie.expires);
  await new Promise((resolve) => setTimeout(resolve, 20));
  json(await br.get('/page'));
  assert.ok(Date.parse((await app.get(sid)).cookie.expires) > before, 'a page that changes nothing left the stored expiry as it was');
});

// The bounds of what the store keeps: a read that has waited KEPT_READ_MS (5 minutes) for its
// save is dropped (its save is whole), the oldest go past the byte budget, and one session keeps
// at most 16 reads (a stuck page's polls).
test('kept reads are bounded in time, in bytes and per session', () => {
  const age = new ReadKeeper(1000, 1e9);
  age.add('a', '{"x":1}', '{"x":1}', 0);
  age.add('b', '{"x":2}', '{"x":2}', 600);
  assert.equal(age.reads('a', 1000).length, 1);
  assert.equal(age.reads('a', 1001), undefined, 'a read kept past its age');
  assert.equal(age.reads('b', 1001).length, 1);
  assert.equal(age.count, 1);

  const text = JSON.stringify({ cart: 'x'.repeat(100) });
  const one = new ReadKeeper(1000, 1e9);
  one.add('k', text, text, 0);
  const size = one.bytes;
  // Each session's share of the budget (a sixteenth of it by default) is the whole here.
  const budget = new ReadKeeper(60000, 10 * size, 10 * size);
  for (let i = 0; i < 1000; i++) budget.add(`s${i}`, text, text, i);
  assert.equal(budget.count, 10);
  assert.ok(budget.bytes <= 10 * size);
  assert.equal(budget.reads('s989', 1000), undefined, 'an older read kept over the budget');
  assert.equal(budget.reads('s999', 1000).length, 1);
  assert.ok(budget.order.length - budget.head <= 2048, `the order keeps ${budget.order.length - budget.head} slots for 10 reads`);

  const perKey = new ReadKeeper(60000, 1e9);
  for (let i = 0; i < 20; i++) perKey.add('k', `{"n":${i}}`, `{"n":${i}}`, i);
  const kept = perKey.reads('k', 20);
  assert.equal(kept.length, 16);
  assert.equal(kept[0].text, '{"n":4}');
  for (const r of [...kept]) perKey.drop(r);
  assert.equal(perKey.reads('k', 20), undefined);
  assert.equal(perKey.count, 0);
  assert.equal(perKey.bytes, 0);
});

test('keepReads is a boolean, and needs merge', () => {
  assert.throws(() => new SessdStore({ url: 'unix:/nonexistent', keepReads: 'yes' }), /keepReads must be a boolean/);
  assert.throws(() => new SessdStore({ url: 'unix:/nonexistent', keepReads: true, merge: false }), /keepReads needs merge/);
});
