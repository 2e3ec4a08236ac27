'use strict';
// A store method given a session id that is no string reports a TypeError through its callback,
// or rejects the promise it returns without one; it never throws. set() and destroy() built the
// sessd key (prefix + id) before their promise, so a Symbol threw from the call itself, past
// the callback (an express-session save's error handling, an app's try-less
// store.destroy(id, cb)); regenerate() did the same and without a callback threw later, from
// process.nextTick, ending the process. null and undefined (store.destroy(req.sessionID) on a
// request without a session) named a session "null" or "undefined", one shared by every such
// caller: set() wrote it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { Daemon } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

const BAD_IDS = [
  ['a Symbol', Symbol('sid')],
  ['null', null],
  ['undefined', undefined],
  ['a number', 42],
  ['an object whose toString throws', { toString() { throw new Error('no string'); } }],
];

function session() {
  return { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), path: '/', httpOnly: true }, user: 'ann' };
}

// The calls, each given the id and an optional callback.
function calls(store) {
  return {
    get: (sid, cb) => store.get(sid, cb),
    set: (sid, cb) => store.set(sid, session(), cb),
    touch: (sid, cb) => store.touch(sid, session(), cb),
    destroy: (sid, cb) => store.destroy(sid, cb),
    regenerate: (sid, cb) => store.regenerate({ sessionID: sid }, cb),
  };
}

function isIdError(err) {
  return err instanceof TypeError;
}

for (const merge of [true, false]) {
  test(`store methods (merge ${merge}): an id that is no string reaches the callback, or rejects, as a TypeError`, async (t) => {
    const namespace = `touch-store-args-${merge}`;
    const store = new SessdStore({ url: daemon.unixUrl, namespace, merge });
    t.after(() => store.close());
    for (const [what, sid] of BAD_IDS) {
      for (const [name, call] of Object.entries(calls(store))) {
        if (name === 'destroy' && (sid === null || sid === undefined)) continue; // nothing to remove: see below
        let thrown = null;
        const answered = new Promise((resolve) => {
          try {
            call(sid, (err) => resolve(err));
          } catch (err) {
            thrown = err;
            resolve(undefined);
          }
        });
        const err = await answered;
        assert.equal(thrown, null, `${name}(${what}, cb) threw: ${thrown && thrown.message}`);
        assert.ok(isIdError(err), `${name}(${what}, cb) called back with ${err && err.message}`);
        let promise;
        try {
          promise = call(sid);
        } catch (e) {
          assert.fail(`${name}(${what}) threw: ${e.message}`);
        }
        assert.ok(promise instanceof Promise, `${name}(${what}) returned ${promise}, no promise`);
        await assert.rejects(promise, (e) => isIdError(e), `${name}(${what})`);
      }
    }
    // Nothing was written under the ids' string forms.
    for (const id of ['null', 'undefined', '42', 'Symbol(sid)']) {
      assert.equal(await store.client.get(namespace, id), null, `a session "${id}" was written`);
    }
  });
}

// The calls without an id never threw (their work is all in their promise): each answers
// through a callback, or returns a promise without one; migrateAll's bad options are errors
// the same way.
test('store methods without an id: a callback is answered, else a promise is returned; none throws', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'touch-store-args-list', prefix: 'p:' });
  t.after(() => store.close());
  await store.set('one', session());
  for (const name of ['all', 'ids', 'length', 'clear']) {
    const answered = await new Promise((resolve) => {
      assert.equal(store[name]((err, v) => resolve({ err, v })), undefined, `${name}(cb) returned something`);
    });
    assert.equal(answered.err, null, `${name}(cb): ${answered.err && answered.err.message}`);
    const promise = store[name]();
    assert.ok(promise instanceof Promise, `${name}() returned no promise`);
    await promise;
  }
  for (const opts of [{ concurrency: 0 }, 'fast', { concurrency: 1 }]) {
    const err = await new Promise((resolve) => {
      store.migrateAll(opts, (e) => resolve(e));
    });
    assert.ok(err instanceof TypeError || err instanceof RangeError, `migrateAll(${JSON.stringify(opts)}, cb) called back with ${err && err.message}`);
    await assert.rejects(store.migrateAll(opts), (e) => e instanceof TypeError || e instanceof RangeError);
  }
});

// destroy(null) and destroy(undefined) remove nothing and succeed, as connect-redis's and
// MemoryStore's do: an app's logout calling store.destroy(req.sessionID) without a callback on
// a request without a session got a rejection no one handled, which ends a Node process.
test('destroy(null) and destroy(undefined) succeed, removing nothing; without a callback no rejection goes unhandled', async (t) => {
  const namespace = 'touch-store-args-destroy-none';
  const store = new SessdStore({ url: daemon.unixUrl, namespace });
  t.after(() => store.close());
  await store.set('kept', session());
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  for (const sid of [null, undefined]) {
    assert.equal(await new Promise((resolve) => store.destroy(sid, (err) => resolve(err))), null, `destroy(${sid}, cb)`);
    assert.equal(await store.destroy(sid), undefined, `destroy(${sid})`);
    store.destroy(sid);
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled, []);
  assert.ok(await store.get('kept'), 'another session stays');
});
