'use strict';
// The early save (the store's presave, README "req.flash"): the save or touch express-session
// makes at a request's end, sent with a flash push the response is held for, or with a pop.
// Where an app does what express-session allows around it: a pop not awaited and then a
// logout (destroy) or a login's regenerate(), a page showing a flash whose session another
// tab logged out, its own save() not awaited before the redirect, disableTouch, resave and
// rolling, a "remember me" set after a pop, a pop then a push, a response ended by the error
// handler or streamed, a cart add whose session's data says it ends soon. What is sent is
// counted per request on the store's client.
const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, sleep } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

const OPS = ['load', 'get', 'set', 'setIf', 'touch', 'touchIf', 'destroy', 'flashPush', 'flashPushExisting', 'flashPop', 'ttl', 'ttlIfKnown'];
function countOps(client) {
  const log = [];
  for (const m of OPS) {
    const orig = client[m];
    client[m] = function counted(...args) {
      log.push(m);
      return orig.apply(this, args);
    };
  }
  return log;
}

async function app(t, { storeOpts = {}, sessOpts = {}, flashOpts = {}, routes }) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'review', poolSize: 1, ...storeOpts });
  t.after(() => store.close());
  await store.client.ready();
  const ops = countOps(store.client);
  const gone = [];
  // 'gone' reports saves that found the session destroyed (README, events).
  store.on('gone', (sid) => gone.push(sid));
  const errors = [];
  const a = express();
  a.use(express.urlencoded({ extended: false }));
  a.use(session({ store, secret: 'review-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 }, ...sessOpts }));
  a.use(flash(flashOpts));
  a.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.send('ok');
  });
  a.get('/', flash.locals(), (req, res) => res.json({ flash: res.locals.flash, s: { ...req.session, cookie: undefined } }));
  routes(a, store);
  a.use((err, req, res, next) => {
    errors.push(err);
    if (res.headersSent) return next(err);
    return res.status(500).send('error');
  });
  const { server, base } = await listen(a);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.post('/login', {})).status, 200);
  const sid = () => decodeURIComponent(br.cookies.get('connect.sid')).slice(2).split('.')[0];
  return { store, br, ops, gone, errors, sid };
}

test('remember me after a pop: sessd keeps the session 30 days', async (t) => {
  const { br, store, sid } = await app(t, { routes(a) {
    a.post('/remember', async (req, res) => {
      const f = await req.flash();
      req.session.cookie.maxAge = 30 * 24 * 3600000;
      res.json(f);
    });
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
  } });
  await br.post('/form');
  await br.post('/remember');
  const left = await store.client.ttl('review', sid());
  assert.ok(left > 24 * 3600000, `ttl ${left}`);
});


test('disableTouch: a pop sends no touch', async (t) => {
  const { br, ops } = await app(t, { storeOpts: { disableTouch: true }, routes(a) {
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
  } });
  await br.post('/form');
  ops.length = 0;
  await br.get('/');
  assert.deepEqual(ops, ['load', 'flashPop']);
});

test('a pop not awaited, then regenerate (a login that clears old flashes): no gone', async (t) => {
  const { br, gone } = await app(t, { routes(a) {
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
    a.post('/relogin', (req, res, next) => {
      req.flash();
      req.session.regenerate((err) => {
        if (err) return next(err);
        req.session.user = 'bob';
        return res.redirect(303, '/');
      });
    });
  } });
  await br.post('/form');
  await br.post('/relogin');
  const page = JSON.parse((await br.get('/')).body);
  assert.equal(page.s.user, 'bob');
  assert.deepEqual(gone, []);
});

test('a pop not awaited, then destroy (a logout): no gone for the session it destroyed', async (t) => {
  const { br, gone } = await app(t, { routes(a) {
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
    a.post('/logout', (req, res, next) => {
      req.flash();
      req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
    });
  } });
  await br.post('/form');
  await br.post('/logout');
  assert.deepEqual(gone, []);
});

test('push then save(cb) then redirect: one save', async (t) => {
  const { br, ops } = await app(t, { routes(a) {
    a.post('/cart', (req, res, next) => {
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      req.session.save((err) => (err ? next(err) : res.redirect(303, '/')));
    });
  } });
  ops.length = 0;
  await br.post('/cart');
  assert.deepEqual(ops, ['load', 'flashPushExisting', 'setIf']);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['pear']);
});

test('pop then push then redirect', async (t) => {
  const { br } = await app(t, { routes(a) {
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
    a.post('/again', async (req, res) => {
      const f = await req.flash('info');
      req.session.n = f.length;
      req.flash('info', 'y');
      res.redirect(303, '/');
    });
  } });
  await br.post('/form');
  await br.post('/again');
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.flash, { info: ['y'] });
  assert.equal(page.s.n, 1);
});

test('resave and rolling: push + redirect', async (t) => {
  const { br, ops } = await app(t, { sessOpts: { resave: true, rolling: true }, routes(a) {
    a.post('/cart', (req, res) => {
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      res.redirect(303, '/');
    });
  } });
  ops.length = 0;
  await br.post('/cart');
  assert.deepEqual(ops, ['load', 'flashPushExisting', 'setIf']);
  ops.length = 0;
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['pear']);
  assert.deepEqual(page.flash, { info: ['Added'] });
  assert.deepEqual(ops, ['load', 'flashPop', 'touchIf']);
});

test('error handler ends the response after a push', async (t) => {
  const { br, errors } = await app(t, { routes(a) {
    a.post('/boom', (req, res, next) => {
      req.session.cart = ['pear'];
      req.flash('error', 'Failed');
      next(new Error('boom'));
    });
  } });
  const r = await br.post('/boom');
  assert.equal(r.status, 500);
  assert.equal(errors.length, 1);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.flash, { error: ['Failed'] });
});

test('a streamed response with a push before its end', async (t) => {
  const { br } = await app(t, { routes(a) {
    a.post('/stream', (req, res) => {
      res.write('a');
      req.session.cart = ['pear'];
      req.flash('info', 'S');
      res.end('b');
    });
  } });
  const r = await br.post('/stream');
  assert.equal(r.body, 'ab');
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.flash, { info: ['S'] });
  assert.deepEqual(page.s.cart, ['pear']);
});

test('a page showing a flash whose session another tab destroyed: no gone (it saved nothing)', async (t) => {
  const { br, gone, store } = await app(t, { routes(a) {
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
    a.get('/show', async (req, res, next) => {
      await store.client.destroy('review', req.sessionID);
      next();
    }, flash.locals(), (req, res) => res.json(res.locals.flash));
  } });
  await br.post('/form');
  await br.get('/show');
  assert.deepEqual(gone, []);
});

test('a push, the app\'s save() not awaited, a redirect: one SET_IF, no second one beside it', async (t) => {
  const { br, ops } = await app(t, { routes(a) {
    a.post('/cart', (req, res) => {
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      req.session.save();
      res.redirect(303, '/');
    });
  } });
  ops.length = 0;
  await br.post('/cart');
  assert.deepEqual(ops, ['load', 'flashPushExisting', 'setIf']);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['pear']);
});

test('a cart add saved early writes the cookie renewed, as express-session\'s save did: the next page asks sessd no TTL', async (t) => {
  const { br, store, ops, sid } = await app(t, { routes(a) {
    a.post('/cart', (req, res) => {
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      res.redirect(303, '/');
    });
  } });
  // The session as an hour of page views (touches, which write no data) after its last save
  // leaves it: sessd keeps it an hour more, its data says it ends in 30 s.
  const stored = JSON.parse((await store.client.get('review', sid())).toString());
  stored.cookie.expires = new Date(Date.now() + 30000).toISOString();
  await store.client.set('review', sid(), JSON.stringify(stored), 3600000);
  await br.post('/cart');
  const after = JSON.parse((await store.client.get('review', sid())).toString());
  assert.deepEqual(after.cart, ['pear']);
  assert.ok(new Date(after.cookie.expires).getTime() > Date.now() + 3000000, `stored cookie expires ${after.cookie.expires}`);
  ops.length = 0;
  assert.deepEqual(JSON.parse((await br.get('/')).body).flash, { info: ['Added'] });
  assert.deepEqual(ops, ['load', 'flashPop', 'touchIf']);
});
