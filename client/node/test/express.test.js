'use strict';
// Two Express servers sharing one sessd, as two processes of one app would: sessions and
// flashes cross between them, concurrent flashes are never lost or duplicated, logout and
// cookie expiry end sessions.
// test:express4: two apps' routes, redirects and flashes, as Express runs them.

const path = require('path');
const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, waitFor, once, countSaves, collectWarnings } = require('./helpers');

const SECRET = 'express-test-secret';
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

function makeApp(store, { maxAge = 3600000 } = {}) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge } }));
  app.use(flash());
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res)).catch(next);
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      if (req.body.welcome) req.flash('info', req.body.welcome);
      res.json({ ok: true });
      return undefined;
    });
  });
  app.get('/me', (req, res) => res.json({ user: (req.session && req.session.user) || null, sid: req.sessionID || null }));
  app.post('/flash', wrap(async (req, res) => res.json({ n: await req.flash(req.body.type || 'info', req.body.msg) })));
  // As connect-flash code and passport's failureFlash do: push, do not wait, redirect.
  app.post('/flash-redirect', (req, res) => {
    req.flash('info', req.body.msg);
    res.redirect('/page');
  });
  app.post('/flash-format', wrap(async (req, res) => {
    await req.flash('info', 'Added %d %s', 2, 'lemons');
    // connect-flash's most common form: one argument to the format.
    res.json({ n: await req.flash('info', 'Hello %s', 'cy') });
  }));
  app.post('/flash-many', wrap(async (req, res) => res.json({ n: await req.flash('info', ['a', 'b', 'c']) })));
  app.post('/flash-object', wrap(async (req, res) => res.json({ n: await req.flash('data', { x: [1, 2], ok: true }) })));
  app.get('/flash', wrap(async (req, res) => res.json(req.query.type ? await req.flash(req.query.type) : await req.flash())));
  app.get('/page', flash.locals(), (req, res) => res.json(res.locals.flash));
  app.post('/page', flash.locals(), (req, res) => res.json(res.locals.flash));
  app.post('/flash-code', (req, res) => req.flash('info', 'x').then(() => res.json({ code: null }), (err) => res.json({ code: err.code ?? null, message: err.message })));
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
  app.post('/save', (req, res, next) => req.session.save((err) => (err ? next(err) : res.json({ ok: true }))));
  app.post('/logout-flash', (req, res) => req.session.destroy(() => req.flash('info', 'bye').then(() => res.json({ code: null }), (err) => res.json({ code: err.code ?? null, message: err.message }))));
  return app;
}

// Two "processes": each its own store (own connections) and HTTP server.
async function twoServers(t, opts) {
  const out = [];
  for (let i = 0; i < 2; i++) {
    const store = new SessdStore({ url: i === 0 ? daemon.unixUrl : daemon.tcpUrl, namespace: 'express-test', poolSize: 2 });
    const { server, base } = await listen(makeApp(store, opts));
    t.after(async () => {
      await closeServer(server);
      store.close();
    });
    out.push({ store, base });
  }
  return out;
}

test('log in on one server, be logged in on the other; logout destroys the session', async (t) => {
  const [a, b] = await twoServers(t);
  const br = new Browser(a.base);
  assert.equal((await br.post('/login', { user: 'ann' })).status, 200);
  assert.ok(br.cookies.has('sid'), 'login sets the session cookie');
  const onB = JSON.parse((await br.get('/me', b.base)).body);
  assert.equal(onB.user, 'ann');
  const onA = JSON.parse((await br.get('/me')).body);
  assert.equal(onA.sid, onB.sid);
  assert.equal((await a.store.get(onA.sid)).user, 'ann');

  // A flash after destroying the session says so, not "is express-session mounted?".
  const late = JSON.parse((await br.post('/logout-flash', {}, b.base)).body);
  assert.equal(late.code, 'ESESSD_NO_SESSION', late.message);
  assert.match(late.message, /destroyed its session/);
  assert.equal(await a.store.get(onA.sid), null, 'the session is gone from sessd');
  await br.post('/login', { user: 'ann' });
  onA.sid = JSON.parse((await br.get('/me')).body).sid;
  assert.equal((await br.post('/logout', {}, b.base)).status, 200);

  assert.equal(await a.store.get(onA.sid), null, 'the session is gone from sessd');
  assert.equal(JSON.parse((await br.get('/me')).body).user, null);
  assert.equal(JSON.parse((await br.get('/me', b.base)).body).user, null);
});

test('a flash pushed on one server is shown once on the other, then gone', async (t) => {
  const [a, b] = await twoServers(t);
  const br = new Browser(a.base);
  await br.post('/login', { user: 'bob' });
  assert.deepEqual(JSON.parse((await br.post('/flash', { msg: 'Welcome back, bob' })).body), { n: 1 });
  assert.deepEqual(JSON.parse((await br.get('/page', b.base)).body), { info: ['Welcome back, bob'] });
  assert.deepEqual(JSON.parse((await br.get('/page', b.base)).body), {});
  assert.deepEqual(JSON.parse((await br.get('/page')).body), {});
});

test('req.flash calling forms: format, arrays, objects, pop one type, pop all', async (t) => {
  const [a, b] = await twoServers(t);
  const br = new Browser(a.base);
  await br.post('/login', { user: 'cy' });
  assert.deepEqual(JSON.parse((await br.post('/flash-format')).body), { n: 2 });
  assert.deepEqual(JSON.parse((await br.post('/flash-many')).body), { n: 5 });
  assert.deepEqual(JSON.parse((await br.post('/flash-object')).body), { n: 1 });
  assert.deepEqual(JSON.parse((await br.post('/flash', { type: 'error', msg: '' })).body), { n: 1 });
  assert.deepEqual(JSON.parse((await br.get('/flash?type=data', b.base)).body), [{ x: [1, 2], ok: true }]);
  assert.deepEqual(JSON.parse((await br.get('/flash', b.base)).body), { info: ['Added 2 lemons', 'Hello cy', 'a', 'b', 'c'], error: [''] });
  assert.deepEqual(JSON.parse((await br.get('/flash?type=info')).body), []);
  // flash.locals pops only on GET by default: a POST leaves the flashes for the next page.
  await br.post('/flash', { msg: 'kept' });
  assert.deepEqual(JSON.parse((await br.post('/page')).body), {});
  assert.deepEqual(JSON.parse((await br.get('/page')).body), { info: ['kept'] });
  // An undefined message reads, as in connect-flash (req.body.msg is undefined here).
  await br.post('/flash', { type: 'warn', msg: 'once' });
  assert.deepEqual(JSON.parse((await br.post('/flash', { type: 'warn' })).body), { n: ['once'] });
  assert.deepEqual(JSON.parse((await br.get('/flash?type=warn')).body), []);
});

test('a flash pushed before the session was ever saved sets the cookie and survives', async (t) => {
  const [a, b] = await twoServers(t);
  const br = new Browser(a.base);
  assert.equal(br.cookies.size, 0);
  await br.post('/flash', { msg: 'first visit' });
  assert.ok(br.cookies.has('sid'), 'the flash marks the session so express-session sends its cookie');
  assert.deepEqual(JSON.parse((await br.get('/page', b.base)).body), { info: ['first visit'] });
});

test('a flash before a redirect: a first visit\'s and a new login\'s create the session, a stored session\'s is added to it', async (t) => {
  const [a, b] = await twoServers(t);
  const br = new Browser(a.base);
  let r = await br.post('/flash-redirect', { msg: 'first visit' });
  assert.equal(r.status, 302);
  assert.deepEqual(JSON.parse((await br.get(r.location, b.base)).body), { info: ['first visit'] });
  // regenerate() makes a session sessd does not hold yet: the flash creates it.
  await br.post('/login', { user: 'kim', welcome: 'Welcome, kim' });
  const { sid } = JSON.parse((await br.get('/me')).body);
  // Read from sessd now: the flash is added to it while it exists.
  r = await br.post('/flash-redirect', { msg: 'Saved' }, b.base);
  assert.deepEqual(JSON.parse((await br.get(r.location)).body), { info: ['Welcome, kim', 'Saved'] });
  assert.deepEqual(JSON.parse((await br.get('/page', b.base)).body), {}, 'shown once');
  assert.equal((await a.store.get(sid)).user, 'kim');
});

test('50 concurrent flash pushes yield exactly 50 messages, each popped once', async (t) => {
  const [a, b] = await twoServers(t);
  const br = new Browser(a.base);
  await br.post('/login', { user: 'dee' });
  const pushes = [];
  for (let i = 0; i < 50; i++) pushes.push(br.post('/flash', { msg: `m${i}` }, i % 2 ? b.base : a.base));
  const lengths = (await Promise.all(pushes)).map((r) => JSON.parse(r.body).n);
  // Every push saw a distinct queue length: none overwrote another.
  assert.deepEqual([...lengths].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 1));
  // Concurrent pops on both servers: each message comes back exactly once.
  const pops = [];
  for (let i = 0; i < 10; i++) pops.push(br.get('/flash?type=info', i % 2 ? b.base : a.base));
  const got = (await Promise.all(pops)).flatMap((r) => JSON.parse(r.body));
  assert.equal(got.length, 50);
  assert.deepEqual([...got].sort(), Array.from({ length: 50 }, (_, i) => `m${i}`).sort());
  assert.deepEqual(JSON.parse((await br.get('/flash')).body), {});
});

test('a short cookie maxAge ends the session on time', async (t) => {
  const [a, b] = await twoServers(t, { maxAge: 1500 });
  const br = new Browser(a.base);
  await br.post('/login', { user: 'eve' });
  const me = JSON.parse((await br.get('/me', b.base)).body);
  assert.equal(me.user, 'eve');
  const started = Date.now();
  // Poll the store, not the app: each app request would renew the session.
  await waitFor(async () => (await a.store.get(me.sid)) === null, 'the session to expire', 20000, 100);
  assert.ok(Date.now() - started >= 500, 'the session did not end long before its maxAge');
  assert.equal(JSON.parse((await br.get('/me', b.base)).body).user, null);
});

test('while sessd is down, express-session serves requests without a session', async (t) => {
  const d = await new Daemon().start();
  t.after(() => d.cleanup());
  // Down for longer than restartWaitMs: the store says 'disconnect'.
  const store = new SessdStore({ url: d.unixUrl, reconnectMinMs: 20, reconnectMaxMs: 200, restartWaitMs: 300 });
  const { server, base } = await listen(makeApp(store));
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  await once(store, 'connect');
  const br = new Browser(base);
  await br.post('/login', { user: 'fay' });
  assert.equal(JSON.parse((await br.get('/me')).body).user, 'fay');
  const down = once(store, 'disconnect');
  await d.stop('SIGKILL');
  await down;
  const r = await br.get('/me');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { user: null, sid: null });
  // req.flash says what is wrong: an outage, not a configuration mistake.
  const f = JSON.parse((await br.post('/flash-code')).body);
  assert.equal(f.code, 'ESESSD_DISCONNECTED', f.message);
  const up = once(store, 'connect');
  await d.start();
  await up;
  await br.post('/login', { user: 'fay' });
  assert.equal(JSON.parse((await br.get('/me')).body).user, 'fay');
});

test('on a full disk pages are still served: flash.locals(), a flash pop that finds nothing and a touch do not fail them', async (t) => {
  const d = new Daemon({ fileSizeLimit: 256 * 1024 });
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data'), '--fsync', 'always'];
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'full' });
  const app = makeApp(store);
  const errors = [];
  app.use((err, req, res, next) => {
    errors.push(err.code || err.message);
    if (res.headersSent) return next(err);
    res.status(500).json({ code: err.code ?? null });
    return undefined;
  });
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  const br = new Browser(base);
  assert.equal((await br.post('/login', { user: 'gus' })).status, 200);
  await br.post('/flash', { msg: 'kept' });
  assert.equal(JSON.parse((await br.get('/page')).body).info[0], 'kept');
  await br.post('/flash', { msg: 'waits' });

  // Fill the log up to the file-size limit: the write that meets it is not acknowledged (its
  // connection closes), the ones after it are refused with IO_ERROR.
  const filler = Buffer.alloc(16 * 1024, 7);
  let refused = false;
  for (let i = 0; i < 64 && !refused; i++) {
    try {
      await store.client.set('filler', `f${i}`, filler, 60000);
    } catch (err) {
      if (err.code === 'ESESSD_IO_ERROR') refused = true;
      else if (!['ESESSD_CLOSED', 'ESESSD_DISCONNECTED', 'ECONNRESET', 'EPIPE'].includes(err.code)) throw err;
    }
  }
  assert.ok(refused, 'the file-size limit never refused a write');

  // A page view with no flash waiting: served, no error reaches the app.
  const me = await br.get('/me');
  assert.equal(me.status, 200);
  assert.equal(JSON.parse(me.body).user, 'gus');
  const flashCode = JSON.parse((await br.post('/flash-code')).body);
  assert.equal(flashCode.code, 'ESESSD_IO_ERROR', 'a push needs the disk, and says so');
  // A pop that would remove a message needs the log too: flash.locals() shows the page
  // without it, and the message stays queued (a pop of it still fails, for want of the disk).
  const page = await br.get('/page');
  assert.equal(page.status, 200);
  assert.deepEqual(JSON.parse(page.body), {});
  assert.deepEqual(errors, [], 'a refused pop in flash.locals() reached the app');
  assert.equal((await br.get('/flash?type=info')).status, 500);
  assert.deepEqual(errors, ['ESESSD_IO_ERROR']);
  errors.length = 0;
  assert.deepEqual(await store.client.flashPop('full', JSON.parse(me.body).sid, 'missing'), []);
  for (let i = 0; i < 3; i++) {
    const r = await br.get('/me');
    assert.equal(r.status, 200);
  }
  assert.deepEqual(errors, [], 'touches refused for the full disk reached the app');
  // A save of the unchanged session is a touch: it resolves, and the session is not taken for
  // gone (a later save of the request would be dropped).
  const gone = [];
  store.on('gone', (sid) => gone.push(sid));
  assert.equal((await br.post('/save')).status, 200);
  assert.deepEqual(gone, []);
  // A logout needs the disk too: it fails with its error, and the user stays logged in until
  // the disk has room again.
  const sid = JSON.parse((await br.get('/me')).body).sid;
  const logout = await br.post('/logout');
  assert.equal(logout.status, 500);
  assert.equal(JSON.parse(logout.body).code, 'ESESSD_IO_ERROR');
  assert.equal(logout.headers['set-cookie'], undefined);
  assert.equal(JSON.parse((await br.get('/me')).body).user, 'gus', 'logged out by a logout that failed');
  // So does a login's regenerate() (its DESTROY of the old session): it fails with the error
  // and sessd keeps the old session, but express-session makes the new one whatever the
  // outcome and sends its cookie with the error page (README, "full disk").
  const saves = countSaves(store, 'full');
  const login = await br.post('/login', { user: 'hal' });
  assert.equal(login.status, 500);
  // The new session is not saved after the error page: the save would fail the same way, after
  // the response, into Express's final handler (a second error and its stack in the log).
  assert.equal(saves.n, 0);
  assert.equal(JSON.parse(login.body).code, 'ESESSD_IO_ERROR');
  assert.notEqual(await store.client.get('full', sid), null, 'the old session was destroyed');
  assert.match(String(login.headers['set-cookie']), /^sid=/);
  assert.notEqual(JSON.parse((await br.get('/me')).body).sid, sid);
  assert.deepEqual(errors, ['ESESSD_IO_ERROR', 'ESESSD_IO_ERROR']);
});

test('a req.flash set by an earlier middleware (connect-flash left mounted) stays, with one warning', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'express-test' });
  const app = express();
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false }));
  app.use((req, res, next) => {
    req.flash = () => 'theirs';
    next();
  });
  app.use(flash());
  app.get('/', (req, res) => res.json({ got: req.flash('info') }));
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  const warnings = collectWarnings(t, 'CONNECT_SESSD_FLASH_TAKEN');
  const br = new Browser(base);
  for (let i = 0; i < 3; i++) assert.deepEqual(JSON.parse((await br.get('/')).body), { got: 'theirs' });
  await waitFor(() => warnings.length > 0 || null, 'the warning');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /already set/);
});
