'use strict';
// A change that sessd refuses outright, for want of memory (NO_MEMORY, at --max-memory) or of
// disk (IO_ERROR, once a full disk is known), changed nothing (PROTOCOL.md "Statuses",
// sessd(8) "Durability"): its SessdError says notCarriedOut, and the example shop's error page
// says the change was not done (it said "may or may not have been done"). A change sent again
// after a break and refused says only that its second send changed nothing: that error keeps
// "may or may not" (users63-full-disk). An admin request refused so is not sent again and again
// (adminRetry sends notCarriedOut ones again).

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { Client, SessdError } = require('..');
const { Daemon, countCalls } = require('./helpers');
const { demoShop, cartOf } = require('./demo-shop');

// fill(client, ns): sets sessions in ns, smaller and smaller, until sessd refuses even a small
// one: the store is full to within a few dozen bytes. Returns the last refusal.
async function fill(client, ns) {
  let refusal = null;
  let n = 0;
  for (const size of [4000, 400, 40]) {
    for (let i = 0; i < 100000; i++) {
      try {
        await client.set(ns, `f${n++}`, Buffer.alloc(size, 0x61), 600000);
      } catch (err) {
        refusal = err;
        break;
      }
    }
  }
  return refusal;
}

test('the example shop at --max-memory: a cart add refused NO_MEMORY says it was not done, and it was not', async (t) => {
  const { store, br } = await demoShop(t, { namespace: 'node65-full', daemonArgs: ['--max-memory', '1M'], login: 'Ann' });
  assert.equal((await br.post('/cart', { item: '2 lemons' })).status, 303);
  const refusal = await fill(store.client, 'node65-filler');
  assert.ok(refusal instanceof SessdError && refusal.code === 'ESESSD_NO_MEMORY', String(refusal));
  assert.equal(refusal.notCarriedOut, true, 'a SET sessd refused NO_MEMORY says it was not carried out');

  // An item with a long name: the session grows by more than the room left.
  const add = await br.post('/cart', { item: `1 ${'very long named pear '.repeat(4)}` });
  assert.equal(add.status, 503, add.body);
  assert.match(add.body, /What you sent was not done/, `the page after a refused add: ${add.body}`);
  assert.doesNotMatch(add.body, /may or may not/);

  await store.client.clear('node65-filler');
  assert.deepEqual(cartOf((await br.get('/')).body), ['2 lemons'], 'the refused add is not in the cart');
});

test('the example shop at --max-memory: an anonymous visitor\'s login refused NO_MEMORY is not told "You stay logged in"', async (t) => {
  const { store, br } = await demoShop(t, { namespace: 'node65-full-login', daemonArgs: ['--max-memory', '1M'] });
  // A login without a name: the error flash gives the visitor a session cookie, no login.
  assert.equal((await br.post('/login', { username: '' })).status, 303);
  assert.ok(br.cookies.has('demo.sid'));
  await br.get('/');
  const refusal = await fill(store.client, 'node65-filler');
  assert.ok(refusal instanceof SessdError && refusal.code === 'ESESSD_NO_MEMORY', String(refusal));
  const login = await br.post('/login', { username: 'Bob, with a name long enough to need room' });
  assert.equal(login.status, 503, login.body);
  assert.doesNotMatch(login.body, /You stay logged in/, `the page of a refused login: ${login.body}`);
  assert.match(login.body, /What you sent was not done/);
  await store.client.clear('node65-filler');
  assert.match((await br.get('/')).body, /id="login"/, 'and the visitor is not logged in');
});

test('a full disk: a change refused IO_ERROR on its first send says notCarriedOut and changed nothing; the write that met the full disk, sent again, does not say it; a CLEAR refused so is sent once', async (t) => {
  const d = new Daemon({ fileSizeLimit: 128 * 1024 });
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  await d.start();
  t.after(() => d.cleanup());
  const client = new Client({ url: d.unixUrl, poolSize: 1, restartWaitMs: 3000 });
  t.after(() => client.terminate());
  const item = Buffer.alloc(16 * 1024, 7);
  let first = null;
  let i = 0;
  for (; i < 64 && first === null; i++) {
    try {
      await client.set('cart', `s${i}`, item, 60000);
    } catch (err) {
      first = err;
    }
  }
  assert.ok(first, 'the file-size limit never refused a write');
  // The write that met the full disk broke its connection; its resend was refused: the first
  // send is in memory, and the error must not say it was not done.
  assert.notEqual(first.notCarriedOut, true, `the resent write's error: ${first.message}`);

  const next = await client.set('cart', 'after', item, 60000).then(() => null, (err) => err);
  assert.ok(next instanceof SessdError && next.code === 'ESESSD_IO_ERROR', String(next));
  assert.equal(next.notCarriedOut, true, `a first send refused IO_ERROR: ${next.message}`);
  assert.equal(await client.get('cart', 'after'), null, 'and it changed nothing');

  const calls = countCalls(client, ['adminRequest']);
  const cleared = await client.clear('cart').then(() => null, (err) => err);
  assert.ok(cleared instanceof SessdError && cleared.code === 'ESESSD_IO_ERROR', String(cleared));
  assert.equal(calls.length, 1, `CLEAR refused IO_ERROR was sent ${calls.length} times`);
});
