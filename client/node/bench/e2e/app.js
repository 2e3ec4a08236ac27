'use strict';
// One shop, three stores: the app bench/e2e/e2e.js runs on connect-sessd (SessdStore and its
// flash()), on connect-redis 9 + connect-flash, and on express-session's MemoryStore +
// connect-flash. Only the store and the flash middleware differ; the routes are the same
// code, written as a connect-flash app is, with `await` on req.flash (a no-op on
// connect-flash's plain return values) as a migration to connect-sessd leaves it.
//
// Environment: E2E_STORE sessd|sessd-merge|redis|memory (sessd-merge: SessdStore with a
// mergeKey that combines two tabs' cart additions), SESSD_URL, REDIS_URL, PORT (0: any),
// E2E_SESSD_DIR (the connect-sessd to load; default this checkout's client/node),
// E2E_SESSD_OPTS (more SessdStore options as JSON, e.g. '{"poolSize":1}'),
// E2E_MIGRATE=1 (sessd stores: migrateFrom the connect-redis store at REDIS_URL, as the
// app had it, for bench/e2e/switch.js), E2E_SAVE_UNINITIALIZED=1 (express-session's
// saveUninitialized: true, as a site that keeps a session for every anonymous visitor has
// it: bench/e2e/flood-full.js), E2E_TTL_MS (the cookie's maxAge; default an hour).
// Prints "listening on http://127.0.0.1:PORT" when ready.
//
// Express and express-session are client/node's own (its devDependencies): connect-redis,
// installed in this folder without its peers (.npmrc), finds them there by Node's lookup
// up the tree, so every store runs under the same express-session.

const path = require('path');
const express = require('express');
const session = require('express-session');

const STORE = process.env.E2E_STORE || 'sessd';
const SLOW_MS = 60;

function mergeCart(base = [], mine = [], theirs = []) {
  const removed = base.filter((item) => !mine.includes(item));
  const added = mine.filter((item) => !base.includes(item) && !theirs.includes(item));
  return [...theirs.filter((item) => !removed.includes(item)), ...added];
}

// redisStore(): { store: connect-redis's RedisStore on REDIS_URL, redis: its client }.
async function redisStore() {
  const { createClient } = require('redis');
  const { RedisStore } = require('connect-redis');
  // node-redis takes no unix:// URL: a socket path goes in socket.path.
  const url = process.env.REDIS_URL || '';
  const client = createClient(url.startsWith('unix://') ? { socket: { path: url.slice('unix://'.length) } } : { url });
  client.on('error', (err) => console.error('redis:', err.message));
  await client.connect();
  return { store: new RedisStore({ client, prefix: 'e2e:' }), redis: client };
}

async function makeStore() {
  if (STORE === 'sessd' || STORE === 'sessd-merge') {
    // E2E_SESSD_DIR: another checkout's client/node (e2e.js --versus), else this one.
    const sessdDir = process.env.E2E_SESSD_DIR || path.resolve(__dirname, '../..');
    const { SessdStore, flash, genid } = require(sessdDir);
    // E2E_SESSD_OPTS: more SessdStore options, as JSON ('{"poolSize":1}'), for both sessd apps.
    const opts = { url: process.env.SESSD_URL, namespace: 'e2e', ...JSON.parse(process.env.E2E_SESSD_OPTS || '{}') };
    if (STORE === 'sessd-merge') opts.mergeKey = (key, base, mine, theirs) => (key === 'cart' ? mergeCart(base, mine, theirs) : mine);
    let redis;
    if (process.env.E2E_MIGRATE === '1') ({ store: opts.migrateFrom, redis } = await redisStore());
    const store = new SessdStore(opts);
    return { store, flashMw: flash(), pageFlash: flash.locals(), genid, redis };
  }
  const connectFlash = require('connect-flash');
  // connect-flash's pattern: every page pops every type into res.locals.
  const pageFlash = (req, res, next) => {
    res.locals.flash = req.flash();
    next();
  };
  if (STORE === 'redis') return { ...(await redisStore()), flashMw: connectFlash(), pageFlash };
  if (STORE === 'memory') return { store: new session.MemoryStore(), flashMw: connectFlash(), pageFlash };
  throw new Error(`E2E_STORE ${STORE}: sessd, sessd-merge, redis or memory`);
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(req, res, body) {
  const flashes = Object.entries(res.locals.flash || {})
    .flatMap(([type, msgs]) => msgs.map((m) => `<li class="flash ${esc(type)}">${esc(m)}</li>`))
    .join('');
  const s = req.session || {};
  res.send(`<!doctype html><title>shop</title><ul>${flashes}</ul>` +
    `<p id="user">${esc(s.user || '')}</p><p id="cart">${esc((s.cart || []).join(','))}</p>${body}`);
}

async function main() {
  const { store, flashMw, pageFlash, genid, redis } = await makeStore();
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({
    ...(genid ? { genid } : {}),
    store,
    secret: 'e2e-bench-secret-not-for-production',
    resave: false,
    saveUninitialized: process.env.E2E_SAVE_UNINITIALIZED === '1',
    cookie: { maxAge: Number(process.env.E2E_TTL_MS || 3600 * 1000) },
  }));
  app.use(flashMw);
  app.use((req, res, next) => (req.session ? next() : res.status(503).send('no session')));

  app.get('/', pageFlash, (req, res) => page(req, res, '<h1>home</h1>'));
  app.get('/product/:id', pageFlash, (req, res) => page(req, res, `<h1>product ${esc(req.params.id)}</h1>`));
  app.get('/cart', pageFlash, (req, res) => page(req, res, '<h1>cart</h1>'));

  // Login: regenerate (as passport's logIn does), then a welcome flash, then the redirect.
  // ttl_ms (a "remember me" of another length) sets the cookie's maxAge; the answer says
  // when the session ends (x-expires-ms), for the expiry check.
  app.post('/login', (req, res, next) => {
    req.session.regenerate(async (err) => {
      if (err) return next(err);
      req.session.user = req.body.username;
      req.session.cart = [];
      if (req.body.ttl_ms) req.session.cookie.maxAge = Number(req.body.ttl_ms);
      try {
        await req.flash('info', `Welcome ${req.body.username} ${req.body.token || ''}`);
      } catch (e) {
        return next(e);
      }
      req.session.save((e) => {
        if (e) return next(e);
        res.set('x-expires-ms', String(req.session.cookie.expires.getTime()));
        res.redirect(303, '/');
      });
    });
  });

  app.post('/cart', async (req, res, next) => {
    if (!req.session.user) return res.redirect(303, '/');
    req.session.cart = [...(req.session.cart || []), req.body.item];
    try {
      await req.flash('info', `Added ${req.body.item}`);
    } catch (e) {
      return next(e);
    }
    res.redirect(303, '/cart');
  });

  // A slow request that records the visitor's last activity (an analytics write, a "last
  // seen" stamp): it changes the session after SLOW_MS, so express-session saves it.
  app.get('/slow', (req, res) => {
    setTimeout(() => {
      if (req.session.user) req.session.seenAt = Date.now();
      res.send('ok');
    }, SLOW_MS);
  });

  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
  });

  // Bench-only: does the store hold this session id (read straight from the store, so that
  // asking renews nothing)? And the process's memory, after a full GC when --expose-gc.
  app.get('/__peek/:sid', (req, res, next) => {
    store.get(req.params.sid, (err, sess) => (err ? next(err) : res.json({ found: !!sess })));
  });
  app.get('/__mem', (req, res) => {
    if (global.gc) global.gc();
    res.json(process.memoryUsage());
  });

  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    console.error(`${req.method} ${req.path}: ${err.code || ''} ${err.message}`);
    res.status(err.statusCode || 500).send('error');
  });

  const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log(`listening on http://127.0.0.1:${server.address().port}`);
  });
  server.keepAliveTimeout = 60000;
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    if (redis) redis.quit().catch(() => {});
    if (store.close) store.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
