'use strict';
// Findings of two acceptance reviews (a team migrating from connect-redis; an operator filling
// sessd up), each against the real daemon: an async serializer.parse keeps the merge and the
// logout protection and all() its sessions; at --max-connections a request fails with BUSY
// over a Unix socket too; ready({ timeoutMs }) ends when sessd is down or full; and a
// SessdError's status is an HTTP status that express-generator's error handler can answer.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const express = require('express');
const session = require('express-session');
const { Client, SessdStore, SessdError, flash, codec } = require('..');
const { Daemon, listen, closeServer, sleep, waitFor, loopLag } = require('./helpers');

const { STATUS } = codec;
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// connect-redis v7's serializer form: parse may return a promise, and it awaits it.
const asyncJson = { stringify: (s) => JSON.stringify(s), parse: async (t) => JSON.parse(t) };

// settled(promise, ms): the promise, or a rejection when it has not settled within ms (a
// ready() that never settles must fail the test, not hang it).
function settled(promise, ms) {
  let timer;
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function cookie() {
  return { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() };
}

test('async serializer.parse: a slow save after a logout does not bring the session back, and says gone', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'async-parse', poolSize: 1, serializer: asyncJson });
  t.after(() => store.close());
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  await store.set('s', { cookie: cookie(), user: 'alice' });
  const slow = await store.get('s');
  assert.equal(slow.user, 'alice');
  await store.destroy('s');
  slow.cart = ['pear'];
  await store.set('s', slow);
  assert.equal(await store.get('s'), null, 'the logged-out session stays gone');
  assert.deepEqual(gone, ['s']);
});

test('async serializer.parse: two requests that changed different keys both land, mergeKey gets its base', async (t) => {
  const bases = [];
  const store = new SessdStore({
    url: daemon.unixUrl,
    namespace: 'async-parse',
    poolSize: 1,
    serializer: asyncJson,
    mergeKey: (key, base, mine, theirs) => {
      bases.push(base);
      return [...theirs, ...mine.slice(base.length)];
    },
  });
  t.after(() => store.close());
  await store.set('m', { cookie: cookie(), cart: ['apple'], user: 'bob' });
  const a = await store.get('m');
  const b = await store.get('m');
  a.theme = 'dark';
  a.cart = [...a.cart, 'pear'];
  b.cart = [...b.cart, 'fig'];
  await store.set('m', b);
  await store.set('m', a); // conflicts, re-reads (parse awaited) and merges
  const now = await store.get('m');
  assert.equal(now.theme, 'dark');
  assert.equal(now.user, 'bob');
  assert.deepEqual(now.cart, ['apple', 'fig', 'pear']);
  assert.deepEqual(bases, [['apple']]);
});

test('async serializer.parse: all() returns the sessions, not promises', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'async-all', poolSize: 1, serializer: asyncJson });
  t.after(() => store.close());
  await store.clear();
  await store.set('s1', { cookie: cookie(), user: 'alice' });
  await store.set('s2', { cookie: cookie(), user: 'carol' });
  const all = await store.all();
  assert.deepEqual(all.map((s) => `${s.id}:${s.user}`).sort(), ['s1:alice', 's2:carol']);
  for (const s of all) assert.ok(!(s instanceof Promise));
  assert.equal(JSON.parse(JSON.stringify(all)).length, 2);
});

// A daemon at --max-connections 1, its one connection taken by hog (past HELLO, so sessd
// refuses new ones with BUSY at once).
async function fullDaemon(t) {
  const full = await new Daemon({ extraArgs: ['--max-connections', '1'] }).start();
  t.after(() => full.cleanup());
  const hog = new Client({ url: full.unixUrl, poolSize: 1 });
  t.after(() => hog.terminate());
  await hog.ready();
  return full;
}

function isBusy(err) {
  return err instanceof SessdError && err.code === 'ESESSD_BUSY' && err.sessdStatus === STATUS.BUSY &&
    err.statusCode === 503 && err.status === 503 && /max-connections/.test(err.message);
}

for (const transport of ['unix', 'tcp']) {
  test(`at --max-connections over ${transport}: requests fail with ESESSD_BUSY and sessd's message, not EPIPE`, async (t) => {
    const full = await fullDaemon(t);
    const url = transport === 'unix' ? full.unixUrl : full.tcpUrl;
    for (let round = 0; round < 3; round++) {
      const c = new Client({ url, poolSize: 2, timeoutMs: 2000 });
      const disconnects = [];
      c.on('disconnect', (err) => disconnects.push(err));
      // Queued behind the HELLO that sessd refuses: not carried out, BUSY.
      await assert.rejects(c.get('p', 'x'), (err) => isBusy(err) && err.notCarriedOut === true, `round ${round}`);
      assert.ok(disconnects.length >= 1 && isBusy(disconnects[0]), `round ${round}: ${disconnects.map(String)}`);
      // Known to be down: the next request fails at once, saying why.
      await assert.rejects(c.get('p', 'x'), (err) => err.code === 'ESESSD_DISCONNECTED' && err.status === 503 && /BUSY/.test(err.message));
      c.terminate();
    }
  });
}

test('ready({ timeoutMs }) rejects with the connection error when sessd is down; ready() still waits', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-ready-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = new Client({ url: `unix:${path.join(dir, 'none.sock')}`, poolSize: 1, reconnectMaxMs: 100 });
  t.after(() => c.terminate());
  const started = Date.now();
  const lag = loopLag();
  await assert.rejects(settled(c.ready({ timeoutMs: 300 }), 15000), (err) => err.code === 'ENOENT');
  const took = Date.now() - started;
  // Not before its timeoutMs, and soon after it: plus how long this process waited for a CPU
  // (a loaded machine's lateness; loopLag).
  const { totalMs } = lag.stop();
  assert.ok(took >= 250 && took < 2000 + totalMs, `${took} ms (${totalMs} ms waiting for a CPU)`);
  // Without a timeout, as before: it waits for a connection, and settles once there is one,
  // or once the client closes: with ESESSD_CLOSED, not never.
  let readied = false;
  const waiting = c.ready().then(() => {
    readied = true;
  });
  await sleep(300);
  assert.equal(readied, false);
  const alsoWaiting = c.ready({ timeoutMs: 60000 });
  c.close();
  await assert.rejects(settled(waiting, 10000), (err) => err.code === 'ESESSD_CLOSED');
  await assert.rejects(settled(alsoWaiting, 10000), (err) => err.code === 'ESESSD_CLOSED');
  assert.equal(readied, false);
  // A closed client rejects at once.
  const closed = new Client({ url: daemon.unixUrl, poolSize: 1 });
  closed.terminate();
  await assert.rejects(settled(closed.ready({ timeoutMs: 5000 }), 10000), (err) => err.code === 'ESESSD_CLOSED');
  await assert.rejects(settled(c.ready({ timeoutMs: -1 }), 10000), TypeError);
});

test('ready({ timeoutMs }) rejects with ESESSD_BUSY when sessd is full, and resolves when it is up', async (t) => {
  const full = await fullDaemon(t);
  const c = new Client({ url: full.unixUrl, poolSize: 1, reconnectMaxMs: 100 });
  t.after(() => c.terminate());
  await assert.rejects(settled(c.ready({ timeoutMs: 300 }), 15000), (err) => isBusy(err));
  const up = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => up.terminate());
  const hello = await up.ready({ timeoutMs: 5000 });
  assert.equal(typeof hello.server_id, 'string');
});

test('SessdError.status is an HTTP status: express-generator\'s handler answers 500, not RangeError', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'errstatus', poolSize: 1 });
  t.after(() => store.close());
  const app = express();
  app.use(session({ store, secret: 's', resave: false, saveUninitialized: true }));
  app.use(flash());
  app.get('/many-types', async (req, res, next) => {
    try {
      for (let i = 0; i < 300; i++) await req.flash('type' + i, 'x');
      res.send('ok');
    } catch (err) {
      next(err);
    }
  });
  app.get('/big-flash', async (req, res, next) => {
    try {
      await req.flash('info', 'x'.repeat(2 * 1024 * 1024));
      res.send('ok');
    } catch (err) {
      next(err);
    }
  });
  const seen = [];
  // express-generator's app.js error handler.
  app.use((err, req, res, next) => {
    seen.push(err);
    res.status(err.status || 500);
    res.send('error page');
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  for (const p of ['/many-types', '/big-flash']) {
    const r = await fetch(base + p);
    assert.equal(r.status, 500, `${p}: ${(await r.text()).slice(0, 200)}`);
  }
  await waitFor(() => seen.length === 2, 'both errors to reach the handler');
  for (const err of seen) {
    assert.ok(err instanceof SessdError, String(err));
    assert.equal(err.status, 500);
    assert.ok([STATUS.LIMIT, STATUS.TOO_LARGE].includes(err.sessdStatus), err.message);
  }
});
