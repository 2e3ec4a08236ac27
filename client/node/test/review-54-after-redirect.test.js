'use strict';
// Review of stop 54: a session change made in the same tick as the redirect that started the
// early save (flash.js holds the end, store.js presave).
// test:express4: a change made in the tick of Express's res.redirect.

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

test('a login that redirects to returnTo and then deletes it: one SET_IF, returnTo gone', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'review-54-redirect', poolSize: 1 });
  t.after(() => store.close());
  const ops = [];
  for (const m of ['set', 'setIf', 'touch', 'touchIf']) {
    const orig = store.client[m];
    store.client[m] = function counted(...args) {
      ops.push(m);
      return orig.apply(this, args);
    };
  }
  const app = express();
  app.use(session({ store, secret: 'review-54', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.get('/account', (req, res) => {
    req.session.returnTo = '/account';
    res.redirect(303, '/login');
  });
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    req.flash('success', 'Signed in');
    // As many apps write it: the redirect, then the key it used deleted.
    res.redirect(303, req.session.returnTo || '/');
    delete req.session.returnTo;
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.get('/account')).status, 303);
  ops.length = 0;
  const r = await br.post('/login', {});
  assert.equal(r.status, 303);
  assert.equal(r.headers.location, '/account');
  const sid = decodeURIComponent(br.cookies.get('connect.sid')).slice(2).split('.')[0];
  const stored = JSON.parse((await store.client.get('review-54-redirect', sid)).toString());
  assert.equal(stored.user, 'ann');
  assert.equal(stored.returnTo, undefined);
  assert.deepEqual(ops, ['setIf'], `the login sent ${ops.join(', ')}`);
});
