'use strict';
// A page view that changes nothing (most requests) reads its session once. Its touch at the
// end of the request asks whether the cookie alone changed ("remember me"), which compared
// the cookie with the one read; with merge on, that parsed the whole session again and wrote
// every top-level key's form, each page paying twice for its session's JSON
// (bench/e2e/store-ops.js: the store's own work per page view 0.77x without it). A cookie
// set alone must still be saved.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');

test('a page view that changes nothing parses its session once; a cookie set alone is still saved', async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  let parses = 0;
  const serializer = {
    stringify: (o) => JSON.stringify(o),
    parse: (s) => {
      parses++;
      return JSON.parse(s);
    },
  };
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'page-view', serializer });
  t.after(() => store.close());
  let setIfs = 0;
  let touchIfs = 0;
  const { setIf, touchIf } = store.client;
  store.client.setIf = (...args) => {
    setIfs++;
    return setIf.apply(store.client, args);
  };
  store.client.touchIf = (...args) => {
    touchIfs++;
    return touchIf.apply(store.client, args);
  };

  const app = express();
  app.use(session({ store, secret: 'page-view-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 60000 } }));
  app.post('/login', (req, res) => {
    req.session.user = 'ada';
    req.session.cart = ['pear', 'plum'];
    res.send('ok');
  });
  app.get('/', (req, res) => res.send(req.session.user || ''));
  app.post('/remember', (req, res) => {
    req.session.cookie.maxAge = 3600000;
    res.send('ok');
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));

  const br = new Browser(base);
  assert.equal((await br.post('/login', {})).status, 200);
  for (let i = 0; i < 3; i++) {
    parses = 0;
    touchIfs = 0;
    const r = await br.get('/');
    assert.equal(r.body, 'ada');
    assert.equal(parses, 1, `page ${i}: the session was parsed ${parses} times`);
    assert.equal(touchIfs, 1, `page ${i}: touched with TOUCH_IF`);
  }
  assert.equal(setIfs, 0, 'a page that changed nothing saved nothing');

  // "Remember me": the cookie alone changed, which express-session only touches; the store
  // saves it, so that the next page does not cut the session back to the old lifetime.
  assert.equal((await br.post('/remember', {})).status, 200);
  assert.equal(setIfs, 1, 'a cookie set alone is saved');
  const sid = decodeURIComponent(br.cookies.get('connect.sid')).slice(2).split('.')[0];
  const stored = JSON.parse(await store.client.get('page-view', sid));
  // express-session's maxAge setter reads the clock twice (expires = now + ms, then
  // originalMaxAge = expires - now): a millisecond passing between them leaves 3599999.
  assert.ok(stored.cookie.originalMaxAge >= 3599990 && stored.cookie.originalMaxAge <= 3600000, `originalMaxAge ${stored.cookie.originalMaxAge}`);
  assert.deepEqual(stored.cart, ['pear', 'plum']);
});
