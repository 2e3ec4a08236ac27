'use strict';
// @fastify/session on a SessdStore: a "remember me" (a longer cookie.maxAge) set by one tab
// while a slow page of the same session, loaded before it, is still running. @fastify/session
// saves the slow page's session with the cookie it restored at its load, and sends the browser
// that cookie after the save: before stop 62 the slow page's save, merged over its kept read
// (keepReads), still wrote its own cookie over the other tab's (a copied session's cookie was
// always taken for changed), and the 30 days became the hour again, in sessd, in the stored
// cookie (whose expiry @fastify/session ends sessions by) and in the browser's cookie. A page
// that does set the lifetime (remember-me off, or on, in the slow page itself) still has its
// way. About 2 s.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { Daemon, Gates, cookieExpiresMs, once } = require('./helpers');
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
