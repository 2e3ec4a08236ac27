'use strict';
// express-session's per-request cookie settings with a login on connect-sessd (its flash()),
// connect-redis 9 and MemoryStore (connect-flash on both): one line of outcome per scenario
// and store. Run by hand:
//
//   cd client/node && npm ci && (cd bench/ecosystem && npm ci)   # connect-flash: bench/e2e
//   node bench/ecosystem/login.js [--stores sessd,redis,memory]
//
// Scenarios: remember (a login that regenerates, pushes "Welcome" and, with the box ticked,
// sets cookie.maxAge to 30 days: the flash on the next page, once; the lifetime the store and
// the browser's cookie give, ticked and not); rolling (rolling: true, maxAge 2 s: pages every
// 0.5 s for 3 s keep the login, which ends 2 s after the last); proxy (cookie.secure behind a
// TLS-ending proxy: with trust proxy and X-Forwarded-Proto https the login works; without trust
// proxy no cookie goes out and the flash is lost).

const path = require('path');
const http = require('http');
const express = require('express');
const session = require('express-session');
const { flash } = require('../..');
const { options, redis, sessd, run, listen, close, get, sleep } = require('./common');

const opt = options();
const DAY = 86400000;

// connect-flash from bench/e2e (its npm ci) beside connect-redis and MemoryStore.
async function makeStore(kind, dir) {
  const connectFlash = () => require(path.resolve(__dirname, '../e2e/node_modules/connect-flash'))();
  if (kind === 'memory') {
    const store = new session.MemoryStore();
    const ttl = (sid) => new Promise((resolve) => store.get(sid, (e, s) => resolve(s && s.cookie.expires ? new Date(s.cookie.expires) - Date.now() : null)));
    return { store, flashMw: connectFlash(), ttl, stop: async () => {} };
  }
  if (kind === 'redis') return { ...(await redis(dir)), flashMw: connectFlash() };
  return { ...(await sessd(dir)), flashMw: flash() };
}

async function startApp(s, sessOpts, trustProxy) {
  const app = express();
  if (trustProxy) app.set('trust proxy', 1);
  app.use(session({ store: s.store, secret: 'ecosystem-login', resave: false, saveUninitialized: false, ...sessOpts }));
  app.use(s.flashMw);
  app.get('/login', (req, res, next) => req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = 'alice';
    if (req.query.remember) req.session.cookie.maxAge = 30 * DAY;
    req.flash('info', 'Welcome alice');
    return req.session.save((err2) => (err2 ? next(err2) : res.redirect(303, '/')));
  }));
  app.get('/', async (req, res) => res.json({ sid: req.sessionID, user: req.session.user || null, flash: await req.flash('info') }));
  const server = http.createServer(app);
  return { server, base: await listen(server) };
}
const days = (ms) => (ms === null ? 'none' : `${(ms / DAY).toFixed(2)} d`);

const scenarios = {
  async remember(s) {
    const out = [];
    for (const remember of [false, true]) {
      const { server, base } = await startApp(s, { cookie: { maxAge: DAY } });
      const login = await get(base, `/login${remember ? '?remember=1' : ''}`);
      const p1 = await get(base, '/', login.cookie);
      const p2 = await get(base, '/', login.cookie);
      out.push(`${remember ? 'ticked' : 'not ticked'}: flash ${JSON.stringify(p1.body.flash)} then ${JSON.stringify(p2.body.flash)}, store ${days(await s.ttl(p1.body.sid))}, cookie ${days(login.cookieMs)}`);
      await close(server);
    }
    return out.join('; ');
  },
  async rolling(s) {
    const { server, base } = await startApp(s, { rolling: true, cookie: { maxAge: 2000 } });
    const login = await get(base, '/login');
    let user = null;
    for (let i = 0; i < 6; i++) {
      await sleep(500);
      user = (await get(base, '/', login.cookie)).body.user;
      if (!user) break;
    }
    await sleep(2300);
    const after = (await get(base, '/', login.cookie)).body.user;
    await close(server);
    return `after 3 s of pages user=${user}; 2.3 s after the last page user=${after}`;
  },
  async proxy(s) {
    const out = [];
    for (const trust of [true, false]) {
      const { server, base } = await startApp(s, { cookie: { secure: true } }, trust);
      const login = await get(base, '/login', null, { headers: { 'x-forwarded-proto': 'https' } });
      const p1 = login.cookie ? await get(base, '/', login.cookie, { headers: { 'x-forwarded-proto': 'https' } }) : null;
      out.push(`trust proxy ${trust}: cookie ${login.cookie ? 'sent' : 'NOT sent'}, next page user=${p1 && p1.body.user} flash=${p1 && JSON.stringify(p1.body.flash)}`);
      await close(server);
    }
    return out.join('; ');
  },
};

run(opt.stores, scenarios, makeStore);
