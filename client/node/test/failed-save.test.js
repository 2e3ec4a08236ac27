'use strict';
// A save-first route (req.session.save() before the redirect, as the README recommends) whose
// save fails because sessd is unreachable (stuck: SIGSTOP here; a swap storm, a paused VM):
// the app answers 503, and express-session then touches the session, or saves it again after
// a regenerate() (a login), before it lets that response end. Found by an express review
// (a shop under 24 users, sessd stopped for 10 s): the 503 of a cart add came after 10.3 s,
// timeoutMs for the save and restartWaitMs again for the touch waiting on the reconnecting
// pool; a login's second save waited as long and reached Express's final handler, which
// logged its stack and destroyed the browser's keep-alive socket. The request already knows
// sessd is unreachable: its 503 must go out at once.
// test:express4: the 503 through Express's error handler.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');
const { Daemon, Browser, listen, closeServer, countSaves } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon.proc) daemon.proc.kill('SIGCONT');
  await daemon.cleanup();
});

// shop(store, errors, beforeSave, status): each route awaits beforeSave() just before its save;
// the error handler answers status(err).
function shop(store, errors, beforeSave, status = (err) => err.statusCode || 500) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: 'failed-save', resave: false, saveUninitialized: false }));
  app.use((req, res, next) => (req.session ? next() : res.status(503).send('no session')));
  app.post('/login', (req, res, next) => req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body.user;
    return beforeSave().then(() => req.session.save((e) => (e ? next(e) : res.redirect(303, '/'))), next);
  }));
  app.post('/add', (req, res, next) => {
    req.session.cart = (req.session.cart || []).concat([req.body.item]);
    beforeSave().then(() => req.session.save((e) => (e ? next(e) : res.redirect(303, '/'))), next);
  });
  app.get('/', (req, res) => res.json({ user: req.session.user || null, cart: req.session.cart || [] }));
  app.use((err, req, res, next) => {
    errors.push(err);
    if (res.headersSent) return next(err);
    return res.status(status(err)).send('try again');
  });
  return app;
}

for (const kind of ['cart add', 'login']) {
  test(`failed save: a ${kind} whose save timed out on a stuck sessd answers 503 while sessd is still stuck`, { timeout: 30000 }, async (t) => {
    // restartWaitMs far beyond the test's timeout: a request that waits for the pool to
    // reconnect does not answer until sessd is resumed, which happens only after the answer.
    // One connection, so that the save's timeout loses the pool its last one.
    const store = new SessdStore({ url: daemon.unixUrl, namespace: `failed-save-${kind}`, poolSize: 1, timeoutMs: 300, restartWaitMs: 600000 });
    t.after(() => store.client.terminate());
    const errors = [];
    let stopping = false;
    // sessd gets stuck after the request read its session (and, for the login, regenerated it).
    const { server, base } = await listen(shop(store, errors, async () => {
      if (stopping) await daemon.pause();
    }));
    t.after(() => closeServer(server));
    const b = new Browser(base);
    assert.equal((await b.post('/login', { user: 'ann' })).status, 303);
    assert.equal((await b.post('/add', { item: 'pear' })).status, 303);
    stopping = true;
    const saves = countSaves(store, `failed-save-${kind}`);
    let r;
    try {
      r = kind === 'login' ? await b.post('/login', { user: 'bob' }) : await b.post('/add', { item: 'fig' });
    } finally {
      daemon.proc.kill('SIGCONT');
    }
    assert.equal(r.status, 503);
    assert.equal(r.body, 'try again');
    // The store serves on. (The save that timed out reached sessd's socket, and sessd
    // carried it out when it resumed, or not: see "Restarts and outages".)
    const after = await b.get('/');
    assert.equal(after.status, 200);
    // One error reached the app, the save's, and the session was saved once: the 503 was not
    // held for a second save (or, for the cart add, a touch) waiting on sessd.
    assert.deepEqual(errors.map((e) => e.code), ['ETIMEDOUT']);
    assert.equal(saves.n, 1);
    if (kind === 'cart add') assert.deepEqual(JSON.parse(after.body).cart.slice(0, 1), ['pear']);
  });
}

// A login refused for want of memory (sessd at --max-memory) answers its 503 once: the
// session express-session would save again at the end of the request is the one sessd just
// refused. Before, that second refusal reached Express's final handler: a second error, its
// stack in the log and the browser's keep-alive socket destroyed. The same for an error
// handler that answers a plain 500 (the README: "500 or above").
for (const answer of [503, 500]) {
  test(`failed save: a login refused with NO_MEMORY is not saved again after its ${answer}`, async (t) => {
    const full = await new Daemon({ extraArgs: ['--max-memory', '65536'] }).start();
    t.after(() => full.cleanup());
    const store = new SessdStore({ url: full.unixUrl, namespace: 'failed-save-full' });
    t.after(() => store.client.terminate());
    const errors = [];
    let filling = false;
    const { server, base } = await listen(shop(store, errors, async () => {
      if (!filling) return;
      // Fill sessd (another app's sessions) once this login has regenerated its session.
      let i = 0;
      for (const size of [2048, 256, 16, 1]) {
        for (;;) {
          try {
            await store.client.set('failed-save-other', `other-${i++}`, Buffer.alloc(size, 120), 600000);
          } catch (err) {
            if (err.code === 'ESESSD_NO_MEMORY') break;
            throw err;
          }
        }
      }
    }, () => answer));
    t.after(() => closeServer(server));
    const b = new Browser(base);
    assert.equal((await b.post('/login', { user: 'ann' })).status, 303);
    filling = true;
    const saves = countSaves(store, 'failed-save-full');
    const r = await b.post('/login', { user: 'bob' });
    assert.equal(r.status, answer);
    // Saved once: the second refusal went to Express's final handler, not the app's (a stack
    // in the log, the socket destroyed), after the response.
    assert.equal(saves.n, 1);
    assert.deepEqual(errors.map((e) => e.code), ['ESESSD_NO_MEMORY']);
  });
}
