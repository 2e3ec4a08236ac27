'use strict';
// connect-redis's options as a migrating app sets them (often read from the environment, so
// strings): each is taken as connect-redis takes it, or refused at construction with an
// error that names it. Found by trying each on a store: a scanCount string reached sessd as
// a str, whose BAD_REQUEST closed the connection under the requests queued behind it; a
// non-string prefix was coerced ("[object Object]sid"), one too long failed every request;
// a serializer without parse failed every page; "false" disabled touches.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client, SessdStore } = require('..');
const { Daemon, collectWarnings } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

const cookie = () => ({ originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' });

test('store options of connect-redis that would misbehave are refused at construction, naming the option', () => {
  const cases = [
    [{ scanCount: 0 }, RangeError, /scanCount/],
    [{ scanCount: -1 }, RangeError, /scanCount/],
    [{ scanCount: 1.5 }, RangeError, /scanCount/],
    [{ scanCount: 'many' }, RangeError, /scanCount/],
    [{ scanCount: NaN }, RangeError, /scanCount/],
    [{ scanCount: {} }, RangeError, /scanCount/],
    [{ prefix: 5 }, TypeError, /prefix/],
    [{ prefix: { app: 'shop' } }, TypeError, /prefix/],
    [{ prefix: 'p'.repeat(128) }, RangeError, /prefix/],
    [{ serializer: { stringify: JSON.stringify } }, TypeError, /serializer/],
    [{ serializer: { parse: JSON.parse } }, TypeError, /serializer/],
    [{ serializer: 'json' }, TypeError, /serializer/],
    [{ disableTouch: 'false' }, TypeError, /disableTouch/],
    [{ disableTouch: 1 }, TypeError, /disableTouch/],
    [{ disableTTL: 'false' }, TypeError, /disableTTL/],
    // The README's 1..64 bytes: sessd refused the first request of each outside them.
    [{ namespace: '' }, TypeError, /namespace/],
    [{ namespace: 'n'.repeat(65) }, TypeError, /namespace/],
    [{ namespace: 'é'.repeat(33) }, TypeError, /namespace/],
    [{ namespace: 7 }, TypeError, /namespace/],
  ];
  for (const [opts, Type, message] of cases) {
    assert.throws(() => new SessdStore({ url: 'unix:/nonexistent', ...opts }), (err) => {
      assert.ok(err instanceof Type, `${JSON.stringify(opts)}: ${err.stack}`);
      assert.match(err.message, message);
      return true;
    });
  }
  // What connect-redis takes: numbers, booleans, a string prefix, a serializer of both.
  const ok = [
    { scanCount: 100 }, { scanCount: '100' }, { prefix: 'sess:' }, { prefix: '' },
    { disableTouch: true }, { disableTouch: false }, { disableTTL: true }, { disableTTL: false }, { disableTouch: null },
    { namespace: 'n' }, { namespace: 'n'.repeat(64) }, { namespace: null },
    { serializer: { stringify: JSON.stringify, parse: JSON.parse } },
  ];
  for (const opts of ok) new SessdStore({ url: 'unix:/nonexistent', poolSize: 1, ...opts }).client.terminate();
});

test('scanCount read from the environment (a string) pages the scan', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'migrate-scan', scanCount: '2' });
  t.after(() => store.client.terminate());
  for (let i = 0; i < 5; i++) await store.set(`s${i}`, { cookie: cookie(), i });
  assert.deepEqual((await store.ids()).sort(), ['s0', 's1', 's2', 's3', 's4']);
  assert.equal((await store.all()).length, 5);
});

test('client.list with a limit or cursor that is no whole number is refused locally, and costs no request behind it', async (t) => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.terminate());
  await c.set('migrate-list', 'a', 'x', 60000);
  for (const [cursor, limit] of [[0, '100'], ['0', 100], [0, 1.5], [0, -1]]) {
    // The get goes out right behind the list on the one connection.
    const [listed, got] = await Promise.allSettled([c.list('migrate-list', cursor, limit), c.get('migrate-list', 'a')]);
    assert.equal(got.status, 'fulfilled', got.reason && got.reason.stack);
    assert.equal(String(got.value), 'x');
    assert.equal(listed.status, 'rejected', `${cursor}, ${limit}`);
    assert.ok(listed.reason instanceof RangeError || listed.reason instanceof TypeError, listed.reason.stack);
  }
});

// connect-flash's one option, unsafe: true, lets its req.flash replace one an earlier
// middleware set. connect-sessd's flash() ignored it (and any misspelt option) without a word,
// keeping the other req.flash.
test('flash({ unsafe: true }) replaces an earlier req.flash, as connect-flash; an unknown flash option warns', async (t) => {
  const express = require('express');
  const session = require('express-session');
  const { flash } = require('..');
  const { Browser, listen, closeServer, waitFor } = require('./helpers');
  const warnings = collectWarnings(t, 'CONNECT_SESSD_UNKNOWN_OPTION', 'CONNECT_SESSD_FLASH_TAKEN');
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'migrate-flash' });
  t.after(() => store.client.terminate());
  const app = express();
  app.use(session({ store, secret: 'migrate-flash', resave: false, saveUninitialized: false }));
  app.use((req, res, next) => {
    req.flash = () => 'theirs';
    next();
  });
  app.use(flash({ unsafe: true }));
  app.get('/push', async (req, res) => res.json({ n: await req.flash('info', 'hi') }));
  app.get('/pop', async (req, res) => res.json(await req.flash('info')));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.deepEqual(JSON.parse((await br.get('/push')).body), { n: 1 });
  assert.deepEqual(JSON.parse((await br.get('/pop')).body), ['hi']);

  assert.throws(() => flash({ unsafe: 'yes' }), TypeError);
  flash({ markSesion: false, onerror: () => {} });
  await waitFor(() => warnings.length > 0 || null, 'the warning');
  assert.deepEqual(warnings, ['connect-sessd flash(): unknown option(s) ignored: markSesion (did you mean markSession?), onerror (did you mean onError?)']);
});

// connect-redis 3 called a ttl function as ttl(store, sess, sessionID); connect-redis 7, and
// connect-sessd, as ttl(sess). Carried over, the old form got the session as `store` and
// undefined as `sess`, and every save failed inside it ("Cannot read properties of
// undefined"), with nothing naming the option.
test('a ttl function of connect-redis 3\'s form (store, sess, sessionID) draws a warning naming the form', async (t) => {
  const warnings = collectWarnings(t, 'CONNECT_SESSD_TTL_ARGS');
  const quiet = new SessdStore({ url: 'unix:/nonexistent', poolSize: 1, ttl: (sess) => sess.cookie.maxAge / 1000 });
  quiet.client.terminate();
  const old = new SessdStore({ url: 'unix:/nonexistent', poolSize: 1, ttl: (store, sess, sid) => (sid ? sess.cookie.maxAge / 1000 : 60) });
  old.client.terminate();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0], /ttl function takes 3 parameters: it is called as ttl\(sess\)/);
});

// flash.locals() took its options without a look: a misspelt `method` left the default (GET
// only) without a word, and `methods: 'GET'` failed with "map is not a function".
test('flash.locals() warns on an unknown option and names a methods that is not an array', async (t) => {
  const { flash } = require('..');
  const warnings = collectWarnings(t, 'CONNECT_SESSD_UNKNOWN_OPTION');
  assert.throws(() => flash.locals({ methods: 'GET' }), { name: 'TypeError', message: /flash\.locals\(\): methods must be an array of method names/ });
  assert.throws(() => flash.locals({ methods: ['GET', 7] }), { name: 'TypeError', message: /methods must be an array/ });
  flash.locals({ methods: ['get', 'HEAD'] });
  flash.locals({ method: ['GET', 'HEAD'] });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings, ['connect-sessd flash.locals(): unknown option(s) ignored: method (did you mean methods?)']);
});

// connect-flash apps often mount flash() in each router as well as on the app: connect-flash
// leaves a req.flash already set without a word. Moved over call for call, connect-sessd's
// second flash() found its own first one's req.flash and warned that an earlier middleware
// ("connect-flash?") had set it, on an app that no longer loads connect-flash.
test('flash() mounted twice (on the app and in a router) leaves its own req.flash without a warning', async (t) => {
  const express = require('express');
  const session = require('express-session');
  const { flash } = require('..');
  const { Browser, listen, closeServer } = require('./helpers');
  const warnings = collectWarnings(t, 'CONNECT_SESSD_FLASH_TAKEN');
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'migrate-flash-twice' });
  t.after(() => store.client.terminate());
  const app = express();
  app.use(session({ store, secret: 'migrate-flash', resave: false, saveUninitialized: false }));
  app.use(flash());
  const router = express.Router();
  router.use(flash());
  router.get('/push', (req, res) => {
    req.flash('info', 'hi');
    res.redirect('/pop');
  });
  router.get('/pop', async (req, res) => res.json(await req.flash()));
  app.use(router);
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  assert.equal((await br.get('/push')).status, 302);
  assert.deepEqual(JSON.parse((await br.get('/pop')).body), { info: ['hi'] });
  assert.deepEqual(JSON.parse((await br.get('/pop')).body), {});
  // A warning is emitted on a later tick: give it one.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings, []);
});
