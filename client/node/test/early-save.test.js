'use strict';
// The early save (flash.js presave, store.js presave) where it fails or finds the session
// gone: what the request's end sends after it, and what it reports. What is sent is counted per
// request on the store's client; faults through the fault proxy, a real sessd behind it.
// test:express4: the early save holds the end of Express's res.redirect and res.send.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');
const { faultProxy, tcpTarget } = require('./faultproxy');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

const OPS = ['load', 'get', 'set', 'setIf', 'touch', 'touchIf', 'destroy', 'flashPush', 'flashPushExisting', 'flashPop'];

// shop(t, routes, storeOpts): an app on the store, through a fault proxy, with a logged-in
// browser; ops lists the client's calls, gone the 'gone' events, errors what reached the
// error handler (late: after the response had gone out).
async function shop(t, routes, storeOpts = {}) {
  const proxy = await faultProxy(t, tcpTarget(daemon.tcpUrl));
  const store = new SessdStore({ url: proxy.url, namespace: 'early', poolSize: 1, ...storeOpts });
  t.after(() => store.close());
  await store.client.ready();
  const ops = [];
  for (const m of OPS) {
    const orig = store.client[m];
    store.client[m] = function counted(...args) {
      ops.push(m);
      return orig.apply(this, args);
    };
  }
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  store.on('error', () => {});
  const errors = [];
  const app = express();
  app.use(session({ store, secret: 'early-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.send('ok');
  });
  app.get('/', flash.locals(), (req, res) => res.json({ flash: res.locals.flash, s: { ...req.session, cookie: undefined } }));
  routes(app, { store, proxy });
  app.use((err, req, res, next) => {
    errors.push({ code: err.code, late: res.headersSent });
    if (res.headersSent) return undefined;
    return res.status(err.statusCode || 500).send('error');
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.post('/login', {})).status, 200);
  const sid = () => decodeURIComponent(br.cookies.get('connect.sid')).slice(2).split('.')[0];
  return { store, proxy, br, ops, gone, errors, sid };
}

test('a cookie-only change whose early save times out is not saved again at the end', async (t) => {
  const { br, ops, proxy } = await shop(t, (app, { proxy: p }) => {
    app.post('/remember', (req, res) => {
      // sessd stops answering once the session is read: the push and the early save time out.
      p.set('down', { stall: true });
      req.session.cookie.maxAge = 30 * 24 * 3600000;
      req.flash('info', 'Remembered');
      res.redirect(303, '/');
    });
  }, { timeoutMs: 300, restartWaitMs: 300 });
  ops.length = 0;
  const r = await br.post('/remember');
  proxy.heal();
  assert.equal(r.status, 303);
  // README: "A save that fails there is not made again"; a cookie save that fails for the
  // link's sake leaves the session as it was (saveCookie).
  assert.deepEqual(ops.filter((op) => op === 'setIf' || op === 'touchIf' || op === 'touch'), ['setIf'], `sent ${ops.join(', ')}`);
});

test('res.redirect() then destroy() after a push: no gone for the request\'s own logout', async (t) => {
  const { br, gone, store, sid } = await shop(t, (app) => {
    app.post('/logout', (req, res) => {
      req.session.cart = ['pear'];
      req.flash('info', 'Bye');
      res.redirect(303, '/');
      req.session.destroy();
    });
  });
  const id = sid();
  assert.equal((await br.post('/logout')).status, 303);
  assert.deepEqual(gone, [], 'the request destroyed its own session: no save of another found it gone');
  assert.equal(await store.client.load('early', id), null, 'the session stays destroyed');
});

test('a session another tab destroyed: an early save still says gone once, at the request\'s end', async (t) => {
  const { br, gone, store, sid } = await shop(t, (app, { store: s }) => {
    app.post('/cart', async (req, res) => {
      await s.client.destroy('early', req.sessionID);
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      res.redirect(303, '/');
    });
  });
  const id = sid();
  assert.equal((await br.post('/cart')).status, 303);
  assert.equal(gone.length, 1, `'gone' said ${gone.length} times`);
  assert.equal(await store.client.load('early', id), null, 'the destroyed session is not brought back');
});

test('an early touch that finds the session gone is not followed by another at the end', async (t) => {
  const { br, ops, gone } = await shop(t, (app, { store: s }) => {
    app.post('/form', (req, res) => {
      req.flash('info', 'x');
      res.redirect(303, '/');
    });
    // Another tab logs out while this page, which shows a flash, is loading.
    app.get('/show', async (req, res, next) => {
      await s.client.destroy('early', req.sessionID);
      next();
    }, flash.locals(), (req, res) => res.json(res.locals.flash));
    // A form error pushed to a session another tab logged out (the push is dropped).
    app.post('/form-gone', async (req, res) => {
      await s.client.destroy('early', req.sessionID);
      req.flash('error', 'Bad email');
      res.redirect(303, '/');
    });
  });
  await br.post('/form');
  ops.length = 0;
  assert.equal((await br.get('/show')).status, 200);
  assert.deepEqual(ops.filter((op) => op.startsWith('touch')), ['touchIf'], `the page showing a flash sent ${ops.join(', ')}`);
  await br.post('/login');
  ops.length = 0;
  assert.equal((await br.post('/form-gone')).status, 303);
  assert.deepEqual(ops.filter((op) => op.startsWith('touch')), ['touchIf'], `the form error sent ${ops.join(', ')}`);
  assert.deepEqual(gone, [], 'touches say no gone');
});

test('a pop whose touch found the session gone, then "remember me": gone once, nothing more sent', async (t) => {
  const { br, ops, gone } = await shop(t, (app, { store: s }) => {
    app.post('/form', (req, res) => {
      req.flash('info', 'x');
      res.redirect(303, '/');
    });
    app.post('/remember', async (req, res, next) => {
      await s.client.destroy('early', req.sessionID);
      next();
    }, flash.locals({ methods: ['POST'] }), (req, res) => {
      req.session.cookie.maxAge = 30 * 24 * 3600000;
      res.json(res.locals.flash);
    });
  });
  await br.post('/form');
  ops.length = 0;
  assert.equal((await br.post('/remember')).status, 200);
  assert.equal(gone.length, 1, 'the cookie\'s save found the session gone, as it does without the early touch');
  assert.deepEqual(ops.filter((op) => op.startsWith('touch') || op.startsWith('set')), ['touchIf'], `sent ${ops.join(', ')}`);
});

test('a page showing a flash touches early without comparing every key of its session', async (t) => {
  const { br, ops, store } = await shop(t, (app) => {
    app.post('/form', (req, res) => {
      req.session.blob = 'x'.repeat(1000);
      req.flash('info', 'x');
      res.redirect(303, '/');
    });
  });
  await br.post('/form');
  let formed = 0;
  const forms = store.forms;
  store.forms = function counted(...args) {
    formed++;
    return forms.apply(this, args);
  };
  ops.length = 0;
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.flash, { info: ['x'] });
  assert.deepEqual(ops, ['load', 'flashPop', 'touchIf']);
  assert.equal(formed, 0, 'the session\'s keys were put in their JSON forms to compare them');
});

// Not the early save, its sibling: the app's own save before its redirect, made before
// express-session renews the cookie at the response, as the early save is.
test('a save-first cart add (req.session.save(cb), then the redirect) writes the cookie renewed', async (t) => {
  const { br, store, sid } = await shop(t, (app) => {
    app.post('/cart', (req, res, next) => {
      req.session.cart = ['pear'];
      req.session.save((err) => (err ? next(err) : res.redirect(303, '/')));
    });
  });
  // The session as a page view (a touch, which writes no data) an hour after its last save
  // leaves it: sessd keeps it an hour more, its data says it ends in 30 s.
  const stored = JSON.parse((await store.client.get('early', sid())).toString());
  stored.cookie.expires = new Date(Date.now() + 30000).toISOString();
  await store.client.set('early', sid(), JSON.stringify(stored), 3600000);
  assert.equal((await br.post('/cart')).status, 303);
  const after = JSON.parse((await store.client.get('early', sid())).toString());
  assert.deepEqual(after.cart, ['pear']);
  assert.ok(new Date(after.cookie.expires).getTime() > Date.now() + 3000000, `stored cookie expires ${after.cookie.expires}`);
});

// Review of stop 54: the app's own save between the early save and express-session's touch.
test('a pop whose early touch found the session gone, "remember me" saved by the app before its response: gone once', async (t) => {
  const { br, gone, errors } = await shop(t, (app, { store: s }) => {
    app.post('/form', (req, res) => {
      req.flash('info', 'x');
      res.redirect(303, '/');
    });
    app.post('/remember', async (req, res, next) => {
      await s.client.destroy('early', req.sessionID);
      next();
    }, flash.locals({ methods: ['POST'] }), (req, res, next) => {
      req.session.cookie.maxAge = 30 * 24 * 3600000;
      req.session.save((err) => (err ? next(err) : res.json(res.locals.flash)));
    });
  });
  await br.post('/form');
  assert.equal((await br.post('/remember')).status, 200);
  assert.deepEqual(errors, []);
  assert.equal(gone.length, 1, `'gone' said ${gone.length} times for one request`);
});
