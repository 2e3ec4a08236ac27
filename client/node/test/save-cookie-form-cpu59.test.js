'use strict';
// A merged save leaves the form of the cookie as read to be made when asked for (readForms'
// ReadForm, made by formAt): a save that goes through replaces the read forms, and the cookies
// are compared without it. Where the read forms outlive the save (a save that changed nothing,
// a CONFLICT merged over another request's save), every use must see the form made: taken as
// it is, the cookie reads as changed and a "remember me" another request saved is written
// over, and mergeKey is handed no base.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { assertSetterMaxAge, Daemon } = require('./helpers');

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

// A request's session, read as express-session reads it (get, then createSession).
async function load(store, sid) {
  const data = await call((cb) => store.get(sid, cb));
  return store.createSession({ sessionID: sid, sessionStore: store }, data);
}

const DAY = 86400000;
function fresh(extra) {
  return { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' }, ...extra };
}

test('a save that changed nothing, then one that did: another request\'s "remember me" stands', async (t) => {
  const ns = 'cookie-form-remember';
  const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  t.after(() => store.close());
  await call((cb) => store.set('s', fresh({ n: 1 }), cb));
  const mine = await load(store, 's');
  // This request saves first with nothing changed: a touch, its read forms kept.
  await call((cb) => store.set('s', mine, cb));
  const theirs = await load(store, 's');
  theirs.cookie.maxAge = DAY;
  await call((cb) => store.set('s', theirs, cb));
  // Now this request changes n alone: merged over theirs, their cookie kept.
  mine.n = 2;
  await call((cb) => store.set('s', mine, cb));
  const stored = JSON.parse((await store.client.get(ns, 's')).toString());
  assert.equal(stored.n, 2);
  assertSetterMaxAge(stored.cookie.originalMaxAge, DAY, 'the other request\'s cookie was written over');
});

test('mergeKey is handed the cookie as read for its base, when both requests changed it', async (t) => {
  const ns = 'cookie-form-mergekey';
  const calls = [];
  const store = new SessdStore({
    url: daemon.unixUrl,
    namespace: ns,
    mergeKey: (key, base, mine, theirs) => {
      calls.push({ key, base });
      return mine;
    },
  });
  t.after(() => store.close());
  const first = fresh({ n: 1 });
  await call((cb) => store.set('s', first, cb));
  const mine = await load(store, 's');
  const theirs = await load(store, 's');
  theirs.cookie.maxAge = DAY;
  await call((cb) => store.set('s', theirs, cb));
  // A change of the cookie that sameCookieAsRead tells at once (its path), so that the save
  // compares no cookie forms before its CONFLICT.
  mine.cookie.path = '/shop';
  await call((cb) => store.set('s', mine, cb));
  const cookieCalls = calls.filter((c) => c.key === 'cookie');
  assert.equal(cookieCalls.length, 1, `mergeKey calls: ${JSON.stringify(calls)}`);
  assert.deepEqual(cookieCalls[0].base, first.cookie, 'the base is not the cookie as read');
  const stored = JSON.parse((await store.client.get(ns, 's')).toString());
  assert.equal(stored.cookie.path, '/shop');
});
