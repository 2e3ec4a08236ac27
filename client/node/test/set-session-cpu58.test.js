'use strict';
// set(sid, sess) with a session that is no object (null, undefined, a string, a number): a
// TypeError through the callback or the promise, nothing stored. express-session always hands
// set() its Session; such a call is an app's own (store.set(id, null) meant as a logout, say).
// Stored, the text "null" read back as no session, but held the id for a day and made every
// all() fail ("Cannot set properties of null", setting its id), so an admin page listing
// sessions broke until it expired. connect-redis stores it the same way; MemoryStore stores it
// and then throws from get().

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { Daemon } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(async () => {
  await daemon.cleanup();
});

function call(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

for (const merge of [true, false]) {
  test(`set(sid, x) for x no object is a TypeError, nothing stored, all() still works (merge ${merge})`, async (t) => {
    const ns = `set-session-${merge}`;
    const store = new SessdStore({ url: daemon.unixUrl, namespace: ns, merge });
    t.after(() => store.close());
    await call((cb) => store.set('good', { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, n: 1 }, cb));
    for (const [i, bad] of [null, undefined, 'text', 42, true].entries()) {
      const sid = `bad-${i}`;
      await assert.rejects(call((cb) => store.set(sid, bad, cb)), (err) => err instanceof TypeError && /session must be an object/.test(err.message), `callback, ${String(bad)}`);
      await assert.rejects(store.set(sid, bad), (err) => err instanceof TypeError && /session must be an object/.test(err.message), `promise, ${String(bad)}`);
      assert.equal(await store.client.get(ns, sid), null, `${String(bad)} was stored`);
    }
    const all = await call((cb) => store.all(cb));
    assert.deepEqual(all.map((s) => s.id), ['good']);
  });
}

// The id is checked before the session: a bad id says so, whatever the session is.
test('set() with a bad id and a bad session names the id', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'set-session-id' });
  t.after(() => store.close());
  await assert.rejects(store.set(42, null), /session id must be a string, got number/);
});
