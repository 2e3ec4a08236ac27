'use strict';
// The fastify app of the @fastify/session tests (apps60-fastify-session.test.js,
// apps61-fastify-keep-reads.test.js): @fastify/cookie and @fastify/session on a SessdStore,
// as connect-redis users plug theirs in (client/node/README.md, "Other frameworks").

const assert = require('node:assert/strict');
const Fastify = require('fastify');
const { Browser } = require('./helpers');

const SECRET = 'a-fastify-session-secret-of-32-chars-or-more';
const HOUR = 3600 * 1000;
const MONTH = 30 * 24 * HOUR;

// fastifyApp(t, store, gates, sessionOpts): the app (sessionOpts: more of @fastify/session's
// options, rolling: false say), listening on a loopback port until t ends (the store
// closed then), and a Browser of it. gates (helpers.js's Gates): /slow?name=N loads the
// session and waits at gates.hold(N), then sets ?note= and ?theme= (when given) and the
// cookie's maxAge (?remember=1: a month, 0: an hour) and answers.
async function fastifyApp(t, store, gates = null, sessionOpts = {}) {
  const app = Fastify();
  // Browser.post sends an urlencoded form (empty here: the routes read the query).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body))));
  await app.register(require('@fastify/cookie'));
  await app.register(require('@fastify/session'), { secret: SECRET, store, cookie: { secure: false, maxAge: HOUR }, saveUninitialized: false, ...sessionOpts });
  // A login in the shape of passport's: a new id, the cart kept, "remember me" a longer cookie.
  app.post('/login', async (request) => {
    await request.session.regenerate(['cart']);
    request.session.user = request.query.user;
    if (request.query.remember) request.session.cookie.maxAge = MONTH;
    return { ok: true };
  });
  app.post('/cart', async (request) => {
    request.session.cart = [...(request.session.cart || []), request.query.item];
    return { cart: request.session.cart };
  });
  app.post('/cart/remove', async (request) => {
    request.session.cart = (request.session.cart || []).filter((item) => item !== request.query.item);
    return { cart: request.session.cart };
  });
  app.post('/theme', async (request) => {
    request.session.theme = request.query.theme;
    return { ok: true };
  });
  app.get('/page', async (request) => ({ sid: request.session.sessionId, user: request.session.user ?? null, cart: request.session.cart ?? [], note: request.session.note ?? null, theme: request.session.theme ?? null }));
  app.get('/slow', async (request) => {
    await gates.hold(request.query.name);
    if (request.query.note) request.session.note = request.query.note;
    if (request.query.theme) request.session.theme = request.query.theme;
    if (request.query.remember) request.session.cookie.maxAge = request.query.remember === '1' ? MONTH : HOUR;
    return { user: request.session.user ?? null };
  });
  // "Keep me signed in" ticked (on=1: a 30-day cookie) or unticked (on=0: back to an hour) on
  // a settings page, the user and id kept.
  app.post('/remember', async (request) => {
    request.session.cookie.maxAge = request.query.on === '1' ? MONTH : HOUR;
    return { ok: true };
  });
  app.post('/logout', async (request) => {
    await request.session.destroy();
    return { ok: true };
  });
  // A logout in the shape of passport's: a new, empty session under a new id.
  app.post('/logout-regenerate', async (request) => {
    await request.session.regenerate();
    return { ok: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => {
    await app.close();
    store.close();
  });
  return new Browser(`http://127.0.0.1:${app.server.address().port}`);
}

// json(r): the JSON body of a 200 response.
function json(r) {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

module.exports = { fastifyApp, json, HOUR, MONTH };
