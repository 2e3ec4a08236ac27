'use strict';
// The demo shop: login (any name), a cart kept in the session, flash messages after every
// redirect. createApp() builds the Express app around a session store and a flash
// middleware so the same app runs on sessd or, for comparison, on express-session's
// MemoryStore.

const express = require('express');
const session = require('express-session');

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

// "2 lemons" -> { qty: 2, name: 'lemons' }; "apple" -> { qty: 1, name: 'apple' }.
function parseItem(text) {
  const t = String(text || '').trim().replace(/\s+/g, ' ').slice(0, 100);
  if (!t) return null;
  const m = /^(\d{1,4})\s+(.+)$/.exec(t);
  if (m && Number(m[1]) > 0) return { qty: Number(m[1]), name: m[2] };
  return { qty: 1, name: t };
}

function page({ title, user, flash, body, served, refreshSeconds = 0 }) {
  const flashes = Object.entries(flash || {})
    .flatMap(([type, msgs]) => msgs.map((m) => `<p class="flash ${escapeHtml(type)}">${escapeHtml(m)}</p>`))
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">${refreshSeconds ? `<meta http-equiv="refresh" content="${refreshSeconds}">` : ''}<title>${escapeHtml(title)}</title>
<style>
body { font-family: sans-serif; max-width: 36em; margin: 2em auto; }
.flash { padding: .5em 1em; border-radius: 4px; }
.flash.info { background: #e0f0ff; } .flash.error { background: #ffe0e0; }
footer { color: #888; font-size: .8em; margin-top: 3em; }
</style></head>
<body>
<h1>sessd demo shop</h1>
<div id="flash">${flashes}</div>
${user ? `<p id="user">Logged in as <b>${escapeHtml(user)}</b>.</p>` : ''}
${body}
<footer>served by ${escapeHtml(served)}</footer>
</body></html>
`;
}

// mergeSession(key, base, mine, theirs): connect-sessd's mergeKey option for the shop. When
// two requests changed the cart at once (two tabs, a double click), the items this request
// added (its cart less the one it read) go onto the cart the other request stored, so no add
// is lost. Other keys: this request's value (connect-sessd's default).
function mergeSession(key, base, mine, theirs) {
  if (key !== 'cart' || !Array.isArray(mine) || !Array.isArray(theirs)) return mine;
  const before = new Map((Array.isArray(base) ? base : []).map((it) => [it.name, it.qty]));
  const out = theirs.map((it) => ({ ...it }));
  for (const it of mine) {
    const added = it.qty - (before.get(it.name) || 0);
    if (added <= 0) continue;
    const same = out.find((o) => o.name === it.name);
    if (same) same.qty += added;
    else out.push({ qty: added, name: it.name });
  }
  return out;
}

// createApp({ store, flash, secret, served }): store is an express-session store; flash is
// an object with middleware() (sets req.flash) and locals() (pops into res.locals.flash).
function createApp({ store, flash, secret, served = 'express-demo', cookieMaxAgeMs = 3600 * 1000 }) {
  const app = express();
  app.disable('x-powered-by');
  // What a visitor sees while sessions cannot be read or saved. Their session (login, cart,
  // pending flashes) is kept in sessd, so the page says so rather than showing them logged
  // out; a page they asked for reloads by itself (a reload of a change would send it again,
  // or GET a form's URL). A change is said not to have been made only when it was not: no
  // session to make it in (none, or its load failed: the route never ran, whatever the
  // load's error says of the read), or an error with notCarriedOut. One whose save timed out
  // or whose connection broke (${err} without it) may still land, as sessd runs what it read
  // once it resumes: "try again" had a visitor add the lemons twice.
  const unavailable = (req, res, err = null) => {
    const change = req.method !== 'GET' && req.method !== 'HEAD';
    // Said only where it is known: with the session loaded, of a visitor who was logged in
    // and whose session this request did not replace (a login's or a logout's regenerate()
    // ends the old one, whatever became of the new one: an anonymous visitor whose login sessd
    // refused for want of memory was told "You stay logged in"); without it (sessd
    // unreachable), of a visitor with a session cookie, whose session waits in sessd.
    const loaded = res.locals.sessionLoaded === true;
    const kept = loaded
      ? res.locals.loadedUser !== null && req.sessionID === res.locals.loadedId
      : /(?:^|;\s*)demo\.sid=/.test(req.headers.cookie || '');
    const visitor = kept ? ' You stay logged in, and your cart is kept.' : '';
    const notDone = err === null || err.notCarriedOut === true || res.locals.sessionLoaded !== true;
    let outcome = 'This page reloads by itself.';
    if (change && notDone) outcome = 'What you sent was not done: please try again shortly.';
    else if (change) outcome = 'What you sent may or may not have been done: look once the shop is back before you send it again.';
    res.status(503).set('Retry-After', '5').type('html').send(page({
      title: 'sessd demo shop',
      flash: { error: [`The shop cannot reach its sessions for a moment.${visitor} ${outcome}`] },
      body: '<p><a href="/">Back to the shop</a></p>',
      served,
      refreshSeconds: change ? 0 : 5,
    }));
  };
  app.use(express.urlencoded({ extended: false, limit: '8kb' }));
  // The process's own health, before the session middleware: a health check loads no
  // session and pops no flash, and keeps answering while sessd is down (every process of the
  // app shares that sessd: taking them out of a load balancer would not help).
  app.get('/healthz', (req, res) => res.type('text').send('ok\n'));
  app.use(session({
    store,
    secret,
    name: 'demo.sid',
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', maxAge: cookieMaxAgeMs },
  }));
  app.use(flash.middleware());
  // While sessd is unreachable for longer than connect-sessd's restartWaitMs (a restart
  // within it only delays requests), express-session passes requests through without
  // req.session (the store emitted 'disconnect'). Every request is then answered with the
  // "come back shortly" page, GETs too: rendered without its session, a page would show a
  // logged-in visitor the login form and no cart, as if sessd had lost them, when their
  // session is waiting in sessd; a login made from that form would be refused anyway.
  // The change a request asks for runs from here on: an error before (its session's load
  // failed) leaves it not done, whatever the error says of the load itself.
  app.use((req, res, next) => {
    if (!req.session) return unavailable(req, res);
    res.locals.sessionLoaded = true;
    res.locals.loadedId = req.sessionID;
    res.locals.loadedUser = req.session.user || null;
    return next();
  });

  // flash.locals() pops every pending flash on each GET it runs for, so it goes on the page
  // that shows them, not app-wide: there a browser's GET of /favicon.ico (a 404) with the
  // cookie would take the "Added 2 lemons" meant for this page.
  app.get('/', flash.locals(), (req, res) => {
    const user = req.session && req.session.user;
    let body;
    if (!user) {
      body = `<form method="post" action="/login">
<label>Your name <input name="username" id="username" autofocus required></label>
<button type="submit" id="login">Log in</button></form>`;
    } else {
      const cart = req.session.cart || [];
      const rows = cart.map((it) => `<li>${it.qty} ${escapeHtml(it.name)}</li>`).join('\n');
      body = `<h2>Your cart</h2>
<ul id="cart">${rows || '<li class="empty">(empty)</li>'}</ul>
<form method="post" action="/cart">
<label>Add <input name="item" id="item" placeholder="2 lemons" required></label>
<button type="submit" id="add">Add to cart</button></form>
<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form>`;
    }
    res.type('html').send(page({ title: 'sessd demo shop', user, flash: res.locals.flash, body, served }));
  });

  // A change is saved before the flash and the redirect that confirm it. express-session saves
  // after the response's head has gone out, so a save that fails then (sessd crashed, a full
  // disk, a retired secret) would leave the browser told "Added 2 lemons" of a cart that does
  // not have them; saved first, the failure reaches the error handler and the user a 503. The
  // flash waits for the save too: pushed before it, it would still say "Added 2 lemons" on
  // the next page, after the error. Once the save succeeded the change stands: a flash that
  // cannot be stored then (sessd crashed with the push in flight, the session's flashes at
  // their limit) loses only the message, and the redirect still goes; an error page would
  // have the user add the lemons again.
  const saveThenConfirm = (req, res, next, ...message) =>
    req.session.save((err) => {
      if (err) return next(err);
      const redirect = () => res.redirect(303, '/');
      return req.flash(...message).then(redirect, (flashErr) => {
        console.error(`saved, but its flash was not stored: ${flashErr.message}`);
        redirect();
      });
    });

  app.post('/login', (req, res, next) => {
    const name = String(req.body.username || '').trim().slice(0, 40);
    if (!name) {
      req.flash('error', 'Please enter a name.').then(() => res.redirect(303, '/'), next);
      return;
    }
    // A fresh session id at login (no fixation); the flash goes to the new session.
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = name;
      req.session.cart = [];
      saveThenConfirm(req, res, next, 'info', 'Welcome back, %s', name);
      return undefined;
    });
  });

  app.post('/cart', (req, res, next) => {
    if (!req.session.user) return res.redirect(303, '/');
    const item = parseItem(req.body.item);
    if (!item) {
      req.flash('error', 'Say what to add, e.g. "2 lemons".').then(() => res.redirect(303, '/'), next);
      return undefined;
    }
    const cart = req.session.cart || (req.session.cart = []);
    const same = cart.find((it) => it.name === item.name);
    if (same) same.qty += item.qty;
    else cart.push(item);
    saveThenConfirm(req, res, next, 'info', 'Added %d %s', item.qty, item.name);
    return undefined;
  });

  app.post('/logout', (req, res, next) => {
    const name = req.session.user;
    // regenerate destroys the old session in the store and starts an empty one, which
    // carries the goodbye flash.
    req.session.regenerate((err) => {
      if (err) return next(err);
      const done = () => res.redirect(303, '/');
      if (name) req.flash('info', 'Goodbye, %s', name).then(done, next);
      else done();
      return undefined;
    });
  });

  // The error handler: a store call that failed (sessd down past restartWaitMs, stuck past
  // timeoutMs, out of memory: err.statusCode 503) gets the same "come back shortly" page as
  // the guard above; anything else a plain 500. Express's own handler would print the error's
  // stack on the page outside production.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    const status = err.statusCode || err.status || 500;
    if (status === 503) return unavailable(req, res, err);
    // Errors without a status are bugs or misconfiguration: the log has them, the page not.
    if (status >= 500) console.error(err);
    res.status(status).type('html').send(page({
      title: 'sessd demo shop',
      flash: { error: [status >= 500 ? 'Something went wrong.' : 'That request could not be handled.'] },
      body: '<p><a href="/">Back to the shop</a></p>',
      served,
    }));
    return undefined;
  });
  return app;
}

module.exports = { createApp, parseItem, escapeHtml, mergeSession };
