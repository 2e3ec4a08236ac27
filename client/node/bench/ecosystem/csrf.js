'use strict';
// csrf-sync (the synchroniser token in req.session.csrfToken) in an Express app on
// connect-sessd, connect-redis 9 and MemoryStore: does a concurrent request, or a merge, lose
// or change the token a form was rendered with? One line of outcome per scenario and store.
// Run by hand:
//
//   cd client/node && npm ci && (cd bench/ecosystem && npm ci)
//   node bench/ecosystem/csrf.js [--stores sessd,redis,memory]
//
// Scenarios: steady (20 form POSTs with the token, each adding to the cart, at once with 20 GETs
// of the form page: how many POSTs are refused 403, how many cart items stand); two-tabs (a
// session with no token yet opens two forms at once: each page makes its own token, one save
// wins); login (the token before a login that regenerates, then a form after it).

const http = require('http');
const express = require('express');
const session = require('express-session');
const { csrfSync } = require('csrf-sync');
const { options, redis, sessd, run, listen, close, get, sleep } = require('./common');

const opt = options();

async function makeStore(kind, dir) {
  if (kind === 'memory') return { store: new session.MemoryStore(), stop: async () => {} };
  return kind === 'redis' ? redis(dir) : sessd(dir);
}

async function startApp(store) {
  const { csrfSynchronisedProtection } = csrfSync({ getTokenFromRequest: (req) => req.headers['x-csrf-token'] });
  const app = express();
  app.use(session({ store, secret: 'ecosystem-csrf', resave: false, saveUninitialized: false }));
  app.use(csrfSynchronisedProtection);
  app.get('/start', (req, res) => {
    req.session.started = true;
    res.json({});
  });
  app.get('/form', async (req, res) => {
    const token = req.csrfToken();
    await sleep(20); // a page that takes a moment, so that requests overlap
    res.json({ token });
  });
  app.post('/add', (req, res) => {
    req.session.cart = [...(req.session.cart || []), req.query.item];
    res.json({ n: req.session.cart.length });
  });
  app.post('/login', (req, res, next) => req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = 'alice';
    return res.json({});
  }));
  app.get('/state', (req, res) => res.json({ cart: req.session.cart || [], user: req.session.user || null }));
  app.use((err, req, res, next) => res.status(err.status || 500).json({ error: err.message }));
  const server = http.createServer(app);
  return { server, base: await listen(server) };
}

const req = (base, method, p, cookie, token) => get(base, p, cookie, { method, headers: token ? { 'x-csrf-token': token } : {} });

const scenarios = {
  async steady(base) {
    const { cookie } = await req(base, 'GET', '/start');
    const { body: { token } } = await req(base, 'GET', '/form', cookie);
    const posts = Array.from({ length: 20 }, (_, i) => req(base, 'POST', `/add?item=i${i}`, cookie, token));
    const forms = Array.from({ length: 20 }, () => req(base, 'GET', '/form', cookie));
    const done = await Promise.all([...posts, ...forms]);
    const refused = done.slice(0, 20).filter((r) => r.status === 403).length;
    const changed = done.slice(20).filter((r) => r.body.token !== token).length;
    const st = await req(base, 'GET', '/state', cookie);
    return `POSTs refused ${refused}/20, form pages with another token ${changed}/20, cart ${st.body.cart.length}/20`;
  },
  async 'two-tabs'(base) {
    const { cookie } = await req(base, 'GET', '/start');
    const [a, b] = await Promise.all([req(base, 'GET', '/form', cookie), req(base, 'GET', '/form', cookie)]);
    const pa = await req(base, 'POST', '/add?item=a', cookie, a.body.token);
    const pb = await req(base, 'POST', '/add?item=b', cookie, b.body.token);
    return `tab A's POST ${pa.status}, tab B's POST ${pb.status}`;
  },
  async login(base) {
    const { cookie } = await req(base, 'GET', '/start');
    const { body: { token } } = await req(base, 'GET', '/form', cookie);
    const login = await req(base, 'POST', '/login', cookie, token);
    const c2 = login.cookie || cookie;
    const stale = await req(base, 'POST', '/add?item=x', c2, token);
    const { body: { token: t2 } } = await req(base, 'GET', '/form', c2);
    const fresh = await req(base, 'POST', '/add?item=y', c2, t2);
    return `login ${login.status}; old token after login ${stale.status}; new form's token ${fresh.status}`;
  },
};

run(opt.stores, Object.fromEntries(Object.entries(scenarios).map(([name, scenario]) => [name, async (s) => {
  const { server, base } = await startApp(s.store);
  try {
    return await scenario(base);
  } finally {
    await close(server);
  }
}])), makeStore);
