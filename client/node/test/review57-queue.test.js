'use strict';
// A save queued behind this process's save of the same session starts from the bytes the
// latest of those saves wrote (SessdStore's lastWritten, see save-basis.test.js). Two cases
// beside that test's: a save in the middle of the queue that sessd refuses leaves the bytes of
// the one before it as the basis, which sessd still holds (the save behind it needs no GET, and
// the refused change is not written by it); and a store migrating from another (migrateFrom),
// whose tabs read the session the first of them moved, queue and merge the same way.

const test = require('node:test');
const assert = require('node:assert/strict');
const session = require('express-session');
const { SessdStore } = require('..');
const { Daemon, countCalls } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

function call(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

function hourCookie() {
  return { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' };
}

async function store(t, namespace, opts = {}) {
  const s = new SessdStore({ url: daemon.unixUrl, namespace, poolSize: 1, ...opts });
  t.after(() => s.close());
  await s.client.ready();
  return s;
}

test('a queued save sessd refuses (too large) leaves the save behind it the basis sessd holds: one SET_IF, no GET, nothing of the refused one written', async (t) => {
  const s = await store(t, 'review57-refused');
  const maxData = Number((await s.client.ready()).max_data);
  await call((cb) => s.set('refused', { cookie: hourCookie(), user: 'ann' }, cb));
  const read = await Promise.all([0, 1, 2].map(() => call((cb) => s.get('refused', cb))));
  read[0].tab0 = 0;
  read[1].tab1 = 'x'.repeat(maxData);
  read[2].tab2 = 2;
  const ops = countCalls(s.client, ['setIf', 'get']);
  const outcomes = await Promise.allSettled(read.map((sess) => call((cb) => s.set('refused', sess, cb))));
  assert.equal(outcomes[0].status, 'fulfilled');
  assert.equal(outcomes[1].status, 'rejected', 'the save over max_data was refused');
  assert.equal(outcomes[2].status, 'fulfilled', String(outcomes[2].reason));
  assert.deepEqual(ops, ['setIf', 'setIf', 'setIf'], `sent ${ops.join(', ')}`);
  const after = await call((cb) => s.get('refused', cb));
  assert.equal(after.tab0, 0);
  assert.equal(after.tab1, undefined);
  assert.equal(after.tab2, 2);
  assert.equal(s.lastWritten.size, 0);
});

test('migrateFrom: tabs of a session the old store held read it as the first moved it; their queued saves all stand, none brings the old copy back', async (t) => {
  const old = new session.MemoryStore();
  await call((cb) => old.set('moved', { cookie: hourCookie(), user: 'ann' }, cb));
  const s = await store(t, 'review57-migrate', { migrateFrom: old });
  const read = await Promise.all([0, 1, 2, 3].map(() => call((cb) => s.get('moved', cb))));
  read.forEach((sess, i) => {
    assert.equal(sess.user, 'ann');
    sess[`tab${i}`] = i;
  });
  const ops = countCalls(s.client, ['setIf', 'get']);
  await Promise.all(read.map((sess) => call((cb) => s.set('moved', sess, cb))));
  assert.equal(ops.filter((op) => op === 'get').length, 0, `sent ${ops.join(', ')}`);
  const after = await call((cb) => s.get('moved', cb));
  for (let i = 0; i < 4; i++) assert.equal(after[`tab${i}`], i);
  assert.equal(await call((cb) => old.get('moved', cb)) ?? null, null, 'the old copy is gone');
  assert.equal(s.lastWritten.size, 0);
  // A logout, then a save of a tab that read before it: the session stays gone in both stores.
  const late = await call((cb) => s.get('moved', cb));
  await call((cb) => s.destroy('moved', cb));
  late.tab9 = 9;
  await call((cb) => s.set('moved', late, cb));
  assert.equal(await call((cb) => s.get('moved', cb)), null);
  assert.equal(await call((cb) => old.get('moved', cb)) ?? null, null);
});
