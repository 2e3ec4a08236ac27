'use strict';
// @fastify/session on a SessdStore (keepReads) on a busy site, read adversarially at stop 63.
//
// A slow page's save merges over the read it was copied from (stop 62's token on the read's
// cookie). Until stop 63 the token named the read, but the read's bytes lived in the store's
// keeper, whose bounds (32 MiB in all, 2 MiB and 16 reads a session, 5 minutes) dropped them
// under load: with @fastify/session's rolling: false (the README's advice) every page view
// that changes nothing leaves its read kept until it ages out, so a site of 2,000 page views
// a second with 2 KB sessions fills the budget in seconds, and then a slow page's save was
// whole: a logout made in another tab meanwhile was undone (the visitor logged in again), a
// cart item added meanwhile was dropped, answered 200. So was every save of a session over
// the per-session share, and of a page that stalled past the 5 minutes. The token now holds
// the read itself for as long as its request's session object lives; the keeper's bounds
// apply to the reads it keeps for frameworks that carry no token.
//
// Here the keeper is given a small budget (what 100 page views fill) and 100 other visitors
// view a page while the slow page runs: the same shape as a busy site, a thousand times
// smaller. About 2 s.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { ReadKeeper } = require('../lib/store');
const { Daemon, Browser, Gates, once } = require('./helpers');
const { fastifyApp, json } = require('./apps61-fastify-app');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

async function newStore(namespace, opts = {}) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace, keepReads: true, ...opts });
  await once(store, 'connect');
  return store;
}

// busy(br, n): n other visitors, each logged in, view a page (rolling: false: their reads
// stay kept), enough to push every older read out of a keeper of 32 KiB.
async function busy(br, n) {
  const visitors = Array.from({ length: n }, () => new Browser(br.base));
  for (const v of visitors) json(await v.post(`/login?user=v${Math.random()}`));
  await Promise.all(visitors.map(async (v) => json(await v.get('/page'))));
}

const BUDGET = 32 * 1024;

for (const change of ['logout', 'cart']) {
  test(`@fastify/session (rolling: false): a ${change === 'logout' ? 'logout' : 'cart add'} in another tab stands after a slow page whose read other visitors' page views pushed out of the keeper`, async (t) => {
    const ns = `node63-busy-${change}`;
    const store = await newStore(ns);
    store.keptReads = new ReadKeeper(300000, BUDGET);
    const gates = new Gates();
    const br = await fastifyApp(t, store, gates, { rolling: false });
    json(await br.post('/login?user=ann'));
    json(await br.post('/cart?item=fig'));
    const { sid } = json(await br.get('/page'));

    const slow = br.get('/slow?name=A&note=late');
    await gates.arrived('A');
    await busy(br, 100);
    const tab = new Browser(br.base);
    tab.cookies = new Map(br.cookies);
    if (change === 'logout') json(await tab.post('/logout'));
    else json(await tab.post('/cart?item=pear'));
    gates.open('A');
    json(await slow);

    const stored = await store.client.get(ns, sid);
    if (change === 'logout') {
      assert.equal(stored, null, 'the slow page wrote the session back after the logout: the visitor is logged in again');
    } else {
      const sess = JSON.parse(stored.toString('utf8'));
      assert.deepEqual(sess.cart, ['fig', 'pear'], 'the cart item added in the other tab was answered 200 and lost');
      assert.equal(sess.note, 'late');
    }
    assert.ok(store.keptReads.bytes <= BUDGET, `the keeper counts ${store.keptReads.bytes} bytes`);
  });
}

// A session over its share of the keeper (a sixteenth of the budget; 2 MiB by default) was not
// kept at all: its saves were whole, each a logout's undoing. Its request's own session object
// holds it now, as it holds the session.
test('@fastify/session: a logout stands after a slow page of a session larger than its share of the keeper', async (t) => {
  const ns = 'node63-large';
  const store = await newStore(ns);
  store.keptReads = new ReadKeeper(300000, BUDGET);
  const gates = new Gates();
  const br = await fastifyApp(t, store, gates);
  json(await br.post('/login?user=bo'));
  for (let i = 0; i < 4; i++) json(await br.post(`/cart?item=${'x'.repeat(1000)}${i}`));
  const { sid } = json(await br.get('/page'));
  const slow = br.get('/slow?name=A&note=late');
  await gates.arrived('A');
  assert.equal(store.keptReads.count, 0, 'the large session\'s read is in the keeper: the case is not made');
  json(await br.post('/logout'));
  gates.open('A');
  json(await slow);
  assert.equal(await store.client.get(ns, sid), null, 'the slow page wrote the large session back after the logout');
});
