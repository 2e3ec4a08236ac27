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

const HOUR_MS = 3600000;
const cookie = () => ({ originalMaxAge: HOUR_MS, expires: new Date(Date.now() + HOUR_MS).toISOString(), path: '/' });

// opened(t, opts): a SessdStore on the daemon, ready, closed after t. Its calls are made as
// promises here (express-session's callbacks are covered by save-basis.test.js).
async function opened(t, opts) {
  const s = new SessdStore({ url: daemon.unixUrl, poolSize: 1, ...opts });
  t.after(() => s.close());
  await s.client.ready();
  return s;
}

// oldCall(old, method, ...args): the old store's (MemoryStore's) call, which takes a callback only.
const oldCall = (old, method, ...args) => new Promise((resolve, reject) => old[method](...args, (err, v) => (err ? reject(err) : resolve(v ?? null))));

test('a queued save sessd refuses (too large) leaves the save behind it the basis sessd holds: one SET_IF, no GET, nothing of the refused one written', async (t) => {
  const s = await opened(t, { namespace: 'review57-refused' });
  const maxData = Number((await s.client.ready()).max_data);
  await s.set('refused', { cookie: cookie(), user: 'ann' });
  const read = await Promise.all([0, 1, 2].map(() => s.get('refused')));
  read[0].tab0 = 0;
  read[1].tab1 = 'x'.repeat(maxData);
  read[2].tab2 = 2;
  const ops = countCalls(s.client, ['setIf', 'get']);
  const outcomes = await Promise.allSettled(read.map((sess) => s.set('refused', sess)));
  assert.equal(outcomes[0].status, 'fulfilled');
  assert.equal(outcomes[1].status, 'rejected', 'the save over max_data was refused');
  assert.equal(outcomes[2].status, 'fulfilled', String(outcomes[2].reason));
  assert.deepEqual(ops, ['setIf', 'setIf', 'setIf'], `sent ${ops.join(', ')}`);
  const after = await s.get('refused');
  assert.equal(after.tab0, 0);
  assert.equal(after.tab1, undefined);
  assert.equal(after.tab2, 2);
  assert.equal(s.lastWritten.size, 0);
});

test('migrateFrom: tabs of a session the old store held read it as the first moved it; their queued saves all stand, none brings the old copy back', async (t) => {
  const old = new session.MemoryStore();
  await oldCall(old, 'set', 'moved', { cookie: cookie(), user: 'ann' });
  const s = await opened(t, { namespace: 'review57-migrate', migrateFrom: old });
  const read = await Promise.all([0, 1, 2, 3].map(() => s.get('moved')));
  read.forEach((sess, i) => {
    assert.equal(sess.user, 'ann');
    sess[`tab${i}`] = i;
  });
  const ops = countCalls(s.client, ['setIf', 'get']);
  await Promise.all(read.map((sess) => s.set('moved', sess)));
  assert.equal(ops.filter((op) => op === 'get').length, 0, `sent ${ops.join(', ')}`);
  const after = await s.get('moved');
  for (let i = 0; i < 4; i++) assert.equal(after[`tab${i}`], i);
  assert.equal(await oldCall(old, 'get', 'moved'), null, 'the old copy is gone');
  assert.equal(s.lastWritten.size, 0);
  // A logout, then a save of a tab that read before it: the session stays gone in both stores.
  const late = await s.get('moved');
  await s.destroy('moved');
  late.tab9 = 9;
  await s.set('moved', late);
  assert.equal(await s.get('moved'), null);
  assert.equal(await oldCall(old, 'get', 'moved'), null);
});
