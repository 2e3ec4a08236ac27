'use strict';
// Round trips to sessd that a request waits for one after another (README "Performance"), as
// a relay between the app and sessd sees them: the app's writes that come after a reply
// reached it, each reply held WAVE_DELAY_MS so that a write the app makes without waiting
// for it (pipelined on the connection) is never taken for one that waited. A cart add or a
// form error that pushes a flash without awaiting it, connect-flash style, and a page that
// shows a flash took three (LOAD, the flash request, then the save or touch once the flash's
// reply was in); the save or touch now goes out behind the flash request (the store's
// presave), two; a logout's new session is saved behind the push that made it, four instead
// of five. What the visitor sees stays the same: the flash shows once on the next
// page, the cart holds the item, a save that fails reaches the app's error handler, a session
// destroyed meanwhile is not brought back.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');
const { waveRelay } = require('./waverelay');

const WAVE_DELAY_MS = 10;

// One daemon for the tests that need no option of their own.
let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

async function shop(t, daemon, storeOpts = {}, flashOpts = {}) {
  const relay = await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), WAVE_DELAY_MS);
  t.after(() => relay.close());
  const store = new SessdStore({ url: relay.url, namespace: 'roundtrips', poolSize: 1, ...storeOpts });
  t.after(() => store.close());
  await store.client.ready();
  const errors = [];
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: 'roundtrips-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash(flashOpts));
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.send('ok');
  });
  app.get('/', flash.locals(), (req, res) => res.json({ flash: res.locals.flash, cart: req.session.cart || [] }));
  // A page that changes its session after its pop (whose touch went out with the pop).
  app.get('/count', flash.locals(), (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.json({ flash: res.locals.flash, views: req.session.views });
  });
  // connect-flash style: push without awaiting, redirect.
  app.post('/cart', (req, res) => {
    req.session.cart = [...(req.session.cart || []), req.body.item];
    if (req.body.logoutFirst) store.client.destroy('roundtrips', req.sessionID).then(() => push(req, res), (err) => res.status(500).send(err.message));
    else push(req, res);
  });
  function push(req, res) {
    req.flash('info', `Added ${req.body.item.slice(0, 10)}`);
    res.redirect(303, '/');
  }
  // passport 0.7's logout: save the session without its user, regenerate, flash, redirect.
  app.post('/logout', (req, res, next) => {
    delete req.session.user;
    req.session.save((err) => {
      if (err) return next(err);
      return req.session.regenerate((err2) => {
        if (err2) return next(err2);
        req.flash('info', 'Signed out');
        return res.redirect(303, '/');
      });
    });
  });
  // A visitor's first page: a flash for a session not in sessd yet.
  app.get('/hello', (req, res) => {
    req.flash('info', 'Hello');
    res.redirect(303, '/');
  });
  app.post('/form', (req, res) => {
    req.flash('error', 'Bad email');
    res.redirect(303, '/');
  });
  app.use((err, req, res, next) => {
    errors.push(err);
    if (res.headersSent) return next(err);
    return res.status(err.statusCode || 500).send('error');
  });
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.post('/login', {})).status, 200);
  // act(fn): fn's response, the round trips it waited for and their requests (see waveRelay).
  const act = async (fn) => {
    relay.start();
    const r = await fn();
    return { r, waves: relay.waves(), requests: relay.requests() };
  };
  return { store, br, act, errors, relay };
}

// The lifetime shop()'s cookie gives, and store.js's SAVED_EXPIRES_SLACK_MS and
// SAVED_RENEW_AFTER_MS (see savedShort).
const MAX_AGE_MS = 3600000;
const SAVED_EXPIRES_SLACK_MS = 100;
const SAVED_RENEW_AFTER_MS = 1000;

// assertWaves(requests, expected, what): an action (requests: act()'s) waited for the round
// trips expected (each its requests' names, ' + ' between those pipelined); or, by design, for
// one more, a TOUCH_IF (or TOUCH) of the session the action saved or touched early, where the
// library's condition for it (store.js, savedShort) may have held. The early save or touch (a
// push's SET_IF or TOUCH_IF behind it, a pop's TOUCH_IF) gives the session its cookie's maxAge
// from then; express-session renews the cookie only as the response goes out, and the end
// touches again when that cookie's end, cut to whole seconds, passes the early lifetime by
// over SAVED_EXPIRES_SLACK_MS, or the end comes over SAVED_RENEW_AFTER_MS after it. On a loaded
// machine (CI's) an app held up over 100 ms between the two, with a second of the cookie's end
// in that gap, does (a page showing a flash, 1 in 3 CI runs at 8919487: "waited for 3"). The
// bounds are taken on the side that accepts it: the library took its clock for the early
// lifetime after the reply its round trip waited for reached the app (after), and for the
// cookie's before the last TOUCH_IF reached the relay (at).
function assertWaves(requests, expected, what) {
  const shape = requests.map((w) => w.requests.map((r) => r.op).join(' + '));
  const last = requests.at(-1);
  const renewal = shape.length === expected.length + 1 && /^TOUCH(_IF)?$/.test(shape.at(-1));
  if (renewal && expected.every((ops, i) => shape[i] === ops)) {
    const late = last.requests[0];
    const earlyWave = requests.slice(0, -1).findLast((w) => w.requests.some((r) => r.id === late.id && /^(SET|TOUCH)(_IF)?$/.test(r.op)));
    assert.ok(earlyWave, `${what}: a last round trip, ${late.op}, of a session the action had not saved nor touched`);
    const early = earlyWave.requests.findLast((r) => r.id === late.id && /^(SET|TOUCH)(_IF)?$/.test(r.op));
    const untilAtLeast = earlyWave.after + early.ttlMs;
    const browserEndAtMost = Math.floor((late.at + MAX_AGE_MS) / 1000) * 1000;
    const gapAtMost = late.at - earlyWave.after;
    assert.ok(browserEndAtMost - untilAtLeast > SAVED_EXPIRES_SLACK_MS || gapAtMost > SAVED_RENEW_AFTER_MS,
      `${what}: a last round trip, ${late.op} at the end, where the library's condition for it cannot have held: the cookie the response renewed ends at most ${browserEndAtMost - untilAtLeast} ms past the lifetime the early ${early.op} gave, at most ${gapAtMost} ms after it`);
    return;
  }
  assert.deepEqual(shape, expected, `${what}: ${expected.join(', then ')} (waited for ${shape.length}: ${shape.join(', ')})`);
}

test('round trips: a cart add, a form error and a page showing a flash each wait for two, a logout four', async (t) => {
  const { br, act, store } = await shop(t, daemon);
  let gone = 0;
  store.on('gone', () => gone++);

  let a = await act(() => br.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: {}, cart: [] });
  assert.equal(a.waves, 2, 'a page view: LOAD, TOUCH_IF');

  a = await act(() => br.post('/cart', { item: 'pear' }));
  assert.equal(a.r.status, 303);
  assertWaves(a.requests, ['LOAD', 'FLASH_PUSH_EXISTING + SET_IF'], 'a cart add');

  a = await act(() => br.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: { info: ['Added pear'] }, cart: ['pear'] });
  assertWaves(a.requests, ['LOAD', 'FLASH_POP + TOUCH_IF'], 'a page showing a flash');

  a = await act(() => br.post('/form', {}));
  assert.equal(a.r.status, 303);
  assertWaves(a.requests, ['LOAD', 'FLASH_PUSH_EXISTING + TOUCH_IF'], 'a form error');

  a = await act(() => br.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: { error: ['Bad email'] }, cart: ['pear'] });
  a = await act(() => br.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: {}, cart: ['pear'] }, 'each flash shown once');

  // A page that changes the session after its pop saves the change at its end.
  await act(() => br.post('/form', {}));
  a = await act(() => br.get('/count'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: { error: ['Bad email'] }, views: 1 });
  assertWaves(a.requests, ['LOAD', 'FLASH_POP + TOUCH_IF', 'SET_IF'], 'a page that pops, then changes its session');
  a = await act(() => br.get('/count'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: {}, views: 2 }, 'the change after the pop was stored');

  // The logout's new session is saved behind the push that made it (FLASH_PUSH, SET).
  a = await act(() => br.post('/logout', {}));
  assert.equal(a.r.status, 303);
  assertWaves(a.requests, ['LOAD', 'SET_IF', 'DESTROY', 'FLASH_PUSH + SET'], 'a logout');
  a = await act(() => br.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: { info: ['Signed out'] }, cart: [] });

  const visitor = new Browser(br.base);
  a = await act(() => visitor.get('/hello'));
  assert.equal(a.r.status, 303);
  assertWaves(a.requests, ['FLASH_PUSH + SET'], 'a first visit\'s flash');
  a = await act(() => visitor.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: { info: ['Hello'] }, cart: [] });
  a = await act(() => visitor.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: {}, cart: [] });
  assert.equal(gone, 0);
});

test('round trips: a cart add whose session was destroyed meanwhile is not brought back, and says gone once', async (t) => {
  const { br, act, store } = await shop(t, daemon);
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  const a = await act(() => br.post('/cart', { item: 'pear', logoutFirst: '1' }));
  assert.equal(a.r.status, 303);
  assert.equal(gone.length, 1, `'gone' emitted ${gone.length} times`);
  assert.equal(await store.client.load('roundtrips', gone[0]), null, 'the destroyed session stays gone');
});

test('round trips: a cart add whose save sessd refuses reaches the app\'s error handler, the flash stored', async (t) => {
  const small = await new Daemon({ extraArgs: ['--max-frame', '4096'] }).start();
  t.after(() => small.cleanup());
  const { br, act, errors } = await shop(t, small);
  // The session grows past sessd's max_data: its SET_IF is refused, the push is not.
  await act(() => br.post('/cart', { item: 'x'.repeat(5000) })).catch(() => {});
  assert.equal(errors.length, 1, `the app's error handler got ${errors.length} errors`);
  assert.match(errors[0].code, /^ESESSD_(TOO_LARGE|LIMIT)$/);
  const a = await act(() => br.get('/'));
  assert.deepEqual(JSON.parse(a.r.body), { flash: { info: ['Added xxxxxxxxxx'] }, cart: [] });
});

test('round trips: a cart add whose connection breaks with the push and the save in flight keeps the item, loses the flash once', async (t) => {
  const flashErrors = [];
  const { br, act, errors, relay } = await shop(t, daemon, {}, { onError: (err) => flashErrors.push(err) });
  relay.cutAtWave(2);
  const a = await act(() => br.post('/cart', { item: 'pear' }));
  assert.equal(a.r.status, 303, 'the redirect goes out');
  assert.equal(errors.length, 0, `no error reached the app: ${errors.map((e) => e.code)}`);
  // A push in flight is not sent again (it may have been carried out): at most once.
  assert.equal(flashErrors.length, 1, 'onError heard of the push');
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.cart, ['pear'], 'the save was sent again and stored: no change answered 303 is lost');
  assert.ok(page.flash.info === undefined || page.flash.info.length === 1, `the flash shows once or not at all: ${JSON.stringify(page.flash)}`);
  assert.deepEqual(JSON.parse((await br.get('/')).body).flash, {});
});

// The early save where an app does what express-session allows around it: a pop not awaited
// and then a logout (destroy) or a login's regenerate(), a page showing a flash whose session
// another tab logged out, its own save() not awaited before the redirect, disableTouch, resave and
// rolling, a "remember me" set after a pop, a pop then a push, a response ended by the error
// handler or streamed, a cart add whose session's data says it ends soon. No relay: what is
// sent is counted per request on the store's client.
const OPS = ['load', 'get', 'set', 'setIf', 'touch', 'touchIf', 'destroy', 'flashPush', 'flashPushExisting', 'flashPop', 'ttl', 'ttlIfKnown'];
// countOps(client): the names of the requests sent through client, in order (a test empties it
// between actions); its calls ({ op, id, ttlMs, at }) for assertOps.
function countOps(client) {
  const log = [];
  const calls = [];
  Object.defineProperty(log, 'calls', { value: calls });
  for (const m of OPS) {
    const orig = client[m];
    client[m] = function counted(...args) {
      log.push(m);
      const ttlAt = { set: 3, setIf: 3, touch: 2, touchIf: 2 }[m];
      calls.push({ op: m, id: args[1], ttlMs: ttlAt === undefined ? undefined : args[ttlAt], at: Date.now() });
      return orig.apply(this, args);
    };
  }
  return log;
}

// assertOps(ops, expected, what): the requests an action sent (ops: countOps's) are expected;
// or, by design, those and a touchIf of the session it saved or touched early, at its end,
// where the library's condition for it may have held (see assertWaves; here bounded from the
// calls: the early lifetime's clock was read after the action's first request was made).
function assertOps(ops, expected, what) {
  const calls = ops.calls.slice(-ops.length);
  if (ops.length === expected.length + 1 && ops.at(-1) === 'touchIf' && expected.every((op, i) => ops[i] === op)) {
    const late = calls.at(-1);
    const early = calls.slice(0, -1).findLast((c) => c.id === late.id && /^(set|touch)(If)?$/.test(c.op));
    assert.ok(early, `${what}: a touchIf at the end of a session the action had not saved nor touched`);
    const untilAtLeast = calls[0].at + early.ttlMs;
    const browserEndAtMost = Math.floor((late.at + MAX_AGE_MS) / 1000) * 1000;
    const gapAtMost = late.at - calls[0].at;
    assert.ok(browserEndAtMost - untilAtLeast > SAVED_EXPIRES_SLACK_MS || gapAtMost > SAVED_RENEW_AFTER_MS,
      `${what}: a touchIf at the end, where the library's condition for it cannot have held: the cookie the response renewed ends at most ${browserEndAtMost - untilAtLeast} ms past the lifetime the early ${early.op} gave, at most ${gapAtMost} ms after the action's first request`);
    return;
  }
  assert.deepEqual([...ops], expected, what);
}

async function edgeApp(t, { storeOpts = {}, sessOpts = {}, flashOpts = {}, routes }) {
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
  const { br, store, sid } = await edgeApp(t, { routes(a) {
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
  const { br, ops } = await edgeApp(t, { storeOpts: { disableTouch: true }, routes(a) {
    a.post('/form', (req, res) => { req.flash('info', 'x'); res.redirect(303, '/'); });
  } });
  await br.post('/form');
  ops.length = 0;
  await br.get('/');
  assert.deepEqual(ops, ['load', 'flashPop']);
});

test('a pop not awaited, then regenerate (a login that clears old flashes): no gone', async (t) => {
  const { br, gone } = await edgeApp(t, { routes(a) {
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
  const { br, gone } = await edgeApp(t, { routes(a) {
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

test('pop then push then redirect', async (t) => {
  const { br } = await edgeApp(t, { routes(a) {
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
  const { br, ops } = await edgeApp(t, { sessOpts: { resave: true, rolling: true }, routes(a) {
    a.post('/cart', (req, res) => {
      req.session.cart = ['pear'];
      req.flash('info', 'Added');
      res.redirect(303, '/');
    });
  } });
  ops.length = 0;
  await br.post('/cart');
  assertOps(ops, ['load', 'flashPushExisting', 'setIf'], 'a cart add');
  ops.length = 0;
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['pear']);
  assert.deepEqual(page.flash, { info: ['Added'] });
  assertOps(ops, ['load', 'flashPop', 'touchIf'], 'a page showing a flash');
});

test('error handler ends the response after a push', async (t) => {
  const { br, errors } = await edgeApp(t, { routes(a) {
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
  const { br } = await edgeApp(t, { routes(a) {
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
  const { br, gone, store } = await edgeApp(t, { routes(a) {
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

test('a push, then the app\'s save, in its callback or not awaited, then a redirect: one SET_IF', async (t) => {
  const { br, ops } = await edgeApp(t, { routes(a) {
    a.post('/cart', (req, res, next) => {
      req.session.cart = [...(req.session.cart || []), req.body.item];
      req.flash('info', 'Added');
      if (req.body.wait) return req.session.save((err) => (err ? next(err) : res.redirect(303, '/')));
      // Not awaited: an early save beside it met its write as a CONFLICT, read and wrote again.
      req.session.save();
      return res.redirect(303, '/');
    });
  } });
  for (const form of [{ item: 'pear', wait: '1' }, { item: 'fig' }]) {
    ops.length = 0;
    await br.post('/cart', form);
    assertOps(ops, ['load', 'flashPushExisting', 'setIf'], JSON.stringify(form));
  }
  const page = JSON.parse((await br.get('/')).body);
  assert.deepEqual(page.s.cart, ['pear', 'fig']);
});

test('a cart add saved early writes the cookie renewed, as express-session\'s save did: the next page asks sessd no TTL', async (t) => {
  const { br, store, ops, sid } = await edgeApp(t, { routes(a) {
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
  assertOps(ops, ['load', 'flashPop', 'touchIf'], 'a page showing a flash');
});
