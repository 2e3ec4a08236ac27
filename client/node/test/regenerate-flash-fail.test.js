'use strict';
// A login's regenerate() whose moved flash (passport's successFlash) breaks with its
// connection fails, and its 503 error page must not save the new session again: found by
// the model check (bench/model-check.js), where that save, with sessd still down, reached
// Express's final handler, which logged it and destroyed the browser's connection.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, codec } = require('..');
const { persistentDaemon, replyDropper, Browser, listen, closeServer } = require('./helpers');

test('regenerate() whose moved flash breaks: 503, and the error page saves nothing', async (t) => {
  const d = await persistentDaemon(t);
  const { url, proxy } = await replyDropper(t, d.sock);
  const store = new SessdStore({ url, namespace: 'regen-flash-fail', reconnectMinMs: 20, reconnectMaxMs: 100 });
  const app = express();
  app.use(session({ store, secret: 'regen-flash-fail', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.post('/visit', (req, res) => {
    req.session.visits = 1;
    res.json({ ok: true });
  });
  app.post('/login', (req, res, next) => {
    req.flash('info', 'Welcome');
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ann';
      return req.session.save((err2) => (err2 ? next(err2) : res.json({ ok: true })));
    });
  });
  const finalErrors = [];
  app.use((err, req, res, next) => {
    if (res.headersSent) finalErrors.push(err);
    else res.status(err.statusCode || 500).json({ code: err.code });
  });
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.client.terminate();
  });
  const br = new Browser(base);
  // A session read from sessd: the push before the regenerate is a FLASH_PUSH_EXISTING, the
  // moved one a FLASH_PUSH.
  assert.equal((await br.post('/visit')).status, 200);
  const setsBefore = proxy.seen.get(codec.OP.SET) || 0;
  proxy.drop = codec.OP.FLASH_PUSH; // the moved "Welcome" breaks its connection
  const r = await br.post('/login');
  assert.equal(r.status, 503, r.body);
  assert.equal(proxy.dropped, 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal((proxy.seen.get(codec.OP.SET) || 0) - setsBefore, 0, 'the error page saved the new session');
  assert.deepEqual(finalErrors, []);
});
