'use strict';
// A small Express 5 shop written as a new user would from client/node/README.md ("Example",
// "Concurrent saves", "flash"): login that regenerates the session, a cart of distinct item
// ids merged across tabs (mergeKey), connect-flash style flashes shown once after the
// redirect, logout. Not the demo: the point is what a user writes from the docs.
//
// env: PORT (0: any; the port is printed as "listening PORT"), SESSD_URL, SESSD_AUTH_FILE,
// SESSION_SECRET, SHOP_NAME.
const path = require('path');
const fs = require('fs');

const nodeDir = path.resolve(__dirname, '../../client/node');
const req_ = (m) => require(require.resolve(m, { paths: [nodeDir] }));
const express = req_('express');
const session = req_('express-session');
const { SessdStore, flash, genid } = require(nodeDir);

const name = process.env.SHOP_NAME || `shop-${process.pid}`;
const auth = process.env.SESSD_AUTH_FILE ? fs.readFileSync(process.env.SESSD_AUTH_FILE) : undefined;

function mergeCart(base = [], mine = [], theirs = []) {
  const removed = base.filter((item) => !mine.includes(item));
  const added = mine.filter((item) => !base.includes(item) && !theirs.includes(item));
  return [...theirs.filter((item) => !removed.includes(item)), ...added];
}

const store = new SessdStore({
  seal: process.env.SHOP_SEAL !== "no" && !!auth,
  namespace: 'shop',
  auth,
  requireAuth: !!auth,
  mergeKey: (key, base, mine, theirs) => (key === 'cart' ? mergeCart(base, mine, theirs) : mine),
});
store.on('disconnect', (err) => console.error(`${name}: sessd unreachable: ${err ? err.message : ''}`));
store.on('connect', () => console.error(`${name}: sessd connected`));
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const app = express();
app.use(express.urlencoded({ extended: false }));
app.get('/healthz', (req, res) => res.send('ok'));
app.use(session({
  genid,
  store,
  secret: process.env.SESSION_SECRET || 'users-63-shop-secret',
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 3600 * 1000 },
}));
app.use(flash());
app.use((req, res, next) => (req.session ? next() : res.status(503).send('<p class=err>Try again shortly</p>')));

app.get('/', flash.locals(), (req, res) => {
  const msgs = Object.values(res.locals.flash).flat();
  res.send(`${msgs.map((m) => `<p class=flash>${esc(m)}</p>`).join('')}`
    + `<p class=user>${esc(req.session.user || '')}</p>`
    + `<p class=cart>${esc((req.session.cart || []).join(','))}</p>`);
});

// A read for checks that pops nothing.
app.get('/cart.json', (req, res) => res.json({ user: req.session.user || null, cart: req.session.cart || [] }));

app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body.username;
    req.session.save(async (e) => {
      if (e) return next(e);
      await req.flash('info', `Welcome back, ${req.session.user} ${req.body.token || ''}`).catch((er) => console.error(er.message));
      res.redirect(303, '/');
    });
  });
});

app.post('/cart/add', async (req, res, next) => {
  if (!req.session.user) return res.status(403).send('<p class=err>log in first</p>');
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

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
// Longer than the browsers' idle keep-alive sockets, as behind a load balancer: Node's 5 s
// default races a browser reusing an idle socket (an ECONNRESET that is not sessd's doing).
server.keepAliveTimeout = 65000;
process.on('SIGTERM', () => server.close(() => store.close(() => process.exit(0))));
