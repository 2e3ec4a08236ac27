'use strict';
// The soak's shop, written from client/node/README.md's "Example" as a user would: Express 5,
// express-session with rolling sessions and a short cookie (anonymous visitors churn), a
// "remember me" login that lengthens the cookie (req.session.cookie.maxAge), a cart that
// anonymous visitors may fill too (so their sessions are saved and then abandoned), flashes
// after each redirect, logout by destroy(). /debug/mem (before the session middleware) reports
// the process's heap after a full GC (run node with --expose-gc) and its open sockets, so that
// the soak can tell a leak from garbage not yet collected.
//
// env: PORT (0: any; printed as "listening PORT"), SESSD_URL, SESSD_AUTH_FILE, MAXAGE_MS
// (default 20000), REMEMBER_MS (default 60000), NS (default "soak").
const path = require('path');
const fs = require('fs');
const v8 = require('v8');

const nodeDir = path.resolve(__dirname, '../../client/node');
const req_ = (m) => require(require.resolve(m, { paths: [nodeDir] }));
const express = req_('express');
const session = req_('express-session');
const { SessdStore, flash, genid } = require(nodeDir);

const auth = process.env.SESSD_AUTH_FILE ? fs.readFileSync(process.env.SESSD_AUTH_FILE) : undefined;
const maxAgeMs = Number(process.env.MAXAGE_MS || 20000);
const rememberMs = Number(process.env.REMEMBER_MS || 60000);

function mergeCart(base = [], mine = [], theirs = []) {
  const removed = base.filter((item) => !mine.includes(item));
  const added = mine.filter((item) => !base.includes(item) && !theirs.includes(item));
  return [...theirs.filter((item) => !removed.includes(item)), ...added];
}

const store = new SessdStore({
  namespace: process.env.NS || 'soak',
  auth,
  mergeKey: (key, base, mine, theirs) => (key === 'cart' ? mergeCart(base, mine, theirs) : mine),
});
const t0 = Date.now();
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
store.on('disconnect', (err) => console.error(`${stamp()} sessd unreachable, answering 503: ${err ? err.message : ''}`));
store.on('connect', () => console.error(`${stamp()} sessd connected`));
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const app = express();
let server;
app.use(express.urlencoded({ extended: false }));
app.get('/debug/mem', (req, res) => {
  if (global.gc) global.gc();
  const m = process.memoryUsage();
  server.getConnections((err, httpConns) => {
    res.json({
      heapUsed: m.heapUsed,
      rss: m.rss,
      external: m.external,
      heapLimit: v8.getHeapStatistics().heap_size_limit,
      httpConns: err ? -1 : httpConns,
      handles: process.getActiveResourcesInfo ? process.getActiveResourcesInfo().length : -1,
      sockets: process.getActiveResourcesInfo
        ? process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'PipeWrap').length : -1,
    });
  });
});
app.use(session({
  genid,
  store,
  secret: 'users-66-soak-secret',
  resave: false,
  saveUninitialized: false,
  rolling: true,
  cookie: { maxAge: maxAgeMs },
}));
app.use(flash());
app.use((req, res, next) => (req.session ? next() : res.status(503).send('<p class=err>Try again shortly</p>')));

app.get('/', flash.locals(), (req, res) => {
  const msgs = Object.values(res.locals.flash).flat();
  res.send(`${msgs.map((m) => `<p class=flash>${esc(m)}</p>`).join('')}`
    + `<p class=user>${esc(req.session.user || '')}</p>`
    + `<p class=cart>${esc((req.session.cart || []).join(','))}</p>`);
});

// A read for checks that pops nothing (an XHR poll: changes nothing, rolls the session).
app.get('/cart.json', (req, res) => res.json({ user: req.session.user || null, cart: req.session.cart || [] }));

app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body.username;
    if (req.body.remember) req.session.cookie.maxAge = rememberMs;
    req.session.save(async (e) => {
      if (e) return next(e);
      await req.flash('info', `Welcome back, ${req.session.user} ${req.body.token || ''}`).catch((er) => console.error(er.message));
      res.redirect(303, '/');
    });
  });
});

app.post('/cart/add', (req, res, next) => {
  req.session.cart = [...(req.session.cart || []), req.body.item];
  req.session.save(async (e) => {
    if (e) return next(e);
    await req.flash('info', `Added ${req.body.item}`).catch((er) => console.error(er.message));
    res.redirect(303, '/');
  });
});

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

app.use((err, req, res, next) => {
  if (res.headersSent) return next(err);
  if (!err.statusCode) console.error(err);
  return res.status(err.statusCode || 500).send(`<p class=err>Something went wrong (${esc(err.code || '')})</p>`);
});

server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
server.keepAliveTimeout = 65000;
process.on('SIGTERM', () => server.close(() => { store.close(); setTimeout(() => process.exit(0), 100); }));
// server.close waits for idle keep-alive sockets too: close them, as a process manager's
// graceful stop would after its grace.
process.on('SIGTERM', () => server.closeIdleConnections());
