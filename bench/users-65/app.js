'use strict';
// The users-65 web server: Express 5, express-session and connect-sessd as client/node/README.md's
// "Example" and "Authentication" have it (the secret read from a file at start, sealed TCP),
// a login by regenerate + save, a cart add that saves before its flash and 303, flash.locals()
// on the page. One process per "host": HOST is the address it listens on and, through
// localaddr.js (--require), the address its connections to sessd come from.
// Env: HOST, PORT, SESSD_URL, SESSD_AUTH_FILE, NS (namespace), NAME (for its log lines),
// DEFAULT_ERRORS=1 (no error handler of the app's: Express's own, which shows the stack).
const path = require('path');
const fs = require('fs');
const util = require('util');
const NODE = path.join(__dirname, '../../client/node');
const req_ = (m) => require(require.resolve(m, { paths: [NODE] }));
const express = req_('express');
const session = req_('express-session');
const { SessdStore, flash, genid } = require(NODE);

const name = process.env.NAME || 'app';
const logErr = (what) => process.stderr.write(`${new Date().toISOString()} ${name} ${what}\n`);
const store = new SessdStore({
  url: process.env.SESSD_URL,
  namespace: process.env.NS || 'shop',
  auth: fs.readFileSync(process.env.SESSD_AUTH_FILE),
});
store.on('disconnect', (err) => logErr(`sessd unreachable, answering 503: ${err ? err.message : ''}`));
store.on('connect', () => logErr('sessd connected'));
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({
  genid, store, secret: 'users-65-cookie-secret', resave: false, saveUninitialized: false,
  cookie: { maxAge: 3600 * 1000 },
}));
app.use(flash({ onError: (err) => logErr(`flash failed: ${util.inspect(err)}`) }));
app.use((req, res, next) => (req.session ? next() : res.status(503).send('Try again shortly')));

app.get('/', flash.locals(), (req, res) => {
  res.json({ host: name, user: req.session.user || null, cart: req.session.cart || [], flash: res.locals.flash });
});
app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body.username;
    req.session.save(async (e) => {
      if (e) return next(e);
      await req.flash('info', 'Welcome back, %s', req.session.user).catch((er) => logErr(er.message));
      res.redirect(303, '/');
    });
  });
});
app.post('/add', (req, res, next) => {
  if (!req.session.user) return res.status(403).send('log in first');
  req.session.cart = [...(req.session.cart || []), req.body.item];
  req.session.save(async (e) => {
    if (e) return next(e);
    await req.flash('info', 'Added %s', req.body.item).catch((er) => logErr(er.message));
    res.redirect(303, '/');
  });
});
app.post('/logout', (req, res, next) => req.session.destroy((e) => (e ? next(e) : res.redirect(303, '/'))));
app.get('/health', (req, res) => res.send('ok'));

if (process.env.DEFAULT_ERRORS !== '1') {
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    // Everything the app is handed is logged whole, so that the log check sees what an app
    // that logs its errors would write.
    logErr(`error ${req.method} ${req.path}: ${util.inspect(err)}`);
    return res.status(err.statusCode || 500).send('Something went wrong');
  });
}

const server = app.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1', () => logErr('listening'));
server.keepAliveTimeout = 65000;
process.on('SIGTERM', () => server.close(() => { store.close(); }));
