'use strict';
// Client and SessdStore against the real daemon: every operation, promise and callback
// forms, connect-redis ttl semantics, errors, timeouts and reconnection.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const fs = require('fs');
const os = require('os');
const path = require('path');
const util = require('util');
const { Client, SessdStore, SessdError, codec, genid } = require('..');
const { Daemon, waitFor, once, sleep, fakePeer, collectWarnings } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

function sess(extra = {}, maxAgeMs = 60000) {
  return { cookie: { originalMaxAge: maxAgeMs, expires: new Date(Date.now() + maxAgeMs).toISOString(), httpOnly: true, path: '/' }, ...extra };
}

test('client: HELLO over unix and tcp, ping, stats', async (t) => {
  for (const url of [daemon.unixUrl, daemon.tcpUrl]) {
    const c = new Client({ url });
    t.after(() => c.close());
    const hello = await c.ready();
    assert.equal(codec.normalizeInt(hello.version), 1);
    assert.match(hello.server_id, /^[0-9a-f]{32}$/);
    assert.ok(codec.normalizeInt(hello.max_frame) >= 4096);
    await c.ping();
    const st = await c.stats(null);
    assert.ok(st.connections >= 1, JSON.stringify(st));
    assert.equal(typeof st.uptime_ms, 'number');
  }
});

test('client: every session and flash operation', async (t) => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 3 });
  t.after(() => c.close());
  const ns = 'client-ops';
  assert.equal(await c.get(ns, 'nope'), null);
  await c.set(ns, 'a', 'hello', 60000);
  assert.equal((await c.get(ns, 'a')).toString(), 'hello');
  await c.set(ns, Buffer.from('a'), Buffer.from([0, 1, 2]), 60000); // bin id names the same session
  assert.deepEqual([...(await c.get(ns, 'a'))], [0, 1, 2]);
  assert.equal(await c.touch(ns, 'a', 120000), true);
  assert.equal(await c.touch(ns, 'missing', 1000), false);
  assert.equal(await c.count(ns), 1);
  const page = await c.list(ns, 0, 10);
  assert.equal(page.cursor, 0);
  assert.deepEqual(page.entries.map((e) => e.id), ['a']);
  assert.ok(page.entries[0].ttlMs > 60000 && page.entries[0].ttlMs <= 120000);

  assert.equal(await c.flashPush(ns, 'a', 'info', 'one', 60000), 1);
  assert.equal(await c.flashPush(ns, 'a', 'info', { two: [2] }, 60000), 2);
  assert.equal(await c.flashPush(ns, 'a', 'error', 'bad', 60000), 1);
  // A whole-session SET does not touch the flashes.
  await c.set(ns, 'a', 'v2', 60000);
  assert.deepEqual(await c.flashPop(ns, 'a', 'info'), ['one', { two: [2] }]);
  assert.deepEqual(await c.flashPop(ns, 'a', 'info'), []);
  assert.deepEqual(await c.flashPop(ns, 'a', null), { error: ['bad'] });
  assert.deepEqual(await c.flashPop(ns, 'a'), {});
  assert.deepEqual(await c.flashPop(ns, 'never', 'info'), []);
  assert.deepEqual(await c.flashPop(ns, 'never'), {});

  // A flash on a session that was never saved creates a flash-only session: GET misses.
  assert.equal(await c.flashPush(ns, 'fresh', 'info', 'hi', 60000), 1);
  assert.equal(await c.get(ns, 'fresh'), null);
  assert.equal(await c.count(ns), 2);
  const nsStats = await c.stats(ns);
  assert.equal(nsStats.sessions, 2);
  assert.equal(nsStats.flashes, 1);

  assert.equal(await c.destroy(ns, 'a'), true);
  assert.equal(await c.destroy(ns, 'a'), false);
  assert.equal(await c.clear(ns), 1);
  assert.equal(await c.count(ns), 0);
});

test('client: a flash type named __proto__ pops like any other', async (t) => {
  // A valid type (a str of 1..64 bytes) that a JS object cannot take as a plain key.
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.close());
  const ns = 'client-proto';
  assert.equal(await c.flashPush(ns, 'p', '__proto__', 'one', 60000), 1);
  assert.equal(await c.flashPush(ns, 'p', 'info', 'two', 60000), 1);
  const all = await c.flashPop(ns, 'p', null);
  assert.equal(Object.getPrototypeOf(all), Object.prototype);
  assert.deepEqual(Object.keys(all), ['__proto__', 'info']);
  assert.deepEqual(Object.getOwnPropertyDescriptor(all, '__proto__').value, ['one']);
  assert.deepEqual(all.info, ['two']);
  assert.equal(await c.flashPush(ns, 'p', '__proto__', 'three', 60000), 1);
  assert.deepEqual(await c.flashPop(ns, 'p', '__proto__'), ['three']);
  await c.ping(); // the connection is still up
});

test('client: LIST pages through many sessions; pipelined requests', async (t) => {
  const c = new Client({ url: daemon.tcpUrl, poolSize: 2 });
  t.after(() => c.close());
  const ns = 'client-list';
  const ids = Array.from({ length: 250 }, (_, i) => `id-${i}`);
  await Promise.all(ids.map((id) => c.set(ns, id, id, 60000)));
  const values = await Promise.all(ids.map((id) => c.get(ns, id)));
  assert.deepEqual(values.map(String), ids);
  const seen = await c.ids(ns, 7);
  assert.deepEqual(seen.sort(), [...ids].sort());
  assert.equal(await c.clear(ns), 250);
});

test('client: ids, namespaces and flash types are held to their bounds in bytes, not characters', async (t) => {
  // The bounds are UTF-8 bytes (sessd's); a string is counted only where its length does not
  // settle it (withinBytes in lib/client.js): each case at the edge, in characters of 1 to 4 bytes.
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.close());
  await c.ready();
  const ids = [['é'.repeat(64), true], ['é'.repeat(64) + 'a', false], ['日'.repeat(42) + 'ab', true], ['日'.repeat(43), false],
    ['\u{1f600}'.repeat(32), true], ['\u{1f600}'.repeat(32) + 'a', false], ['\ud800'.repeat(42) + 'ab', true], ['\ud800'.repeat(43), false],
    ['x'.repeat(42), true], ['x'.repeat(128), true], ['x'.repeat(129), false], ['', false]];
  for (const [id, ok] of ids) {
    const got = c.get(null, id);
    if (ok) assert.equal(await got, null, `an id of ${Buffer.byteLength(id)} bytes`);
    else await assert.rejects(got, RangeError, `an id of ${Buffer.byteLength(id)} bytes`);
  }
  const names = [['é'.repeat(32), true], ['é'.repeat(32) + 'a', false], ['日'.repeat(21) + 'a', true], ['日'.repeat(22), false],
    ['x'.repeat(21), true], ['x'.repeat(64), true], ['x'.repeat(65), false], ['', false]];
  for (const [name, ok] of names) {
    const ns = c.get(name, 'x');
    const type = c.flashPush(null, 'bounds', name, 'v', 1000);
    if (ok) {
      assert.equal(await ns, null, `a namespace of ${Buffer.byteLength(name)} bytes`);
      assert.equal(await type, 1, `a flash type of ${Buffer.byteLength(name)} bytes`);
      await c.destroy(null, 'bounds');
    } else {
      await assert.rejects(ns, RangeError, `a namespace of ${Buffer.byteLength(name)} bytes`);
      await assert.rejects(type, RangeError, `a flash type of ${Buffer.byteLength(name)} bytes`);
    }
  }
});

test('client: refuses bad arguments locally, server errors are SessdErrors', async (t) => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.close());
  const hello = await c.ready();
  await assert.rejects(c.get(null, 'x'.repeat(129)), RangeError);
  await assert.rejects(c.get('n'.repeat(65), 'x'), RangeError);
  await assert.rejects(c.set(null, 'x', 'v', 0), RangeError);
  await assert.rejects(c.set(null, 'x', 'v', codec.MAX_TTL_MS + 1), RangeError);
  await assert.rejects(c.flashPush(null, 'x', '', 'v', 1000), RangeError);
  const big = Buffer.alloc(codec.normalizeInt(hello.max_frame) + 1);
  await assert.rejects(c.set(null, 'x', big, 1000), (err) => err instanceof SessdError && err.statusName === 'TOO_LARGE');
  // A save refused for its size names the largest session data that fits, and that much fits.
  let fits = null;
  await assert.rejects(c.set(null, 'x', big, 1000), (err) => {
    const m = /the session's data \(serialized\) is (\d+) bytes, and at most (\d+) fit/.exec(err.message);
    fits = m && Number(m[2]);
    return m !== null && Number(m[1]) === big.length;
  });
  await c.set(null, 'x', Buffer.alloc(fits), 1000);
  await assert.rejects(c.set(null, 'x', Buffer.alloc(fits + 1), 1000), (err) => err.statusName === 'TOO_LARGE' || err.statusName === 'LIMIT');
  await c.destroy(null, 'x');
  // An opcode the server does not know: UNKNOWN_OP, and the connection stays usable.
  await assert.rejects(c.request(0x7f, []), (err) => err instanceof SessdError && err.statusName === 'UNKNOWN_OP');
  await c.ping();
});

test('client: close() lets requests in flight finish; terminate() does not', async () => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 2 });
  await c.ready();
  const sets = Array.from({ length: 100 }, (_, i) => c.set('client-close', `k${i}`, 'v', 60000));
  c.close();
  await Promise.all(sets);
  await assert.rejects(c.ping(), (err) => err.code === 'ESESSD_CLOSED');
  const d = new Client({ url: daemon.unixUrl, poolSize: 1 });
  await d.ready();
  assert.equal(await d.count('client-close'), 100);
  await d.clear('client-close');
  const pending = d.ping();
  d.terminate();
  await assert.rejects(pending, (err) => err.code === 'ESESSD_CLOSED');
});

test('client: a reply over max_frame closes the connection', async (t) => {
  // A hostile peer: answers HELLO with max_frame 4096, then announces a 5000-byte frame.
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === 0x01) {
      // map: { max_frame: 4096 }
      s.write(codec.encodeReply(req.request_id, 0, Buffer.from('81a96d61785f6672616d65cd1000', 'hex')));
    } else {
      const hdr = Buffer.alloc(4);
      hdr.writeUInt32BE(5000);
      s.write(hdr);
    }
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, reconnectMinMs: 10000, reconnectMaxMs: 10000 });
  t.after(() => c.close());
  await c.ready();
  await assert.rejects(c.ping(), (err) => err.name === 'ProtocolError' && err.statusName === 'TOO_LARGE');
});

test('client: BUSY (a frame refused unread) rejects with its status', async (t) => {
  // A peer that, like sessd over --max-client-memory, answers a request with BUSY under
  // request id 0 and closes.
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === 0x01) s.write(codec.encodeReply(req.request_id, 0, Buffer.from([0x80])));
    else s.end(codec.encodeReply(0, codec.STATUS.BUSY, Buffer.concat([Buffer.from([0xa4]), Buffer.from('full')])));
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, reconnectMinMs: 10000, reconnectMaxMs: 10000 });
  t.after(() => c.terminate());
  await c.ready();
  const first = c.set(null, 'busy-1', '{}', 1000);
  const second = c.set(null, 'busy-2', '{}', 1000);
  await assert.rejects(first, (err) => err.name === 'SessdError' && err.code === 'ESESSD_BUSY' && /full/.test(err.message));
  await assert.rejects(second, (err) => err.code === 'ESESSD_CLOSED');
});

test('client: COUNT and CLEAR go over a connection of their own', async (t) => {
  // A peer that, like sessd during a mass expiry, puts a COUNT off: it answers requests in
  // order per connection, and holds back a COUNT's reply and everything after it there.
  const held = new Set();
  const { sockPath, sockets } = await fakePeer(t, (s, req) => {
    if (req.op === 0x30) held.add(s);
    if (held.has(s)) return;
    // HELLO: an empty map; anything else: NOT_FOUND.
    s.write(req.op === 0x01 ? codec.encodeReply(req.request_id, 0, Buffer.from([0x80])) : codec.encodeReply(req.request_id, 1, Buffer.from([0xc0])));
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, timeoutMs: 2000 });
  t.after(() => c.terminate());
  await c.ready();
  const counting = c.count('big');
  counting.catch(() => {});
  assert.equal(await c.get(null, 'someone'), null, 'a session request is not held up behind the COUNT');
  assert.equal(sockets.length, 2, 'the COUNT went over a second connection');
  await sleep(2500);
  assert.equal(sockets.length, 2, 'a COUNT may wait longer than timeoutMs: its connection stays');
  c.terminate();
  await assert.rejects(counting, (err) => err.code === 'ESESSD_CLOSED');
});

test('client: request timeout when the daemon stops answering', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  const c = new Client({ url: d.unixUrl, poolSize: 1, timeoutMs: 300, reconnectMinMs: 20, reconnectMaxMs: 100 });
  t.after(() => c.close());
  await c.ready();
  await d.pause();
  try {
    // A hung sessd is a 503 for the app's users, as an outage is (http-errors' statusCode).
    await assert.rejects(c.get(null, 'x'), (err) => err.code === 'ETIMEDOUT' && err.statusCode === 503 && !err.notCarriedOut);
  } finally {
    process.kill(d.proc.pid, 'SIGCONT');
  }
  await waitFor(async () => {
    try {
      await c.ping();
      return true;
    } catch {
      return false;
    }
  }, 'the client to work again after SIGCONT');
});

test('store: promise forms of every method', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'store-promise' });
  t.after(() => store.close());
  await store.clear();
  assert.equal(await store.get('s1'), null);
  await store.set('s1', sess({ user: 'ann' }));
  await store.set('s2', sess({ user: 'bob' }));
  assert.equal((await store.get('s1')).user, 'ann');
  assert.equal(await store.length(), 2);
  assert.deepEqual((await store.ids()).sort(), ['s1', 's2']);
  const all = await store.all();
  assert.deepEqual(all.map((s) => `${s.id}:${s.user}`).sort(), ['s1:ann', 's2:bob']);
  await store.touch('s1', sess({ user: 'ann' }, 3600000));
  const { entries } = await store.client.list('store-promise', 0, 10);
  assert.ok(entries.find((e) => e.id === 's1').ttlMs > 60000);
  await store.destroy('s1');
  assert.equal(await store.get('s1'), null);
  await store.destroy('s1'); // destroying a missing session is not an error
  await store.clear();
  assert.equal(await store.length(), 0);
  assert.deepEqual(await store.all(), []);
});

// all() and a prefixed clear() keep a bounded number of requests under way, so that an admin
// page's scan does not queue thousands ahead of the pages the pool also serves; and a record
// the serializer cannot read names its session.
test('store: all() and clear() with a prefix go a window at a time', async (t) => {
  const N = 300;
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'store-window', prefix: 'p:' });
  t.after(() => store.close());
  await store.clear();
  const ids = Array.from({ length: N }, (_, i) => `s${i}`);
  for (let at = 0; at < N; at += 50) await Promise.all(ids.slice(at, at + 50).map((id) => store.set(id, sess({ n: id }))));
  let underWay = 0;
  let most = 0;
  const counted = (fn) => async (...args) => {
    underWay++;
    most = Math.max(most, underWay);
    try {
      return await fn(...args);
    } finally {
      underWay--;
    }
  };
  store.client.get = counted(store.client.get.bind(store.client));
  store.client.destroy = counted(store.client.destroy.bind(store.client));
  const all = await store.all();
  assert.deepEqual(all.map((s) => s.id).sort(), [...ids].sort());
  assert.ok(all.every((s) => s.n === s.id), 'each session is its own');
  assert.ok(most >= 2 && most <= 64, `${most} GETs under way at once`);
  most = 0;
  await store.clear();
  assert.ok(most >= 2 && most <= 64, `${most} DESTROYs under way at once`);
  assert.equal(await store.length(), 0);
  await store.client.set('store-window', 'p:bad', 'not json', 60000);
  await store.set('good', sess({ n: 'good' }));
  await assert.rejects(store.all(), (err) => err instanceof SyntaxError && err.sessionId === 'bad');
});

// A record the serializer cannot read names its session by err.sessionId, for the program
// that called all() to act on; but an error is what gets logged (console.error, a logger's
// err serializer, JSON), and a full session id in a log lets whoever reads it take the
// session: the id must not show there, nor may the data (JSON.parse quotes some of it).
test('store: an unreadable record names its session to the caller, not to the log', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'store-unreadable' });
  t.after(() => store.close());
  await store.clear();
  const id = genid();
  await store.client.set('store-unreadable', id, 'SECRET-csrf-token; not json', 60000);
  const seen = await store.all().then(() => assert.fail('all() read a record that is not JSON'), (err) => err);
  assert.ok(seen instanceof SyntaxError, String(seen));
  assert.equal(seen.sessionId, id);
  // showHidden too: console.log('%o', err) and util.format('%o') inspect with it, and they
  // showed a non-enumerable sessionId whole.
  const shown = [util.inspect(seen), util.inspect(seen, { depth: 10 }), util.inspect(seen, { showHidden: true }),
    util.format('%o', seen), JSON.stringify(seen), String(seen), seen.stack];
  for (const text of shown) {
    assert.ok(!text.includes(id), `the full session id is in ${text}`);
    assert.ok(!text.includes('SECRET'), `the data is in ${text}`);
  }
});

test('store: callback forms of every method', async (t) => {
  const store = new SessdStore({ url: daemon.tcpUrl, namespace: 'store-callback' });
  t.after(() => store.close());
  const call = (method, ...args) => new Promise((resolve, reject) => {
    const ret = store[method](...args, (err, v) => (err ? reject(err) : resolve(v)));
    assert.equal(ret, undefined, `${method} with a callback returns nothing`);
  });
  await call('clear');
  assert.equal(await call('get', 'c1'), null);
  assert.equal(await call('set', 'c1', sess({ n: 1 })), undefined);
  assert.equal((await call('get', 'c1')).n, 1);
  assert.equal(await call('touch', 'c1', sess({ n: 1 })), undefined);
  assert.equal(await call('length'), 1);
  assert.deepEqual(await call('ids'), ['c1']);
  assert.deepEqual((await call('all')).map((s) => s.id), ['c1']);
  assert.equal(await call('destroy', 'c1'), undefined);
  assert.equal(await call('get', 'c1'), null);
  await call('set', 'c2', sess());
  await call('clear');
  assert.equal(await call('length'), 0);
  // express-session's own helpers on the Store base class work through get/set.
  await call('set', 'c3', sess({ n: 3 }));
  const loaded = await new Promise((resolve, reject) => store.load('c3', (err, s) => (err ? reject(err) : resolve(s))));
  assert.equal(loaded.n, 3);
  assert.equal(typeof loaded.cookie.expires, 'object');
});

test('store: ttl from the cookie, the ttl option, and expired sessions', async (t) => {
  const ns = 'store-ttl';
  const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  const ttlOf = async (id) => (await store.client.list(ns, 0, 1000)).entries.find((e) => e.id === id)?.ttlMs;
  t.after(() => store.close());
  await store.clear();
  // No cookie expiry: the ttl option (default one day).
  await store.set('nocookie', { cookie: { originalMaxAge: null, expires: null } });
  const day = await ttlOf('nocookie');
  assert.ok(day > 86400000 - 60000 && day <= 86400000, String(day));
  // The cookie's expiry, to the millisecond.
  await store.set('cookie', sess({}, 5 * 60000));
  const five = await ttlOf('cookie');
  assert.ok(five > 4 * 60000 && five <= 5 * 60000, String(five));
  // An expired cookie destroys instead of saving.
  await store.set('cookie', sess({}, -1000));
  assert.equal(await store.get('cookie'), null);
  await store.set('gone', sess());
  await store.touch('gone', sess({}, -5));
  assert.equal(await store.get('gone'), null);

  const fixed = new SessdStore({ url: daemon.unixUrl, namespace: ns, ttl: 120 });
  t.after(() => fixed.close());
  await fixed.set('fixed', { cookie: {} });
  const two = await ttlOf('fixed');
  assert.ok(two > 60000 && two <= 120000, String(two));
  const fn = new SessdStore({ url: daemon.unixUrl, namespace: ns, ttl: (s) => s.minutes * 60 });
  t.after(() => fn.close());
  await fn.set('fn', sess({ minutes: 30 }));
  const thirty = await ttlOf('fn');
  assert.ok(thirty > 29 * 60000 && thirty <= 30 * 60000, String(thirty));
  await fn.set('fn', sess({ minutes: 0 }));
  assert.equal(await fn.get('fn'), null);
  // A ttl function's 0 (not only a negative ttl) ends the session at a touch too, as at a save:
  // sessd takes no ttl of 0.
  await fn.set('fn', sess({ minutes: 30 }));
  await fn.touch('fn', sess({ minutes: 0 }));
  assert.equal(await fn.get('fn'), null);
  // A ttl that is not a number would make every save a destroy, logging everyone out.
  for (const ttl of ['1h', '3600', -5, 0, NaN]) {
    assert.throws(() => new SessdStore({ client: fn.client, ttl }), /ttl must be a number of seconds/, String(ttl));
  }
  const bad = new SessdStore({ client: fn.client, namespace: ns, ttl: (s) => s.ttl });
  await fn.set('kept', sess({ minutes: 30 }));
  await assert.rejects(bad.set('kept', sess({ ttl: '2h' })), /must return a number of seconds; it returned '2h'/);
  await assert.rejects(bad.set('kept', sess({})), /it returned undefined/);
  assert.equal((await fn.get('kept')).minutes, 30, 'a bad ttl leaves the session as it was');

  // disableTouch: touch leaves the expiry alone.
  const nt = new SessdStore({ url: daemon.unixUrl, namespace: ns, disableTouch: true });
  t.after(() => nt.close());
  await nt.set('nt', sess({}, 60000));
  await nt.touch('nt', sess({}, 3600000));
  assert.ok((await ttlOf('nt')) <= 60000);

  // A session really ends when its ttl runs out.
  await store.set('short', sess({}, 300));
  await waitFor(async () => (await store.get('short')) === null, 'the 300 ms session to expire');
});

test('store: serializer, prefix and namespaces keep apart', async (t) => {
  const serializer = {
    stringify: (s) => 'X' + JSON.stringify(s),
    parse: (str) => JSON.parse(str.slice(1)),
  };
  const a = new SessdStore({ url: daemon.unixUrl, namespace: 'store-sep', prefix: 'a:', serializer });
  const b = new SessdStore({ url: daemon.unixUrl, namespace: 'store-sep', prefix: 'b:' });
  const other = new SessdStore({ url: daemon.unixUrl, namespace: 'store-sep-2' });
  t.after(() => [a, b, other].forEach((s) => s.close()));
  await Promise.all([a.clear(), b.clear(), other.clear()]);
  await a.set('1', sess({ who: 'a1' }));
  await a.set('2', sess({ who: 'a2' }));
  await b.set('1', sess({ who: 'b1' }));
  await other.set('1', sess({ who: 'o1' }));
  assert.equal((await store_raw(a, 'a:1')).slice(0, 2), 'X{');
  assert.equal((await a.get('1')).who, 'a1');
  assert.equal((await b.get('1')).who, 'b1');
  assert.equal((await other.get('1')).who, 'o1');
  assert.equal(await a.length(), 2);
  assert.equal(await b.length(), 1);
  assert.deepEqual((await a.all()).map((s) => s.id).sort(), ['1', '2']);
  await a.clear();
  assert.equal(await a.length(), 0);
  assert.equal((await b.get('1')).who, 'b1');
  assert.equal((await other.get('1')).who, 'o1');
  await b.clear();
  await other.clear();
});

async function store_raw(store, key) {
  return (await store.client.get(store.namespace, key)).toString();
}

test('store: errors are errors, never a missing session', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-none-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new SessdStore({ url: `unix:${path.join(dir, 'nobody.sock')}`, reconnectMinMs: 50, reconnectMaxMs: 200 });
  t.after(() => store.close());
  // Never connected: 'disconnect' tells express-session to stop waiting on the store.
  const disconnected = once(store, 'disconnect');
  // The first request, made while the first connection attempt is under way, fails as an
  // outage too: it was never sent.
  await assert.rejects(store.get('x'), (err) => err.code === 'ESESSD_DISCONNECTED');
  await disconnected;
  await assert.rejects(store.get('x'), (err) => err.code === 'ESESSD_DISCONNECTED');
  const err = await new Promise((resolve) => store.get('x', (e, s) => resolve({ e, s })));
  assert.ok(err.e instanceof Error);
  assert.equal(err.s, undefined);
  await assert.rejects(store.set('x', sess()), Error);
  await assert.rejects(store.length(), Error);
});

test('store: never connected, one attempt hanging and another failing: disconnect at once', async (t) => {
  // A listener that takes the first connection and never answers (a daemon that is stuck,
  // or a connect that hangs) and refuses every later one at once.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-hang-'));
  const sock = path.join(dir, 'hang.sock');
  const held = [];
  const server = net.createServer((s) => {
    if (held.length === 0) held.push(s);
    else s.destroy();
  });
  await new Promise((resolve) => server.listen(sock, resolve));
  t.after(() => {
    held.forEach((s) => s.destroy());
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const store = new SessdStore({ url: `unix:${sock}`, poolSize: 2, connectTimeoutMs: 30000, reconnectMinMs: 20, reconnectMaxMs: 100 });
  t.after(() => store.close());
  // express-session must learn that the store is down long before the hanging attempt
  // gives up, or every request waits on it.
  await once(store, 'disconnect', 3000);
  assert.equal(store.connected, false);
});

test('store: reconnects after the daemon restarts on the same socket', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  // Down for longer than restartWaitMs: the store says 'disconnect'.
  const store = new SessdStore({ url: d.unixUrl, poolSize: 2, reconnectMinMs: 20, reconnectMaxMs: 200, restartWaitMs: 300 });
  t.after(() => store.close());
  await once(store, 'connect');
  assert.equal(store.connected, true);
  await store.set('r1', sess({ v: 1 }));
  const disconnected = once(store, 'disconnect');
  await d.stop('SIGKILL');
  await disconnected;
  assert.equal(store.connected, false);
  await assert.rejects(store.get('r1'), Error);
  const connected = once(store, 'connect');
  await d.start();
  await connected;
  assert.equal(store.connected, true);
  // The daemon kept nothing (no data dir): the session is gone, and the store works.
  assert.equal(await store.get('r1'), null);
  await store.set('r2', sess({ v: 2 }));
  assert.equal((await store.get('r2')).v, 2);
});

test('client: backoff keeps retrying while the daemon is down, then connects', async (t) => {
  const d = new Daemon();
  t.after(() => d.cleanup());
  const c = new Client({ url: `unix:${d.sock}`, poolSize: 1, reconnectMinMs: 10, reconnectMaxMs: 80 });
  t.after(() => c.close());
  await once(c, 'disconnect');
  await sleep(300); // several failed attempts
  assert.ok(c.slots[0].attempts >= 2, `attempts: ${c.slots[0].attempts}`);
  const connected = once(c, 'connect');
  await d.start();
  await connected;
  await c.ping();
});

test('client: a bad url is the package\'s own error, at once', () => {
  for (const url of ['tcp://127.0.0.1:99999', 'tcp://127.0.0.1:0', 'http://127.0.0.1:7077', 'unix:']) {
    assert.throws(() => new Client({ url }), (err) => err instanceof TypeError && /sessd url|unix url/.test(err.message), url);
  }
});

// The forms libsessd and sessctl take too (client/url.c), so that an address copied from
// sessctl's --connect, SESSD_URL or the README reaches the same daemon here, and one refused
// there is refused here, for the same reason.
test('client: the address forms shared with libsessd and sessctl reach the daemon; the others are refused alike', async (t) => {
  const sockPath = daemon.unixUrl.slice('unix:'.length);
  for (const url of [daemon.unixUrl, sockPath, `unix://${sockPath}`, daemon.tcpUrl, `${daemon.tcpUrl}/`]) {
    const c = new Client({ url, poolSize: 1 });
    t.after(() => c.terminate());
    await c.ping();
  }
  const refused = {
    'unix://tmp/sessd.sock': 'unix:// must be followed by an absolute path (unix:///path; a relative one is unix:path)',
    'unix://': 'unix:// must be followed by an absolute path (unix:///path; a relative one is unix:path)',
    [`/${'p'.repeat(107)}`]: 'socket path too long',
    [`unix:/${'p'.repeat(107)}`]: 'socket path too long',
    '/tmp/a\0b': 'a NUL byte in the socket path',
    'sessd.sock': 'the URL must be unix:PATH, an absolute socket path (/PATH) or tcp://HOST:PORT',
    '127.0.0.1:7077': 'the URL must be unix:PATH, an absolute socket path (/PATH) or tcp://HOST:PORT',
    'tcp://a b:7077': 'bad character in the host (IPv6 needs [brackets])',
    'tcp://::1:7077': 'bad character in the host (IPv6 needs [brackets])',
    'tcp://[::1]7077': 'a port must follow the bracketed host',
    'tcp://[::1:7077': "unclosed '[' in the host",
    'tcp://[x]:7077': 'bad character in the IPv6 address',
    'tcp://:7077': 'empty host',
    'tcp://127.0.0.1': 'missing :port after the host',
    'tcp://127.0.0.1:0007077': 'the port must be a number from 1 to 65535',
    'tcp://127.0.0.1:7077//': 'the port must be a number from 1 to 65535',
  };
  for (const [url, why] of Object.entries(refused)) {
    assert.throws(() => new Client({ url }), (err) => err instanceof TypeError && err.message === `bad sessd url '${url.replace('\0', '?')}': ${why}`, url);
  }
});

test('client: results of the wrong shape are protocol errors, and a stuck LIST cursor ends ids()', async (t) => {
  // A peer whose LIST always answers cursor 1 with one entry, whose STATS answers a string
  // and whose COUNT answers -5.
  const raw = {
    0x31: Buffer.concat([Buffer.from([0x92, 0x01, 0x91, 0x92, 0xc4, 0x04]), Buffer.from('same'), Buffer.from([0x05])]),
    0x33: Buffer.from([0xa3, 0x61, 0x62, 0x63]),
    0x30: Buffer.from([0xfb]),
  };
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === 0x01) s.write(codec.encodeReply(req.request_id, 0, Buffer.from([0x80])));
    else s.write(codec.encodeReply(req.request_id, 0, raw[req.op]));
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, reconnectMinMs: 10000, reconnectMaxMs: 10000 });
  t.after(() => c.terminate());
  await c.ready();
  const protocol = (err) => err.name === 'ProtocolError' && err.code === 'ESESSD_PROTOCOL';
  await assert.rejects(c.ids(null), protocol, 'a cursor that does not move');
  await assert.rejects(c.stats(null), protocol, 'STATS as a string');
  await assert.rejects(c.count(null), protocol, 'a negative COUNT');
});

test('store: a touch that times out or loses its connection resolves; get and set still fail', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'spared', timeoutMs: 300, reconnectMinMs: 20, reconnectMaxMs: 100 });
  t.after(() => store.client.terminate());
  // The steps made while sessd serves are tried again when they time out: timeoutMs is 300 ms
  // for the stop's sake, and a loaded machine (load 30, flake-56a) took longer than that to
  // answer a new daemon's first SET ("sessd SET request timed out after 300 ms").
  const served = (what, fn) => waitFor(() => fn().then((v) => ({ v }), (err) => {
    if (err.code !== 'ETIMEDOUT') throw err;
    return null;
  }), what).then((r) => r.v);
  await served('the first save', () => store.set('s', sess({ n: 1 })));
  // Both pool connections past HELLO first: one still in its HELLO when the daemon stops
  // would never become ready, and once the touch's connection is replaced the get would
  // find none (ESESSD_DISCONNECTED, not the timeout this test is about).
  await waitFor(() => store.client.slots.every((s) => s.conn && s.conn.state === 'ready') || null, 'the pool ready');
  // A stopped daemon: connected, but nothing is answered.
  await d.pause();
  try {
    assert.equal(await store.touch('s', sess({ n: 1 })), undefined);
    await assert.rejects(store.get('s'), (err) => err.code === 'ETIMEDOUT');
  } finally {
    d.proc.kill('SIGCONT');
  }
  await waitFor(() => store.connected || null, 'reconnection');
  assert.deepEqual((await served('a read once reconnected', () => store.get('s'))).n, 1);
  // A daemon gone: the touch resolves, a save still fails.
  await d.stop('SIGKILL');
  assert.equal(await store.touch('s', sess({ n: 1 })), undefined);
  await assert.rejects(store.set('s', sess({ n: 2 })), (err) => typeof err.code === 'string');
});

test('store: a misspelt option draws a warning naming the option it was probably meant to be', async (t) => {
  const warnings = collectWarnings(t, 'CONNECT_SESSD_UNKNOWN_OPTION');
  const typo = new SessdStore({ url: daemon.unixUrl, namespce: 'shop', timeout: 5000, logErrors: true });
  const right = new SessdStore({ url: daemon.unixUrl, namespace: 'shop', timeoutMs: 5000, ttl: 60, mergeKey: undefined });
  t.after(() => {
    typo.close();
    right.close();
  });
  await waitFor(() => warnings.length > 0 || null, 'the warning');
  await sleep(50);
  assert.equal(warnings.length, 1, 'one warning, and none for the store given only known options');
  assert.match(warnings[0], /namespce \(did you mean namespace\?\)/);
  assert.match(warnings[0], /timeout \(did you mean timeoutMs\?\)/);
  assert.match(warnings[0], /logErrors(?! \()/);
  assert.equal(typo.namespace, null, 'the misspelt option is ignored');
});
