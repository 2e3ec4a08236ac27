'use strict';
// The two apps of bench/users-64, written from client/node/README.md as a user would:
// APP=fastify: Fastify 5 + @fastify/cookie + @fastify/session on a SessdStore (keepReads: true,
// "Other frameworks"), flashes through the store's Client (flashPush/flashPop: connect-sessd's
// flash() is Express middleware); APP=express4: Express 4 + express-session + connect-sessd's
// flash(). Each runs as a Node cluster of WORKERS (4) processes on PORT.
// The same routes in both, so one driver (tabs.js, ttl.js) serves both:
//   POST /login?user=U     regenerate (k0, the cart, kept), user=U, flash "welcome:U", 303 /
//   POST /set/:key?val=V   session[key] = V, flash "set:KEY=V", 303 /
//   GET  /state            { user, keys: {k*: v}, flashes: [popped messages], pid }
//   POST /logout           destroy
// Environment: SESSD_URL, SESSD_AUTH_FILE (optional), NS, MAX_AGE_MS, ROLLING (1/0).
const cluster = require('node:cluster');
const fs = require('node:fs');
const path = require('node:path');
const nodeDir = path.join(__dirname, '../../client/node');
const req_ = (m) => require(require.resolve(m, { paths: [nodeDir] }));
const { SessdStore, flash, genid } = require(nodeDir);

const APP = process.env.APP || 'express4';
const PORT = Number(process.env.PORT || 18100);
const WORKERS = Number(process.env.WORKERS || 4);
const MAX_AGE_MS = Number(process.env.MAX_AGE_MS || 3600 * 1000);
const ROLLING = process.env.ROLLING === '1';
const SECRET = 'users-64-a-session-secret-of-32-chars-or-more';

if (cluster.isPrimary && WORKERS > 0) {
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  cluster.on('exit', (w, code, sig) => console.error(`worker ${w.process.pid} exited ${code} ${sig}`));
  process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.kill('SIGTERM'); setTimeout(() => process.exit(0), 3000).unref(); });
  return;
}

const storeOpts = { url: process.env.SESSD_URL, namespace: process.env.NS || APP };
if (process.env.SESSD_AUTH_FILE) storeOpts.auth = fs.readFileSync(process.env.SESSD_AUTH_FILE);
const logErr = (err) => { if (!err.statusCode) console.error(err); else console.error(`${err.statusCode} ${err.code}: ${err.message}`); };

if (APP === 'fastify') fastifyApp().catch((e) => { console.error(e); process.exit(1); });
else expressApp();

async function fastifyApp() {
  const Fastify = req_('fastify');
  // KEEP_READS=0 (bench only): the README's advice left out, to see the driver count losses.
  const store = new SessdStore({ ...storeOpts, keepReads: process.env.KEEP_READS !== '0' });
  store.on('disconnect', (err) => console.error(`sessd unreachable: ${err ? err.message : ''}`));
  const app = Fastify();
  await app.register(req_('@fastify/cookie'));
  await app.register(req_('@fastify/session'), {
    secret: SECRET, store, saveUninitialized: false, rolling: ROLLING,
    idGenerator: () => genid(), cookie: { secure: false, maxAge: MAX_AGE_MS },
  });
  const key = (request) => store.prefix + request.session.sessionId;
  const ttlMs = (request) => {
    const exp = request.session.cookie.expires;
    return exp ? Math.max(1, new Date(exp).getTime() - Date.now()) : 86400 * 1000;
  };
  const push = (request, msg) => store.client.flashPush(store.namespace, key(request), 'info', msg, ttlMs(request));
  app.post('/login', async (request, reply) => {
    await request.session.regenerate(['k0']); // k0, the cart, kept across the login
    request.session.user = request.query.user;
    await request.session.save();
    await push(request, `welcome:${request.query.user}`);
    return reply.redirect('/', 303);
  });
  app.post('/set/:key', async (request, reply) => {
    request.session[request.params.key] = request.query.val;
    // Saved before the flash: the flash creates the session in sessd if it is new.
    await request.session.save();
    await push(request, `set:${request.params.key}=${request.query.val}`);
    return reply.redirect('/', 303);
  });
  app.get('/state', async (request) => {
    const popped = await store.client.flashPop(store.namespace, key(request), null);
    const keys = {};
    for (const k of Object.keys(request.session)) if (/^k\d+$/.test(k)) keys[k] = request.session[k];
    return { user: request.session.user ?? null, keys, flashes: Object.values(popped || {}).flat(), pid: process.pid, sid: request.session.sessionId };
  });
  app.post('/logout', async (request) => { await request.session.destroy(); return { ok: true }; });
  app.setErrorHandler((err, request, reply) => { logErr(err); reply.code(err.statusCode || 500).send({ error: err.code || 'error' }); });
  await app.listen({ port: PORT, host: '127.0.0.1' });
  process.on('SIGTERM', () => app.close().then(() => { store.close(); process.exit(0); }));
}

// STORE (Express only): sessd (default); redis: connect-redis 9 + connect-flash, the app before
// its switch; migrate: connect-sessd with migrateFrom that RedisStore, as client/node/README.md's
// "Switching from connect-redis" has it (REDIS_URL; modules from client/node/bench/e2e).
function redisStore() {
  const e2e = path.join(nodeDir, 'bench/e2e');
  const { createClient } = require(require.resolve('redis', { paths: [e2e] }));
  const { RedisStore } = require(require.resolve('connect-redis', { paths: [e2e] }));
  const redis = createClient({ url: process.env.REDIS_URL });
  redis.connect().catch(console.error);
  return new RedisStore({ client: redis, prefix: 'sess:' });
}

function expressApp() {
  const express = req_('express4');
  const session = req_('express-session');
  const kind = process.env.STORE || 'sessd';
  const store = kind === 'redis' ? redisStore() : new SessdStore(kind === 'migrate' ? { ...storeOpts, migrateFrom: redisStore() } : storeOpts);
  if (kind !== 'redis') store.on('disconnect', (err) => console.error(`sessd unreachable: ${err ? err.message : ''}`));
  const app = express();
  // genid only on sessd: the app before its switch has express-session's own ids.
  app.use(session({ ...(kind === 'sessd' ? { genid } : {}), store, secret: SECRET, resave: false, saveUninitialized: false, rolling: ROLLING, cookie: { maxAge: MAX_AGE_MS } }));
  if (kind === 'redis') {
    app.use(require(require.resolve('connect-flash', { paths: [path.join(nodeDir, 'bench/e2e')] }))());
    flash.locals = () => (req, res, next) => { res.locals.flash = req.flash(); next(); };
  } else app.use(flash());
  app.use((req, res, next) => (req.session ? next() : res.status(503).send('Try again shortly')));
  app.post('/login', (req, res, next) => {
    const cart = req.session.k0; // k0, the cart, kept across the login
    req.session.regenerate((err) => {
      if (err) return next(err);
      if (cart !== undefined) req.session.k0 = cart;
      req.session.user = req.query.user;
      req.session.save(async (e) => {
        if (e) return next(e);
        await Promise.resolve(req.flash('info', `welcome:${req.query.user}`)).catch(logErr);
        res.redirect(303, '/');
      });
    });
  });
  app.post('/set/:key', async (req, res, next) => {
    try {
      req.session[req.params.key] = req.query.val;
      await req.flash('info', `set:${req.params.key}=${req.query.val}`);
      res.redirect(303, '/');
    } catch (e) { next(e); }
  });
  app.get('/state', flash.locals(), (req, res) => {
    const keys = {};
    for (const k of Object.keys(req.session)) if (/^k\d+$/.test(k)) keys[k] = req.session[k];
    res.json({ user: req.session.user ?? null, keys, flashes: Object.values(res.locals.flash).flat(), pid: process.pid, sid: req.sessionID });
  });
  app.post('/logout', (req, res, next) => req.session.destroy((e) => (e ? next(e) : res.json({ ok: true }))));
  app.use((err, req, res, next) => { if (res.headersSent) return next(err); logErr(err); res.status(err.statusCode || 500).json({ error: err.code || 'error' }); });
  const server = app.listen(PORT, '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => { if (store.close) store.close(); process.exit(0); }));
}
