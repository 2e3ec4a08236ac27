'use strict';
// SessdStore under fastify + @fastify/cookie + @fastify/session + @fastify/flash (whose docs say
// @fastify/session takes express-session stores), beside connect-redis 9 and @fastify/session's
// own MemoryStore: the same app, one line of outcome per scenario and store. Run by hand:
//
//   cd client/node && npm ci && (cd bench/ecosystem && npm ci)
//   node bench/ecosystem/fastify.js [--stores sessd,redis,memory]
//
// Scenarios: basic (login, a flash shown once, the TTL sessd gives the session, logout); twice
// (a route that saves the session, then changes it again: both changes stored);
// slow-logout (a slow page that read the signed-in session ends after a logout in another tab:
// is the logout undone?); cart (20 cart adds at once: how many stand?); flashes (20 flashes
// pushed at once from 20 requests: how many are shown, how many twice?).

const Fastify = require('fastify');
const { options, redis, sessd, run, get, sleep } = require('./common');

const opt = options();
const SECRET = 'a-fastify-session-secret-of-32-chars-or-more';
const MAX_AGE = 3600000;

// @fastify/session's own MemoryStore when store is undefined.
async function makeStore(kind, dir) {
  if (kind === 'memory') return { store: undefined, ttl: async () => null, stop: async () => {} };
  return kind === 'redis' ? redis(dir) : sessd(dir);
}

async function startApp(store) {
  const app = Fastify();
  await app.register(require('@fastify/cookie'));
  await app.register(require('@fastify/session'), { secret: SECRET, store, cookie: { secure: false, maxAge: MAX_AGE }, saveUninitialized: false });
  await app.register(require('@fastify/flash'));
  app.get('/login', async (request) => {
    request.session.user = request.query.user;
    request.flash('info', `Welcome ${request.query.user}`);
    return { ok: true };
  });
  app.get('/logout', async (request) => {
    await request.session.destroy();
    return { ok: true };
  });
  app.get('/slow', async (request) => {
    await sleep(Number(request.query.ms || 300));
    return { user: request.session.user || null };
  });
  app.get('/add', async (request) => {
    request.session.cart = [...(request.session.cart || []), request.query.item];
    return { n: request.session.cart.length };
  });
  app.get('/push', async (request) => {
    request.flash('info', request.query.msg);
    return { ok: true };
  });
  app.get('/twice', async (request) => {
    request.session.a = 1;
    await request.session.save();
    request.session.b = 2;
    return { ok: true };
  });
  app.get('/page', async (request, reply) => ({ sid: request.session.sessionId, user: request.session.user || null, cart: request.session.cart || [], ab: [request.session.a, request.session.b], flash: reply.flash() }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, base: `http://127.0.0.1:${app.server.address().port}` };
}

const scenarios = {
  async basic(base, s) {
    const login = await get(base, '/login?user=alice');
    const cookie = login.cookie;
    const p1 = await get(base, '/page', cookie);
    const p2 = await get(base, '/page', cookie);
    const ttl = await s.ttl(p1.body.sid);
    await get(base, '/logout', cookie);
    const p3 = await get(base, '/page', cookie);
    return `login status ${login.status}; page 1 user=${p1.body.user} flash=${JSON.stringify(p1.body.flash)}; page 2 flash=${JSON.stringify(p2.body.flash)}; ` +
      `store TTL ${ttl === null ? 'n/a' : Math.round(ttl / 1000) + ' s'} (maxAge ${MAX_AGE / 1000} s); after logout user=${p3.body && p3.body.user}`;
  },
  async twice(base) {
    const { cookie } = await get(base, '/login?user=erin');
    await get(base, '/page', cookie);
    const r = await get(base, '/twice', cookie);
    const after = await get(base, '/page', r.cookie || cookie);
    return `a route that saves, then changes again: ${JSON.stringify(after.body.ab)} (want [1,2]), user=${after.body.user}`;
  },
  async 'slow-logout'(base) {
    const { cookie } = await get(base, '/login?user=bob');
    await get(base, '/page', cookie);
    const slow = get(base, '/slow?ms=400', cookie);
    await sleep(100);
    await get(base, '/logout', cookie);
    await slow;
    const after = await get(base, '/page', cookie);
    return `after the slow page ended: user=${after.body.user} (${after.body.user ? 'LOGOUT UNDONE' : 'stays logged out'})`;
  },
  async cart(base) {
    const { cookie } = await get(base, '/login?user=carol');
    await get(base, '/page', cookie);
    await Promise.all(Array.from({ length: 20 }, (_, i) => get(base, `/add?item=i${i}`, cookie)));
    const after = await get(base, '/page', cookie);
    return `cart ${after.body.cart.length}/20`;
  },
  async flashes(base) {
    const { cookie } = await get(base, '/login?user=dave');
    await get(base, '/page', cookie);
    await Promise.all(Array.from({ length: 20 }, (_, i) => get(base, `/push?msg=m${i}`, cookie)));
    const after = await get(base, '/page', cookie);
    const again = await get(base, '/page', cookie);
    const n = (after.body.flash.info || []).length;
    return `flashes shown ${n}/20, shown again on the next page ${(again.body.flash.info || []).length}`;
  },
};

run(opt.stores, Object.fromEntries(Object.entries(scenarios).map(([name, scenario]) => [name, async (s) => {
  const { app, base } = await startApp(s.store);
  try {
    return await scenario(base, s);
  } finally {
    await app.close();
  }
}])), makeStore);
