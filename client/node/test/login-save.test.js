'use strict';
// A login as the README's example and passport make it: regenerate(), set the user, then
// req.session.save() before the redirect. express-session saves the session again at the end
// of that request (its id changed, so it takes it for unsaved): a second SET of the same
// session, one more round trip in every login (found counting a shop's saves in an express
// review). A change made after the save is still saved at the end.
// test:express4: a login's save before Express's res.redirect.

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
  await daemon.cleanup();
});

async function shop(t, namespace) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace });
  t.after(() => store.client.terminate());
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: 'login-save', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.post('/login', (req, res, next) => req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body.user;
    if (req.body.remember) req.session.cookie.maxAge = 30 * 86400000;
    return req.session.save((e) => {
      if (e) return next(e);
      if (req.body.after) req.session.lastLogin = req.body.after;
      return res.redirect(303, '/');
    });
  }));
  app.get('/', (req, res) => res.json({ user: req.session.user || null, lastLogin: req.session.lastLogin || null }));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  return { store, b: new Browser(base), sets: countSaves(store) };
}

test('login save: a login saved before its redirect is sent to sessd once', async (t) => {
  const { store, b, sets } = await shop(t, 'login-save-once');
  assert.equal((await b.post('/login', { user: 'ann', remember: '1' })).status, 303);
  assert.equal(sets.n, 1);
  assert.deepEqual(JSON.parse((await b.get('/')).body), { user: 'ann', lastLogin: null });
  // The "remember me" lifetime given before the save is the one sessd keeps.
  const sid = decodeURIComponent(b.cookies.get('connect.sid')).slice(2).split('.')[0];
  const ttl = await store.client.ttl('login-save-once', sid);
  assert.ok(ttl > 29 * 86400000, `ttl ${ttl}`);
});

test('login save: a change made after the save is saved at the end of the request', async (t) => {
  const { b, sets } = await shop(t, 'login-save-after');
  assert.equal((await b.post('/login', { user: 'bob', after: 'today' })).status, 303);
  assert.equal(sets.n, 2);
  assert.deepEqual(JSON.parse((await b.get('/')).body), { user: 'bob', lastLogin: 'today' });
});
