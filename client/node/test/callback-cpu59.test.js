'use strict';
// get() and set() called with a callback (as express-session calls them) answer it straight from
// their work, not through a promise of it: each outcome must still reach the callback once, on
// a later tick, as withCallback gave it: a session, null, the serializer's error (thrown, or
// its promise's), a thenable's value; a failed save's error, with no unhandled rejection, and
// the save queued behind it still made.

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

// call(fn): fn's callback's (err, value) once it comes, failing if it comes twice or in the
// same tick as the call.
function call(fn) {
  return new Promise((resolve) => {
    let sync = true;
    let calls = 0;
    fn((err, v) => {
      calls++;
      assert.equal(calls, 1, 'the callback was called twice');
      assert.equal(sync, false, 'the callback was called before the call returned');
      resolve({ err, v });
    });
    sync = false;
  });
}

function unhandled(t) {
  const seen = [];
  const on = (err) => seen.push(err);
  process.on('unhandledRejection', on);
  t.after(() => process.off('unhandledRejection', on));
  return seen;
}

const cookie = () => ({ originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() });

test('get(sid, cb): a session, null, an unreadable one, each once and later', async (t) => {
  const ns = 'cb-get';
  const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  t.after(() => store.close());
  const seen = unhandled(t);
  await store.set('a', { cookie: cookie(), n: 1 });
  await store.client.set(ns, 'bad', Buffer.from('{"n": tru'), 60000);
  const got = await call((cb) => store.get('a', cb));
  assert.equal(got.err, null);
  assert.equal(got.v.n, 1);
  assert.deepEqual(await call((cb) => store.get('none', cb)), { err: null, v: null });
  const bad = await call((cb) => store.get('bad', cb));
  assert.ok(bad.err instanceof SyntaxError, String(bad.err));
  assert.equal(bad.v, undefined);
  assert.equal((await call((cb) => store.get(42, cb))).err.constructor, TypeError);
  assert.equal((await store.get('a')).n, 1);
  await assert.rejects(store.get('bad'), SyntaxError);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(seen, []);
});

test('get(sid, cb) with a serializer whose parse throws, returns a promise or a thenable', async (t) => {
  const ns = 'cb-get-serializer';
  const outcomes = {
    throws: () => {
      throw new Error('parse threw');
    },
    rejects: async () => {
      throw new Error('parse rejected');
    },
    resolves: async (text) => JSON.parse(text),
    thenable: (text) => ({ then: (resolve) => resolve(JSON.parse(text)) }),
  };
  for (const [name, parse] of Object.entries(outcomes)) {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: ns, serializer: { stringify: JSON.stringify, parse } });
    t.after(() => store.close());
    await store.client.set(ns, name, Buffer.from(JSON.stringify({ cookie: cookie(), name })), 60000);
    const got = await call((cb) => store.get(name, cb));
    if (name === 'throws' || name === 'rejects') {
      assert.match(String(got.err), /parse (threw|rejected)/, name);
    } else {
      assert.equal(got.err, null, name);
      assert.equal(got.v.name, name);
    }
  }
});

test('set(sid, sess, cb): a failed save answers its error, rejects nothing unhandled, and the save behind it is made', async (t) => {
  const ns = 'cb-set';
  let fail = false;
  const store = new SessdStore({
    url: daemon.unixUrl,
    namespace: ns,
    ttl: () => {
      if (fail) throw new Error('ttl failed');
      return 60;
    },
  });
  t.after(() => store.close());
  const seen = unhandled(t);
  await store.set('s', { cookie: cookie(), n: 0 });
  const read = await call((cb) => store.get('s', cb));
  const sess = read.v;
  sess.n = 1;
  fail = true;
  const failed = call((cb) => store.set('s', sess, cb));
  // Queued behind the failing save of the same object.
  const after = new Promise((resolve) => {
    setImmediate(() => {
      fail = false;
      sess.n = 2;
      resolve(call((cb) => store.set('s', sess, cb)));
    });
  });
  fail = true;
  const first = await failed;
  assert.match(String(first.err), /ttl failed/);
  const second = await after;
  assert.equal(second.err, null);
  assert.equal(second.v, undefined);
  assert.equal(JSON.parse((await store.client.get(ns, 's')).toString()).n, 2);
  await assert.rejects(store.set('s', null), TypeError);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(seen, []);
});
