'use strict';
// connect-sessd as Express users run it: real apps (the example shop and small apps in the
// shape of passport/connect-flash code) against the real daemon, through daemon crashes and
// restarts, a stuck daemon, oversized sessions, express-session's options, and several app
// processes sharing one namespace.
// test:express4: real apps' redirects, renders and error pages, as Express makes them.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, waitFor, sleep, once, REPO_DIR, NODE_DIR, collectWarnings } = require('./helpers');

const SECRET = 'realapp-test-secret';
const DEMO_DIR = path.join(REPO_DIR, 'examples/express-demo');
const { createApp: createDemoApp } = require(path.join(DEMO_DIR, 'app.js'));
const demoFlash = { middleware: () => flash(), locals: () => flash.locals() };

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// within(ms, promise, what): the promise's outcome, or a rejection if it has none by then
// (a hang detector with a generous deadline, not a timing assertion).
function within(ms, promise, what) {
  let timer;
  const deadline = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

// settle(promise): the error it rejects with, or null when it resolves.
function settle(promise) {
  return promise.then(() => null, (err) => err);
}

// The example shop's pages, read back.
function demoPage(body) {
  const user = /id="user">Logged in as <b>([^<]*)<\/b>/.exec(body);
  const flashes = [...body.matchAll(/<p class="flash ([^"]+)">([^<]*)<\/p>/g)].map((m) => `${m[1]}: ${m[2]}`);
  const cart = [...body.matchAll(/<li>(\d+ [^<]*)<\/li>/g)].map((m) => m[1]);
  return { user: user ? user[1] : null, flashes, cart, loginForm: body.includes('id="username"') };
}

function sidOf(br, name = 'sid') {
  const raw = br.cookies.get(name);
  if (!raw) return null;
  // s%3A<sid>.<signature>
  return decodeURIComponent(raw).slice(2).split('.')[0];
}

async function ttlOf(store, sid) {
  const id = store.prefix + sid;
  for (let cursor = 0; ;) {
    const page = await store.client.list(store.namespace, cursor, 1000);
    const e = page.entries.find((x) => x.id === id);
    if (e) return e.ttlMs;
    cursor = page.cursor;
    if (cursor === 0) return null;
  }
}

// A small app in the shape of real ones: a passport-style login (regenerate, then save,
// then redirect), JSON views of the session, flashes, and routes that cope with
// express-session passing requests through without a session while sessd is down.
function makeApp(store, sessionOpts = {}, setup = null, flashOpts = {}) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 }, ...sessionOpts }));
  app.use(flash(flashOpts));
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);
  const needSession = (req, res, next) => (req.session ? next() : res.status(503).json({ error: 'sessions unavailable' }));
  if (setup) setup(app, wrap);
  app.post('/login', needSession, (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      req.session.save((err2) => (err2 ? next(err2) : res.redirect(302, '/me')));
      return undefined;
    });
  });
  app.get('/me', (req, res) => res.json({ user: req.session?.user ?? null, sid: req.sessionID ?? null, n: req.session?.n ?? 0 }));
  app.post('/n', needSession, (req, res) => {
    req.session.n = (req.session.n || 0) + 1;
    res.json({ n: req.session.n });
  });
  app.post('/flash', needSession, wrap(async (req, res) => res.json({ n: await req.flash(req.body.type || 'info', req.body.msg) })));
  app.get('/page', flash.locals(), (req, res) => res.json(res.locals.flash));
  app.post('/logout', needSession, (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
  // express-session saves at the end of the response, once the body is written: a failed
  // save reaches the error handler after the headers went out.
  app.locals.lateErrors = [];
  app.use((err, req, res, next) => {
    if (res.headersSent) app.locals.lateErrors.push(err);
    else res.status(500).json({ error: err.message, code: err.code ?? null });
  });
  return app;
}

async function serve(t, app, store) {
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  return base;
}

const json = (r) => JSON.parse(r.body);

test('sessd killed and restarted (--data-dir): the shop recovers by itself, the user stays logged in', async (t) => {
  const d = new Daemon();
  const dataDir = path.join(d.dir, 'data');
  d.extraArgs = ['--data-dir', dataDir, '--fsync', 'always'];
  await d.start();
  t.after(() => d.cleanup());
  // restartWaitMs: the store says 'disconnect' 300 ms after the kill (sessd stays down until
  // the test has seen the shop without it).
  const store = new SessdStore({ url: d.unixUrl, namespace: 'realapp-restart', reconnectMinMs: 20, reconnectMaxMs: 200, restartWaitMs: 300 });
  const app = createDemoApp({ store, flash: demoFlash, secret: SECRET, served: 'test' });
  const base = await serve(t, app, store);
  await once(store, 'connect');

  const br = new Browser(base);
  assert.equal((await br.post('/login', { username: 'Ann' })).status, 303);
  assert.deepEqual(demoPage((await br.get('/')).body).flashes, ['info: Welcome back, Ann']);
  assert.equal((await br.post('/cart', { item: '2 lemons' })).status, 303);
  // The "Added" flash is pending when sessd dies.

  const down = once(store, 'disconnect');
  await d.stop('SIGKILL');
  await down;
  // While sessd is down, express-session passes requests through without a session: the
  // shop answers its "come back shortly" page at once (not its logged-out page: the visitor's
  // session waits in sessd, apps60-demo-outage.test.js), and a login is refused, not hung.
  const during = await within(10000, br.get('/'), 'GET / while sessd is down');
  assert.equal(during.status, 503, during.body);
  assert.equal(demoPage(during.body).loginForm, false);
  const login = await within(10000, br.post('/login', { username: 'Bob' }), 'POST /login while sessd is down');
  assert.equal(login.status, 503, login.body);

  // Restarted on the same socket: nobody tells the app; it reconnects by itself.
  await d.start();
  const back = await waitFor(async () => {
    const r = await br.get('/');
    return r.status === 200 && demoPage(r.body).user ? demoPage(r.body) : null;
  }, 'the shop to see the user again after the restart');
  assert.equal(back.user, 'Ann');
  assert.deepEqual(back.cart, ['2 lemons']);
  assert.deepEqual(back.flashes, ['info: Added 2 lemons'], 'the pending flash survived the crash');
  assert.deepEqual(demoPage((await br.get('/')).body).flashes, [], 'and is shown once');
  assert.equal(store.connected, true);
});

test('sessd not running when the app starts, started later', async (t) => {
  const d = new Daemon();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: `unix:${d.sock}`, namespace: 'realapp-late', reconnectMinMs: 20, reconnectMaxMs: 200 });
  const base = await serve(t, makeApp(store), store);
  await once(store, 'disconnect');
  const br = new Browser(base);
  const r = await within(10000, br.get('/me'), 'GET /me with no daemon');
  assert.deepEqual(json(r), { user: null, sid: null, n: 0 });
  assert.equal((await within(10000, br.post('/login', { user: 'cy' }), 'login with no daemon')).status, 503);
  await d.start();
  await waitFor(async () => (await br.post('/login', { user: 'cy' })).status === 302, 'a login to work once sessd runs');
  assert.equal(json(await br.get('/me')).user, 'cy');
});

test('a stuck sessd (SIGSTOP): requests fail with ETIMEDOUT within timeoutMs, the app answers, all recovers', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  // A long connectTimeoutMs: a request must not wait for it, only for its own timeoutMs.
  const store = new SessdStore({ url: d.unixUrl, namespace: 'realapp-stop', timeoutMs: 300, connectTimeoutMs: 30000, reconnectMinMs: 20, reconnectMaxMs: 200 });
  const base = await serve(t, makeApp(store), store);
  await once(store, 'connect');
  const br = new Browser(base);
  await br.post('/login', { user: 'dee' });
  const { sid } = json(await br.get('/me'));

  await d.pause();
  try {
    // Each round: the pool's connections time out, are replaced by fresh ones whose HELLO
    // goes unanswered, and requests queued behind that HELLO must time out too.
    const codes = [];
    for (let i = 0; i < 6; i++) {
      const err = await within(8000, settle(store.get(sid)), `store.get #${i} on a stopped daemon`);
      assert.ok(err, 'a stopped daemon cannot answer');
      codes.push(err.code);
      const page = await within(8000, br.get('/me'), `GET /me #${i} on a stopped daemon`);
      assert.ok(page.status === 200 || page.status === 500, page.body);
      await sleep(60);
    }
    for (const code of codes) assert.ok(code === 'ETIMEDOUT' || code === 'ESESSD_DISCONNECTED', codes.join());
    assert.equal(codes[0], 'ETIMEDOUT');
  } finally {
    process.kill(d.proc.pid, 'SIGCONT');
  }
  await waitFor(async () => json(await br.get('/me')).user === 'dee', 'the user to be logged in again after SIGCONT');
  assert.equal((await store.get(sid)).user, 'dee');
});

test('passport-style failureFlash (push not awaited, then redirect): the redirect waits until the flash is stored', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'realapp-order', timeoutMs: 10000 });
  // The route stops the daemon just before it pushes, as a slow or busy daemon would leave
  // the push unanswered: without the hold, express-session sends the redirect's headers at
  // once, and a browser follows them before the push is stored, on whatever process and
  // connection serves the next page.
  let resumedAt = 0;
  let resumed = null;
  const stallDaemon = async () => {
    resumedAt = 0;
    await d.pause();
    resumed = sleep(300).then(() => {
      resumedAt = Date.now();
      process.kill(d.proc.pid, 'SIGCONT');
    });
  };
  const app = makeApp(store, {}, (a) => {
    a.post('/fail', (req, res, next) => {
      stallDaemon().then(() => {
        req.flash('error', 'Invalid password');
        res.redirect(302, '/page');
      }, next);
    });
    a.post('/fail-twice', (req, res, next) => {
      stallDaemon().then(() => {
        req.flash('error', 'one');
        req.flash('error', 'two');
        res.redirect(302, '/page');
      }, next);
    });
  });
  const base = await serve(t, app, store);
  await once(store, 'connect');
  const br = new Browser(base);
  assert.equal((await br.post('/login', { user: 'eve' })).status, 302);

  for (const route of ['/fail', '/fail-twice']) {
    const r = await within(8000, br.post(route, {}), `POST ${route}`);
    await resumed;
    assert.equal(r.status, 302);
    assert.ok(r.headersAt >= resumedAt, `${route}: the redirect's headers arrived ${resumedAt - r.headersAt} ms before the flash could be stored`);
    // Another connection (as another app process would have) sees the messages at once.
    const other = new SessdStore({ url: d.unixUrl, namespace: 'realapp-order', poolSize: 1 });
    try {
      const want = route === '/fail' ? ['Invalid password'] : ['one', 'two'];
      assert.deepEqual(await other.client.flashPop('realapp-order', other.prefix + sidOf(br), 'error'), want);
    } finally {
      other.close();
    }
  }
  // Requests that push nothing are not held, and a page shows no leftover flash.
  assert.deepEqual(json(await br.get('/page')), {});
});

test('a session over max_data: a clear error for that request, the connection and the others carry on', async (t) => {
  const d = await new Daemon({ extraArgs: ['--max-frame', '8192'] }).start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'realapp-big', poolSize: 1 });
  const app = makeApp(store, {}, (a, wrap) => {
    // An explicit save before answering (as passport's login does) gets the error.
    a.post('/big', (req, res, next) => {
      req.session.blob = 'x'.repeat(Number(req.body.bytes));
      req.session.save((err) => (err ? next(err) : res.json({ ok: true })));
    });
    // express-session's own save at the end of the response reports it to the error
    // handler.
    a.post('/big-auto', (req, res) => {
      req.session.blob = 'x'.repeat(Number(req.body.bytes));
      res.json({ ok: true });
    });
    a.post('/bigflash', wrap(async (req, res) => res.json({ n: await req.flash('info', 'y'.repeat(Number(req.body.bytes))) })));
  });
  const base = await serve(t, app, store);
  const hello = await store.client.ready();
  const maxData = Number(hello.max_data);
  assert.equal(maxData, 8192 - 16);
  const conn = store.client.slots[0].conn;
  const br = new Browser(base);
  await br.post('/login', { user: 'eve' });
  const others = [];
  for (let i = 0; i < 5; i++) others.push(new Browser(base));
  await Promise.all(others.map((o, i) => o.post('/login', { user: `o${i}` })));

  for (const bytes of [maxData + 1, 4 * maxData, 900000]) {
    const all = await within(10000, Promise.all([br.post('/big', { bytes }), ...others.map((o) => o.get('/me'))]), 'a big session save');
    const big = all[0];
    assert.equal(big.status, 500, big.body);
    assert.match(json(big).code, /^ESESSD_(TOO_LARGE|LIMIT)$/);
    assert.match(json(big).error, /max_frame|limit/i);
    all.slice(1).forEach((r, i) => assert.equal(json(r).user, `o${i}`));
  }
  await within(10000, br.post('/big-auto', { bytes: maxData + 1 }), 'a big session saved by express-session');
  await waitFor(() => app.locals.lateErrors.length === 1, 'the failed save to reach the error handler');
  assert.match(app.locals.lateErrors[0].code, /^ESESSD_(TOO_LARGE|LIMIT)$/);
  // The failed save changed nothing, and nobody's connection was dropped.
  assert.equal(json(await br.get('/me')).user, 'eve');
  assert.equal(store.client.slots[0].conn, conn);

  // The same from a store whose connection has not had its HELLO answered yet (an app
  // that just started, or just reconnected): the big save must not be sent blind and cost
  // the other requests their connection.
  const fresh = new SessdStore({ url: d.unixUrl, namespace: 'realapp-big', poolSize: 1 });
  t.after(() => fresh.close());
  const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() };
  const early = await within(10000, Promise.all([
    settle(fresh.set('early-small', { cookie, n: 1 })),
    settle(fresh.set('early-big', { cookie, blob: 'x'.repeat(3 * maxData) })),
    fresh.get('early-small').then((v) => v.n, (err) => err),
  ]), 'requests sent before the HELLO reply');
  assert.equal(early[0], null);
  assert.equal(early[1] && early[1].code, 'ESESSD_TOO_LARGE', String(early[1]));
  assert.equal(early[2], 1);

  // A flash over the per-session limit (max_frame / 2) is refused the same way.
  const bf = await br.post('/bigflash', { bytes: 5000 });
  assert.equal(bf.status, 500);
  assert.equal(json(bf).code, 'ESESSD_LIMIT');
  assert.deepEqual(json(await br.get('/page')), {});
  assert.equal(store.client.slots[0].conn, conn);
});

test('a flash pushed without awaiting (connect-flash and passport style) never crashes the app', async (t) => {
  const d = await new Daemon({ extraArgs: ['--max-frame', '8192'] }).start();
  t.after(() => d.cleanup());
  const unhandled = [];
  const onUnhandled = (err) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const store = new SessdStore({ url: d.unixUrl, namespace: 'realapp-ff' });
  const reported = [];
  const onError = (err, req) => {
    reported.push({ code: err.code, path: req.path });
    if (reported.length === 1) throw new Error('a logging hook that fails');
  };
  const warnings = collectWarnings(t);
  const base = await serve(t, makeApp(store, {}, (app) => {
    // passport's failureFlash / successFlash: req.flash(type, msg) and move on.
    app.post('/ff', (req, res) => {
      req.flash('error', req.body.msg);
      res.redirect(303, '/page');
    });
  }, { onError }), store);
  const br = new Browser(base);
  await br.post('/login', { user: 'fay' });
  assert.equal((await br.post('/ff', { msg: 'Invalid password' })).status, 303);
  assert.deepEqual(json(await br.get('/page')), { error: ['Invalid password'] });
  // Flashes nobody reads pile up to the session's limit; the pushes past it fail, and the
  // app (which never saw the promise) must keep running.
  for (let i = 0; i < 6; i++) assert.equal((await br.post('/ff', { msg: 'z'.repeat(900) })).status, 303);
  // The page's pop goes over the session's connection after the pushes, so their failures
  // have come back by the time it is answered; a turn later any unhandled one is reported.
  const shown = json(await br.get('/page')).error;
  assert.ok(shown.length >= 1 && shown.length < 6, String(shown.length));
  await sleep(50);
  assert.deepEqual(unhandled.map((e) => e.code || e.message), []);
  // Each push that failed reached flash({ onError }) with its request, though nobody awaited
  // it; the hook's own exception became a warning, not a crash.
  assert.equal(reported.length, 6 - shown.length);
  for (const r of reported) assert.deepEqual(r, { code: 'ESESSD_LIMIT', path: '/ff' });
  assert.ok(warnings.some((m) => m.includes('onError threw')), JSON.stringify(warnings));
  assert.throws(() => flash({ onError: 'log' }), TypeError);
  // An awaited push still sees the failure.
  await assert.rejects(store.client.flashPush(null, 'x', 't', 'q'.repeat(5000), 1000), (err) => err.code === 'ESESSD_LIMIT');
});

test('express-session options: rolling, browser-session cookies, resave, saveUninitialized', async (t) => {
  const ns = 'realapp-opts';
  const mk = async (sessionOpts, storeOpts = {}) => {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: ns, ...storeOpts });
    const calls = { set: 0, touch: 0 };
    for (const m of ['set', 'touch']) {
      const orig = store[m].bind(store);
      store[m] = (...args) => {
        calls[m]++;
        return orig(...args);
      };
    }
    const base = await serve(t, makeApp(store, sessionOpts), store);
    return { store, calls, br: new Browser(base) };
  };
  const setCookie = (r) => (r.headers['set-cookie'] || []).find((c) => c.startsWith('sid='));

  // rolling + resave false: every request touches the session and renews its expiry.
  {
    const { store, calls, br } = await mk({ rolling: true, cookie: { maxAge: 600000 } });
    await br.post('/login', { user: 'gil' });
    const sid = sidOf(br);
    // As if most of the session's life had passed.
    assert.equal(await store.client.touch(ns, sid, 5000), true);
    const touchesBefore = calls.touch;
    const setsBefore = calls.set;
    const r = await br.get('/me');
    assert.ok(setCookie(r), 'rolling sends the cookie on every response');
    assert.equal(json(r).user, 'gil');
    assert.equal(calls.touch, touchesBefore + 1);
    assert.equal(calls.set, setsBefore, 'an unmodified session is touched, not saved');
    assert.ok((await ttlOf(store, sid)) > 500000, 'touch renewed the expiry');
  }
  // A cookie without maxAge (a browser-session cookie): the store's ttl decides, and touch
  // keeps renewing it.
  {
    const { store, calls, br } = await mk({ cookie: {} }, { ttl: 600 });
    const r = await br.post('/login', { user: 'hal' });
    assert.doesNotMatch(setCookie(r), /Expires=/i);
    const sid = sidOf(br);
    const ttl = await ttlOf(store, sid);
    assert.ok(ttl > 500000 && ttl <= 600000, String(ttl));
    assert.equal(await store.client.touch(ns, sid, 5000), true);
    const before = calls.touch;
    assert.equal(json(await br.get('/me')).user, 'hal');
    assert.equal(calls.touch, before + 1, 'resave: false touches on each request');
    assert.ok((await ttlOf(store, sid)) > 500000);
  }
  // resave: true saves every request, and a flash pushed meanwhile is not overwritten.
  {
    const { calls, br } = await mk({ resave: true });
    await br.post('/login', { user: 'ida' });
    const before = calls.set;
    await br.get('/me');
    await br.get('/me');
    assert.equal(calls.set, before + 2);
    await br.post('/flash', { msg: 'kept' });
    await br.get('/me');
    assert.deepEqual(json(await br.get('/page')), { info: ['kept'] });
  }
  // saveUninitialized: true stores a first visit; false does not (and sends no cookie).
  {
    const { store, br } = await mk({ saveUninitialized: true });
    const r = await br.get('/me');
    assert.ok(setCookie(r));
    assert.ok(await store.get(json(r).sid));
    const lazy = await mk({ saveUninitialized: false });
    const r2 = await lazy.br.get('/me');
    assert.equal(setCookie(r2), undefined);
    assert.equal(await lazy.store.get(json(r2).sid), null);
  }
});

test('regenerate, destroy, reload, save(cb) and a passport-style login', async (t) => {
  const store = new SessdStore({ url: daemon.tcpUrl, namespace: 'realapp-methods' });
  const base = await serve(t, makeApp(store, {}, (app) => {
    app.post('/reload', (req, res, next) => {
      req.session.reload((err) => (err ? next(err) : res.json({ user: req.session.user, n: req.session.n ?? 0 })));
    });
    app.post('/regen', (req, res, next) => {
      const old = req.sessionID;
      req.session.regenerate((err) => (err ? next(err) : res.json({ old, now: req.sessionID })));
    });
  }), store);
  const br = new Browser(base);
  // Passport-style: regenerate (no fixation), set the user, save, then redirect.
  const pre = await br.post('/n');
  const preSid = sidOf(br);
  assert.equal(json(pre).n, 1);
  const login = await br.post('/login', { user: 'jo' });
  assert.equal(login.status, 302);
  const sid = sidOf(br);
  assert.notEqual(sid, preSid);
  assert.equal(await store.get(preSid), null, 'the pre-login session is gone');
  assert.equal((await store.get(sid)).user, 'jo', 'saved before the redirect');
  const attacker = new Browser(base);
  attacker.cookies.set('sid', encodeURIComponent(`s:${preSid}.x`));
  assert.equal(json(await attacker.get('/me')).user, null);

  // reload sees a change made elsewhere (another process, an admin tool).
  const s = await store.get(sid);
  s.n = 41;
  await store.set(sid, s);
  assert.deepEqual(json(await br.post('/reload')), { user: 'jo', n: 41 });
  // reload of a session destroyed elsewhere is an error, not a silent empty session.
  const other = new Browser(base);
  await other.post('/login', { user: 'kim' });
  await store.destroy(sidOf(other));
  assert.equal((await other.post('/reload')).status, 500);

  const regen = json(await br.post('/regen'));
  assert.equal(regen.old, sid);
  assert.equal(await store.get(sid), null);
  assert.equal(json(await br.post('/logout')).ok, true);
  assert.equal(await store.get(regen.now), null);
});

test('store.ids/all/length/clear with and without a prefix, on sessions an app made', async (t) => {
  const ns = 'realapp-admin';
  const plain = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  const pa = new SessdStore({ url: daemon.unixUrl, namespace: ns, prefix: 'a:' });
  const pb = new SessdStore({ url: daemon.unixUrl, namespace: ns, prefix: 'b:' });
  await plain.clear();
  const baseA = await serve(t, makeApp(pa), pa);
  const baseB = await serve(t, makeApp(pb), pb);
  t.after(() => plain.close());
  const users = [];
  for (const [base, name] of [[baseA, 'a1'], [baseA, 'a2'], [baseB, 'b1']]) {
    const br = new Browser(base);
    await br.post('/login', { user: name });
    users.push({ br, name, sid: sidOf(br) });
  }
  // A flash-only session: a first visit that only pushed a flash, with markSession off.
  const flashOnly = `fo-${Date.now()}`;
  await pa.client.flashPush(ns, `a:${flashOnly}`, 'info', 'hi', 60000);

  assert.deepEqual((await pa.ids()).sort(), [users[0].sid, users[1].sid, flashOnly].sort());
  assert.deepEqual(await pb.ids(), [users[2].sid]);
  assert.equal(await pa.length(), 3, 'length counts the flash-only session');
  assert.deepEqual((await pa.all()).map((x) => `${x.id}:${x.user}`).sort(), [`${users[0].sid}:a1`, `${users[1].sid}:a2`].sort());
  assert.equal(await plain.length(), 4);
  assert.deepEqual((await plain.ids()).sort(), [...users.slice(0, 2).map((u) => `a:${u.sid}`), `a:${flashOnly}`, `b:${users[2].sid}`].sort());
  await pa.clear();
  assert.equal(await pa.length(), 0);
  assert.equal(json(await users[0].br.get('/me')).user, null);
  assert.equal(json(await users[2].br.get('/me')).user, 'b1');
  await plain.clear();
  assert.equal(await pb.length(), 0);
});

test('connect-flash parity: after a redirect once, and a concurrent whole-session save keeps the flash', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'realapp-flash' });
  const gates = new Map();
  const base = await serve(t, makeApp(store, {}, (app, wrap) => {
    // Loads the session, waits until the test opens its gate, then modifies and saves it.
    app.post('/slow', wrap(async (req, res) => {
      await new Promise((resolve) => gates.set(req.body.gate, resolve));
      req.session.n = (req.session.n || 0) + 1;
      res.json({ n: req.session.n });
    }));
    app.post('/add', wrap(async (req, res) => {
      await req.flash('info', 'Added %d %s', 2, 'lemons');
      await req.flash('info', ['and', 'more']);
      res.redirect(303, '/page');
    }));
  }), store);
  const br = new Browser(base);
  await br.post('/login', { user: 'lee' });

  const r = await br.post('/add');
  assert.equal(r.status, 303);
  assert.deepEqual(json(await br.get(r.location)), { info: ['Added 2 lemons', 'and', 'more'] });
  assert.deepEqual(json(await br.get(r.location)), {}, 'seen exactly once');

  // Two concurrent requests on one session: the slow one saves the whole session it loaded
  // before the other pushed a flash (and marked the session). The flash survives, once.
  for (const round of ['r1', 'r2']) {
    const slow = br.post('/slow', { gate: round });
    await waitFor(() => gates.has(round), 'the slow request to load the session');
    assert.equal(json(await br.post('/flash', { msg: `hello ${round}` })).n, 1);
    gates.get(round)();
    await slow;
    assert.deepEqual(json(await br.get('/page')), { info: [`hello ${round}`] });
    assert.deepEqual(json(await br.get('/page')), {});
  }
  assert.equal(json(await br.get('/me')).n, 2, 'both slow saves landed');
});

test('passport successFlash: a flash pushed just before regenerate is shown after the login', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'realapp-regen-flash' });
  const base = await serve(t, makeApp(store, {}, (app) => {
    // What passport's authenticate does on success: req.flash (not awaited), then
    // req.logIn, which regenerates the session, saves it and redirects.
    app.post('/passport-login', (req, res, next) => {
      req.flash('success', `Hi ${req.body.user}`);
      req.session.regenerate((err) => {
        if (err) return next(err);
        req.session.user = req.body.user;
        req.session.save((err2) => (err2 ? next(err2) : res.redirect(302, '/page')));
        return undefined;
      });
    });
  }), store);
  for (const visitor of ['first visit', 'logged in before']) {
    const br = new Browser(base);
    if (visitor === 'logged in before') await br.post('/login', { user: 'old' });
    const before = sidOf(br);
    const r = await br.post('/passport-login', { user: 'bob' });
    assert.equal(r.status, 302);
    assert.notEqual(sidOf(br), before);
    assert.deepEqual(json(await br.get(r.location)), { success: ['Hi bob'] }, visitor);
    assert.deepEqual(json(await br.get('/page')), {}, `${visitor}: shown once`);
    assert.equal(json(await br.get('/me')).user, 'bob');
    if (before) assert.deepEqual(await store.client.flashPop(store.namespace, before, null), {}, 'nothing left under the old id');
  }
});

test('a flash pushed by a slow request does not save its stale copy over a concurrent change', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'realapp-mark' });
  const gates = new Map();
  const base = await serve(t, makeApp(store, {}, (app, wrap) => {
    // Loads the session, waits for the test's gate, then only pushes a flash.
    app.post('/slow-flash', wrap(async (req, res) => {
      await new Promise((resolve) => gates.set('g', resolve));
      await req.flash('info', 'from the slow request');
      res.json({ ok: true });
    }));
  }), store);
  const br = new Browser(base);
  await br.post('/login', { user: 'ann' });
  const slow = br.post('/slow-flash');
  await waitFor(() => gates.has('g'), 'the slow request to load the session');
  assert.equal(json(await br.post('/n')).n, 1);
  gates.get('g')();
  assert.equal((await slow).status, 200);
  assert.equal(json(await br.get('/me')).n, 1, 'the concurrent change survives');
  assert.deepEqual(json(await br.get('/page')), { info: ['from the slow request'] });
});

test('several app processes share one daemon and namespace', async (t) => {
  const ns = 'realapp-procs';
  // Each child runs the example shop on this package's lib/ (not the example's installed copy).
  const child = `
    const { SessdStore, flash } = require(${JSON.stringify(NODE_DIR)});
    const { createApp } = require(${JSON.stringify(path.join(DEMO_DIR, 'app.js'))});
    const store = new SessdStore({ url: process.env.SESSD_URL, namespace: ${JSON.stringify(ns)} });
    const app = createApp({ store, secret: ${JSON.stringify(SECRET)}, served: 'pid ' + process.pid,
      flash: { middleware: () => flash(), locals: () => flash.locals() } });
    const server = app.listen(0, '127.0.0.1', () => console.log('listening on http://127.0.0.1:' + server.address().port));
    process.on('SIGTERM', () => { server.close(); store.close(); setTimeout(() => process.exit(0), 100).unref(); });
  `;
  const bases = [];
  for (const url of [daemon.unixUrl, daemon.tcpUrl, daemon.unixUrl]) {
    const proc = spawn(process.execPath, ['-e', child], { env: { ...process.env, SESSD_URL: url }, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', resolve);
      proc.kill('SIGTERM');
      return undefined;
    }));
    let out = '';
    proc.stderr.on('data', (x) => {
      out += x;
    });
    bases.push(await new Promise((resolve, reject) => {
      proc.stdout.on('data', (x) => {
        out += x;
        const m = /listening on (\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      proc.once('exit', (code) => reject(new Error(`app process exited (${code}): ${out}`)));
    }));
  }
  const admin = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  t.after(() => admin.close());
  await admin.clear();

  // 12 users, each moving between the three processes; every flash is shown exactly once,
  // to its own user, whichever process serves the page.
  const users = Array.from({ length: 12 }, (_, i) => ({ name: `u${i}`, br: new Browser(bases[i % 3]) }));
  await Promise.all(users.map(async (u, i) => {
    await u.br.post('/login', { username: u.name }, bases[i % 3]);
    let page = demoPage((await u.br.get('/', bases[(i + 1) % 3])).body);
    assert.equal(page.user, u.name);
    assert.deepEqual(page.flashes, [`info: Welcome back, ${u.name}`]);
    for (let k = 1; k <= 3; k++) {
      await u.br.post('/cart', { item: `${k} item${i}` }, bases[(i + k) % 3]);
      page = demoPage((await u.br.get('/', bases[(i + k + 1) % 3])).body);
      assert.equal(page.user, u.name);
      assert.deepEqual(page.flashes, [`info: Added ${k} item${i}`]);
    }
    assert.deepEqual(page.cart, [`6 item${i}`]);
    page = demoPage((await u.br.get('/', bases[(i + 2) % 3])).body);
    assert.deepEqual(page.flashes, []);
  }));
  assert.equal(await admin.length(), 12);
  const all = await admin.all();
  assert.deepEqual(all.map((s) => s.user).sort(), users.map((u) => u.name).sort());
  // Logging out on one process logs out on all.
  await users[0].br.post('/logout', {}, bases[2]);
  for (const b of bases) assert.equal(demoPage((await users[0].br.get('/', b)).body).user, null);
  assert.equal(await admin.length(), 12, 'logout leaves a fresh session carrying the goodbye flash');
});
