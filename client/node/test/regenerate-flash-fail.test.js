'use strict';
// A regenerate() whose flash breaks with its connection fails, and its 503 error page must
// not save the new session again: found by the model check (bench/model-check.js), where that
// save, with sessd still down, reached Express's final handler, which logged it and destroyed
// the browser's connection. Two ways: a login's flash pushed before the regenerate (passport's
// successFlash), which the regenerate moves, and a logout's pushed after it.
// test:express4: the error page Express's handler sends after a failed regenerate.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, codec } = require('..');
const { persistentDaemon, replyDropper, Browser, listen, closeServer } = require('./helpers');

// postBreakingPush(t, namespace, route): an app with POST /visit (a session read from sessd:
// a push before a regenerate is then a FLASH_PUSH_EXISTING) and POST /action (route); the
// first FLASH_PUSH of /action is carried out and its connection broken. Checks that /action
// answers 503 and that nothing saves the session after it.
async function postBreakingPush(t, namespace, route) {
  const d = await persistentDaemon(t);
  const { url, proxy } = await replyDropper(t, d.sock);
  const store = new SessdStore({ url, namespace, reconnectMinMs: 20, reconnectMaxMs: 100 });
  const app = express();
  app.use(session({ store, secret: namespace, resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.post('/visit', (req, res) => {
    req.session.user = 'ann';
    res.json({ ok: true });
  });
  app.post('/action', route);
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
  assert.equal((await br.post('/visit')).status, 200);
  const setsBefore = proxy.seen.get(codec.OP.SET) || 0;
  proxy.drop = codec.OP.FLASH_PUSH;
  const r = await br.post('/action');
  assert.equal(r.status, 503, r.body);
  assert.equal(proxy.dropped, 1);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal((proxy.seen.get(codec.OP.SET) || 0) - setsBefore, 0, 'the error page saved the new session');
  assert.deepEqual(finalErrors, []);
}

test('regenerate() whose moved flash breaks: 503, and the error page saves nothing', async (t) => {
  await postBreakingPush(t, 'regen-flash-fail', (req, res, next) => {
    req.flash('info', 'Welcome'); // moved to the new session: the FLASH_PUSH that breaks
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ann';
      return req.session.save((err2) => (err2 ? next(err2) : res.json({ ok: true })));
    });
  });
});

// Found by the model check, seed 953 with dense kills.
test('a push after regenerate() that breaks: 503, and the error page saves nothing', async (t) => {
  await postBreakingPush(t, 'regen-push-fail', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      // To the new session, not yet in sessd: the FLASH_PUSH that breaks, and the mark that
      // makes express-session save it.
      return req.flash('info', 'Signed out').then(() => res.json({ ok: true }), next);
    });
  });
});
