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
