'use strict';
// The lifetime sessd gives a session for each kind of express-session cookie, through a real
// app and the real daemon (README, "Expiry"): a maxAge past 2^32 ms (about 49.7 days, where
// the wire's ttl takes 9 bytes), one past sessd's 10 years (10 years), a maxAge of 0 or below
// (no session is kept: the cookie has expired), and a browser-session cookie (no maxAge: the
// store's ttl option). Bounds, not timings: each lifetime is checked against what the cookie
// asks less a minute, which no run takes.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, Client, codec } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');

const DAY = 86400 * 1000;
const MINUTE = 60 * 1000;
let daemon;
let probe;

test.before(async () => {
  daemon = await new Daemon().start();
  probe = new Client({ url: daemon.unixUrl });
});

test.after(async () => {
  if (probe) await probe.close();
  if (daemon) await daemon.cleanup();
});

// visit(t, namespace, cookie, storeOpts): logs a browser in on an app whose cookie options
// are ${cookie} and reads its page again; resolves { ttl, user } with sessd's remaining
// lifetime for the session (null: none kept) and the user the second page saw.
async function visit(t, namespace, cookie, storeOpts = {}) {
  const store = new SessdStore({ client: probe, namespace, ...storeOpts });
  const app = express();
  app.use(session({ store, secret: 'cookie-lifetimes', name: 'sid', resave: false, saveUninitialized: false, cookie }));
  app.post('/login', (req, res, next) => {
    req.session.user = 'ada';
    // Saved before the answer, so that sessd holds what the page said.
    req.session.save((err) => (err ? next(err) : res.json({ sid: req.sessionID })));
  });
  app.get('/me', (req, res) => res.json({ user: req.session.user || null }));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const b = new Browser(base);
  const { sid } = JSON.parse((await b.post('/login')).body);
  const ttl = await probe.ttl(namespace, sid);
  const { user } = JSON.parse((await b.get('/me')).body);
  return { ttl, user };
}

test('a maxAge past 2^32 ms is kept to the millisecond', async (t) => {
  const maxAge = 60 * DAY;
  assert.ok(maxAge > 2 ** 32);
  const { ttl, user } = await visit(t, 'lifetimes-60d', { maxAge });
  assert.ok(ttl > maxAge - MINUTE && ttl <= maxAge, `${ttl} ms left of ${maxAge}`);
  assert.equal(user, 'ada');
});

test('a maxAge past 10 years is sessd\'s 10 years', async (t) => {
  const { ttl, user } = await visit(t, 'lifetimes-20y', { maxAge: 20 * 365 * DAY });
  assert.ok(ttl > codec.MAX_TTL_MS - MINUTE && ttl <= codec.MAX_TTL_MS, `${ttl} ms left`);
  assert.equal(user, 'ada');
});

test('a maxAge of 0 or below keeps no session', async (t) => {
  for (const maxAge of [0, -1000]) {
    const namespace = `lifetimes-${maxAge}`;
    const { ttl, user } = await visit(t, namespace, { maxAge });
    assert.equal(ttl, null, `maxAge ${maxAge}: sessd keeps the session`);
    assert.equal(user, null, `maxAge ${maxAge}: the next page is signed in`);
    assert.equal(await probe.count(namespace), 0, `maxAge ${maxAge}: a session is left behind`);
  }
});

test('a browser-session cookie lives the store\'s ttl', async (t) => {
  const { ttl, user } = await visit(t, 'lifetimes-browser', { maxAge: null }, { ttl: 600 });
  assert.ok(ttl > 600 * 1000 - MINUTE && ttl <= 600 * 1000, `${ttl} ms left of 600 s`);
  assert.equal(user, 'ada');
  const byDefault = await visit(t, 'lifetimes-browser-default', {});
  assert.ok(byDefault.ttl > DAY - MINUTE && byDefault.ttl <= DAY, `${byDefault.ttl} ms left of a day`);
});
