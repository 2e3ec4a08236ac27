'use strict';
// keepReads (stop 61) read adversarially: which kept read a copied session's save merges over,
// and what the keeper holds. About 2 s.
//
// With @fastify/session's rolling: false (the README's advice against a slow page undoing a
// logout) a page that changes nothing does not save, and leaves its read kept until it ages
// out (5 minutes). A later request whose change takes the session back to what such a read
// holds (an item taken out of the cart again, a theme switched back) had its save matched to
// that older read (readOf: the read whose keys differ least from the copy) rather than its
// own: nothing looked changed, the save merged over the newer data and the change was lost
// with a 200.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { ReadKeeper } = require('../lib/store');
const { Daemon, Gates, once } = require('./helpers');
const { fastifyApp, json } = require('./apps61-fastify-app');

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
  assert.equal(read.key, null, 'a read past a session\'s share is returned dropped');
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
