'use strict';
// The HTTP status (err.statusCode) of every error an app's error handler gets from sessd:
// a crashed daemon's socket errors, a store at --max-memory, the wire statuses; and requests
// that sessd answered in time while the app's own event loop was stalled.
// test:express4: the status Express's final handler gives sessd's errors.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { encode } = require('@msgpack/msgpack');
const { Client, SessdStore, SessdError, codec, genid } = require('..');
const { Daemon, Browser, listen, closeServer, sleep, fakeTcpPeer, loopLag } = require('./helpers');

const { OP, STATUS } = codec;

// busyWait(ms): blocks the event loop, as a sync bcrypt or a big render does.
function busyWait(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

test('a connection reset by its peer: every request it fails has statusCode 503, the first keeps the socket\'s code', async (t) => {
  const url = await fakeTcpPeer(t, (s, req) => {
    if (req.op === OP.HELLO) s.write(codec.encodeReply(req.request_id, STATUS.OK, Buffer.from(encode({ version: 1, max_frame: 1048576 }))));
    else if (!s.destroyed) s.resetAndDestroy(); // a crash: RST, no SHUTTING_DOWN
  });
  const c = new Client({ url, poolSize: 1 });
  t.after(() => c.terminate());
  await c.ready();
  // Flash pops and pushes, not saves or reads: those are sent again after a break
  // (crash.test.js).
  const outcomes = await Promise.allSettled([c.flashPop('ns', 'a', 'info'), c.flashPop('ns', 'b', null), c.flashPush('ns', 'c', 'info', 'x', 60000)]);
  const errs = outcomes.map((o) => o.reason);
  assert.ok(errs.every(Boolean), 'every request failed');
  for (const err of errs) {
    assert.equal(err.statusCode, 503, `${err.code}: ${err.message}`);
    assert.equal(err.expose, false);
  }
  // The log names the socket's error, as Node gave it.
  assert.equal(errs[0].code, 'ECONNRESET');
  assert.equal(errs[0].cause.code, 'ECONNRESET');
  assert.equal(errs[0].cause.syscall, 'read');
  assert.deepEqual(errs.slice(1).map((e) => e.code), ['ESESSD_CLOSED', 'ESESSD_CLOSED']);
});

test('sessd killed (SIGKILL) under load: every failed request has statusCode 503', async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  // sessd stays down: the store gives up waiting for it after restartWaitMs.
  const c = new Client({ url: daemon.unixUrl, poolSize: 2, restartWaitMs: 300 });
  t.after(() => c.terminate());
  await c.ready();
  const errs = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      try {
        await c.get('crash', 'k' + Math.random());
      } catch (err) {
        errs.push(err);
        await sleep(20);
      }
    }
  };
  const workers = Array.from({ length: 50 }, worker);
  await sleep(300);
  await daemon.stop('SIGKILL');
  await sleep(300);
  stop = true;
  await Promise.all(workers);
  assert.ok(errs.length > 0);
  const bad = errs.filter((e) => e.statusCode !== 503).map((e) => `${e.code} ${e.message}`);
  assert.deepEqual(bad, [], `${errs.length} errors, codes: ${[...new Set(errs.map((e) => e.code))].join()}`);
});

test('the event loop stalled past timeoutMs while sessd answered: every request succeeds, the connections stay', async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  const c = new Client({ url: daemon.unixUrl, poolSize: 2, timeoutMs: 300 });
  t.after(() => c.terminate());
  await c.ready();
  const conns = c.slots.map((s) => s.conn);
  for (let round = 0; round < 3; round++) {
    const requests = [];
    for (let i = 0; i < 6; i++) {
      requests.push(c.set('stall', `s${i}`, `v${round}`, 60000));
      requests.push(c.get('stall', `s${i}`));
      requests.push(c.flashPush('stall', `s${i}`, 'info', `m${round}`, 60000));
    }
    // Let the requests leave (the writes are corked until this pass's check phase), then
    // stall while sessd answers them.
    await new Promise((r) => setImmediate(r));
    busyWait(1000);
    const outcomes = await Promise.allSettled(requests);
    const failed = outcomes.filter((o) => o.status === 'rejected').map((o) => `${o.reason.code} ${o.reason.message}`);
    assert.deepEqual(failed, [], `round ${round}`);
  }
  assert.deepEqual(c.slots.map((s) => s.conn), conns, 'no connection was replaced');
  assert.ok(conns.every((conn) => conn.state === 'ready'));
  assert.equal((await c.get('stall', 's0')).toString(), 'v2');
});

// The re-review of per-pass writes: requests made in one callback leave in the check phase,
// so a later callback of the same pass that stalls delays them: their deadlines must count
// from when they leave (before: 10 of 10 failed with ETIMEDOUT, sessd never having seen them).
test('requests whose write waits behind a stall in the same loop pass do not time out', async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  const c = new Client({ url: daemon.unixUrl, poolSize: 1, timeoutMs: 300 });
  t.after(() => c.terminate());
  await c.ready();
  const outcomes = await new Promise((resolve) => {
    setImmediate(() => resolve(Promise.allSettled([c.set('stall2', 'a', 'v', 60000), c.get('stall2', 'a')])));
    setImmediate(() => busyWait(1000));
  });
  const failed = outcomes.filter((o) => o.status === 'rejected').map((o) => `${o.reason.code} ${o.reason.message}`);
  assert.deepEqual(failed, []);
  assert.equal(outcomes[1].value.toString(), 'v');
});

test('the event loop stalled past connectTimeoutMs while sessd answered the HELLO: the connection is ready', async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  const c = new Client({ url: daemon.unixUrl, poolSize: 1, connectTimeoutMs: 300 });
  t.after(() => c.terminate());
  const conn = c.slots[0].conn;
  let closed = null;
  conn.on('close', (err) => { closed = err; });
  // The HELLO is written on 'connect'; stall just after.
  await new Promise((r) => conn.socket.once('connect', () => setImmediate(r)));
  busyWait(1000);
  await c.ready();
  assert.equal(closed, null, closed && closed.message);
  assert.equal(c.slots[0].conn, conn);
  assert.equal(conn.state, 'ready');
});

// The deadline's check runs in an Immediate: an unref'd one would let the poll phase before it
// block until some other I/O or timer, and a hung sessd's timeout would wait on that.
test('a stuck request still times out when the loop is not stalled', async (t) => {
  const url = await fakeTcpPeer(t, (s, req) => {
    if (req.op === OP.HELLO) s.write(codec.encodeReply(req.request_id, STATUS.OK, Buffer.from(encode({ version: 1, max_frame: 1048576 }))));
    // every other request is never answered
  });
  const c = new Client({ url, poolSize: 1, timeoutMs: 200 });
  t.after(() => c.terminate());
  await c.ready();
  const started = Date.now();
  const lag = loopLag();
  await assert.rejects(c.get('ns', 'a'), (err) => err.code === 'ETIMEDOUT' && err.statusCode === 503);
  // Within timeoutMs and a little, plus how long this process waited for a CPU meanwhile (a
  // loaded machine's lateness; loopLag): a timeout that waits for other I/O would wait for ever here.
  const took = Date.now() - started;
  const { totalMs } = lag.stop();
  assert.ok(took < 1000 + totalMs, `${took} ms (${totalMs} ms waiting for a CPU)`);
});

test('SessdError: statusCode and status 503 for NO_MEMORY, IO_ERROR, BUSY, SHUTTING_DOWN; 403 for FORBIDDEN; 500 for the rest; sessdStatus is the wire status', () => {
  const unavailable = new Set([STATUS.NO_MEMORY, STATUS.IO_ERROR, STATUS.BUSY, STATUS.SHUTTING_DOWN]);
  assert.equal(STATUS.FORBIDDEN, 15);
  for (const [name, status] of Object.entries(STATUS)) {
    if (status === STATUS.OK || status === STATUS.NOT_FOUND) continue;
    const err = new SessdError(status, 'x', OP.SET);
    assert.equal(err.sessdStatus, status, name);
    assert.equal(err.statusCode, unavailable.has(status) ? 503 : status === STATUS.FORBIDDEN ? 403 : 500, name);
    assert.equal(err.status, err.statusCode, name);
    assert.equal(err.expose, false, name);
  }
  // A server that breaks the protocol is a fault, not an outage: 500, sessdStatus the wire one.
  const broken = new codec.ProtocolError('reply without a request');
  assert.equal(broken.sessdStatus, STATUS.BAD_REQUEST);
  assert.equal(broken.statusCode, 500);
  assert.equal(broken.status, 500);
  assert.equal(broken.expose, false);
});

test('sessd at --max-memory: a save fails with NO_MEMORY, statusCode 503, and the README\'s handler answers 503', async (t) => {
  const daemon = await new Daemon({ extraArgs: ['--max-memory', '1M'] }).start();
  t.after(() => daemon.cleanup());
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.terminate());
  await c.ready();
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'shop', poolSize: 1, merge: false });
  t.after(() => store.close());

  const app = express();
  app.use(session({ genid, store, secret: 's', resave: false, saveUninitialized: false, cookie: { maxAge: 60000 } }));
  app.post('/login', (req, res) => {
    req.session.user = 'ada';
    res.send('ok');
  });
  app.post('/cart', (req, res, next) => {
    req.session.cart = [...(req.session.cart || []), 'x'.repeat(8000)];
    req.session.save((err) => (err ? next(err) : res.send('added')));
  });
  const seen = [];
  app.use((err, req, res, next) => {
    seen.push(err);
    if (res.headersSent) return next(err);
    return res.status(err.statusCode || 500).send('Something went wrong');
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const browser = new Browser(base);
  assert.equal((await browser.post('/login')).status, 200);

  // Fill the store, in another namespace, until it refuses.
  let refusal = null;
  for (let i = 0; i < 100000 && !refusal; i++) {
    try {
      await c.set('filler', `f${i}`, Buffer.alloc(2000), 600000);
    } catch (err) {
      refusal = err;
    }
  }
  assert.ok(refusal instanceof SessdError, String(refusal));
  assert.equal(refusal.code, 'ESESSD_NO_MEMORY');
  assert.equal(refusal.sessdStatus, STATUS.NO_MEMORY);
  assert.equal(refusal.statusCode, 503);
  assert.equal(refusal.status, 503);

  const r = await browser.post('/cart');
  assert.equal(r.status, 503, r.body);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].code, 'ESESSD_NO_MEMORY');
});
