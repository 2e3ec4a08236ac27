'use strict';
// Review of stop 54's early save (store.js presave, touch, lostEarly): the 'gone' event of a
// request whose early save found its session gone, when the app's own save comes between
// that early save and express-session's touch at the end. A real sessd, a real Express app.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// shop(t, routes): an app on a store of its own and a logged-in browser; gone lists the
// 'gone' events, errors what reached the app's error handler.
async function shop(t, routes) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'review-54-gone', poolSize: 1 });
  t.after(() => store.close());
  await store.client.ready();
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  const errors = [];
  const app = express();
  app.use(session({ store, secret: 'review-54', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.send('ok');
  });
  routes(app, store);
  app.use((err, req, res, next) => {
    errors.push(err.code || err.message);
    res.status(500).send('error');
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.post('/login', {})).status, 200);
  return { store, br, gone, errors };
}

test('a cart add whose early save found the session gone, then the app\'s own save: gone once', async (t) => {
  const { br, gone, errors, store } = await shop(t, (app, s) => {
    app.post('/cart', async (req, res, next) => {
      await s.client.destroy('review-54-gone', req.sessionID); // another tab logs out
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      req.session.save((err) => (err ? next(err) : res.redirect(303, '/')));
    });
  });
  const id = decodeURIComponent(br.cookies.get('connect.sid')).slice(2).split('.')[0];
  assert.equal((await br.post('/cart')).status, 303);
  assert.deepEqual(errors, []);
  assert.equal(gone.length, 1, `'gone' said ${gone.length} times for one request`);
  assert.equal(await store.client.load('review-54-gone', id), null, 'the destroyed session is not brought back');
});

test('a pop whose early touch found the session gone, "remember me", then the app\'s own save: gone once', async (t) => {
  const { br, gone, errors } = await shop(t, (app, s) => {
    app.post('/form', (req, res) => {
      req.flash('info', 'x');
      res.redirect(303, '/');
    });
    app.post('/remember', async (req, res, next) => {
      await s.client.destroy('review-54-gone', req.sessionID);
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
