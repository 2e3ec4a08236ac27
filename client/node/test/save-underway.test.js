'use strict';
// An app's own save not awaited, then a change, then the response: express-session saves the
// session again at the end (it changed since the app's save), while the app's save is still
// under way. That second save went out beside the first, expecting the same data: sessd
// answered it CONFLICT (the first had changed the data), and the store read the session again
// and wrote a third time: three SET_IFs and a GET, four round trips after the LOAD where two
// do (a reviewjs-54 Low). set() now waits for a save of the same session under way and then
// writes what is left: two SET_IFs, or one when nothing changed after the app's save.
// Counted both ways: the store's client calls, and the round trips a relay sees.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, countCalls } = require('./helpers');
const { waveRelay } = require('./waverelay');

const WAVE_DELAY_MS = 10;
const OPS = ['load', 'get', 'set', 'setIf', 'touch', 'touchIf', 'destroy', 'flashPush', 'flashPushExisting', 'flashPop'];

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

async function app(t, storeOpts = {}) {
  const relay = await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), WAVE_DELAY_MS);
  t.after(() => relay.close());
  const store = new SessdStore({ url: relay.url, namespace: 'underway', poolSize: 1, ...storeOpts });
  t.after(() => store.close());
  await store.client.ready();
  const ops = countCalls(store.client, OPS);
  const errors = [];
  const a = express();
  a.use(express.urlencoded({ extended: false }));
  a.use(session({ store, secret: 'underway-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  a.use(flash());
  a.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.send('ok');
  });
  a.get('/', flash.locals(), (req, res) => res.json({ flash: res.locals.flash, s: { ...req.session, cookie: undefined } }));
  // The app's save not awaited, then a change after it (a returnTo taken, a note), then the
  // response; push: a flash pushed first (connect-flash style, not awaited).
  a.post('/cart', (req, res) => {
    req.session.cart = [...(req.session.cart || []), req.body.item];
    if (req.body.push) req.flash('info', `Added ${req.body.item}`);
    req.session.save();
    if (req.body.after) req.session.note = req.body.after;
    res.redirect(303, '/');
  });
  a.post('/view', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.send('ok');
  });
  a.use((err, req, res, next) => {
    errors.push(err);
    if (res.headersSent) return next(err);
    return res.status(500).send('error');
  });
  const { server, base } = await listen(a);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.post('/login', {})).status, 200);
  const act = async (fn) => {
    ops.length = 0;
    relay.start();
    const r = await fn();
    return { r, waves: relay.waves(), sent: [...ops] };
  };
  return { br, act, errors };
}

test('save() not awaited, then a change, then the redirect: two SET_IFs, not three and a GET', async (t) => {
  const { br, act, errors } = await app(t);
  const a = await act(() => br.post('/cart', { item: 'pear', after: 'seen' }));
  assert.equal(a.r.status, 303);
  assert.deepEqual(a.sent, ['load', 'setIf', 'setIf'], `sent ${a.sent.join(', ')}`);
  assert.equal(a.waves, 3, `LOAD, the app's SET_IF, then the rest's (waited for ${a.waves})`);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['pear']);
  assert.equal(page.s.note, 'seen');
  assert.deepEqual(errors, []);
});

test('save() not awaited, nothing changed after it: one SET_IF', async (t) => {
  const { br, act, errors } = await app(t);
  const a = await act(() => br.post('/cart', { item: 'fig' }));
  assert.equal(a.r.status, 303);
  assert.deepEqual(a.sent, ['load', 'setIf'], `sent ${a.sent.join(', ')}`);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['fig']);
  assert.deepEqual(errors, []);
});

test('a push, save() not awaited, then a change, then the redirect: the flash once, two SET_IFs', async (t) => {
  const { br, act, errors } = await app(t);
  const a = await act(() => br.post('/cart', { item: 'kiwi', push: '1', after: 'kiwi seen' }));
  assert.equal(a.r.status, 303);
  assert.deepEqual(a.sent.filter((op) => op === 'setIf' || op === 'get'), ['setIf', 'setIf'], `sent ${a.sent.join(', ')}`);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.flash, { info: ['Added kiwi'] });
  assert.deepEqual(page.s.cart, ['kiwi']);
  assert.equal(page.s.note, 'kiwi seen');
  assert.deepEqual(errors, []);
});

test('a save under way, then the rest, beside another request\'s save of the same session: no change lost', async (t) => {
  const { br } = await app(t);
  // Another tab changes another key while this request's two saves are under way: all stay.
  const other = new Browser(br.base);
  other.cookies = new Map(br.cookies);
  const [a, b] = await Promise.all([br.post('/cart', { item: 'plum', after: 'from a' }), other.post('/view', {})]);
  assert.equal(a.status, 303);
  assert.equal(b.status, 200);
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['plum']);
  assert.equal(page.s.note, 'from a');
  assert.equal(page.s.views, 1);
});
