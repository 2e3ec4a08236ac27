'use strict';
// connect-redis's options as a migrating app sets them (often read from the environment, so
// strings): each is taken as connect-redis takes it, or refused at construction with an
// error that names it. Found by trying each on a store: a scanCount string reached sessd as
// a str, whose BAD_REQUEST closed the connection under the requests queued behind it; a
// non-string prefix was coerced ("[object Object]sid"), one too long failed every request;
// a serializer without parse failed every page; "false" disabled touches.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client, SessdStore } = require('..');
const { Daemon } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

const cookie = () => ({ originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' });

test('store options of connect-redis that would misbehave are refused at construction, naming the option', () => {
  const cases = [
    [{ scanCount: 0 }, RangeError, /scanCount/],
    [{ scanCount: -1 }, RangeError, /scanCount/],
    [{ scanCount: 1.5 }, RangeError, /scanCount/],
    [{ scanCount: 'many' }, RangeError, /scanCount/],
    [{ scanCount: NaN }, RangeError, /scanCount/],
    [{ scanCount: {} }, RangeError, /scanCount/],
    [{ prefix: 5 }, TypeError, /prefix/],
    [{ prefix: { app: 'shop' } }, TypeError, /prefix/],
    [{ prefix: 'p'.repeat(128) }, RangeError, /prefix/],
    [{ serializer: { stringify: JSON.stringify } }, TypeError, /serializer/],
    [{ serializer: { parse: JSON.parse } }, TypeError, /serializer/],
    [{ serializer: 'json' }, TypeError, /serializer/],
    [{ disableTouch: 'false' }, TypeError, /disableTouch/],
    [{ disableTouch: 1 }, TypeError, /disableTouch/],
    [{ disableTTL: 'false' }, TypeError, /disableTTL/],
  ];
  for (const [opts, Type, message] of cases) {
    assert.throws(() => new SessdStore({ url: 'unix:/nonexistent', ...opts }), (err) => {
      assert.ok(err instanceof Type, `${JSON.stringify(opts)}: ${err.stack}`);
      assert.match(err.message, message);
      return true;
    });
  }
  // What connect-redis takes: numbers, booleans, a string prefix, a serializer of both.
  const ok = [
    { scanCount: 100 }, { scanCount: '100' }, { prefix: 'sess:' }, { prefix: '' },
    { disableTouch: true }, { disableTouch: false }, { disableTTL: true }, { disableTTL: false },
    { serializer: { stringify: JSON.stringify, parse: JSON.parse } },
  ];
  for (const opts of ok) new SessdStore({ url: 'unix:/nonexistent', poolSize: 1, ...opts }).client.terminate();
});

test('scanCount read from the environment (a string) pages the scan', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'migrate-scan', scanCount: '2' });
  t.after(() => store.client.terminate());
  for (let i = 0; i < 5; i++) await store.set(`s${i}`, { cookie: cookie(), i });
  assert.deepEqual((await store.ids()).sort(), ['s0', 's1', 's2', 's3', 's4']);
  assert.equal((await store.all()).length, 5);
});

test('client.list with a limit or cursor that is no whole number is refused locally, and costs no request behind it', async (t) => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.terminate());
  await c.set('migrate-list', 'a', 'x', 60000);
  for (const [cursor, limit] of [[0, '100'], ['0', 100], [0, 1.5], [0, -1]]) {
    // The get goes out right behind the list on the one connection.
    const [listed, got] = await Promise.allSettled([c.list('migrate-list', cursor, limit), c.get('migrate-list', 'a')]);
    assert.equal(got.status, 'fulfilled', got.reason && got.reason.stack);
    assert.equal(String(got.value), 'x');
    assert.equal(listed.status, 'rejected', `${cursor}, ${limit}`);
    assert.ok(listed.reason instanceof RangeError || listed.reason instanceof TypeError, listed.reason.stack);
  }
});
