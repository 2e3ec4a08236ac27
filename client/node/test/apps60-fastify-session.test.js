'use strict';
// SessdStore as the store of @fastify/session (with @fastify/cookie), as connect-redis users
// plug theirs in (client/node/README.md, "Other frameworks"): @fastify/session calls the
// express-session store methods with callbacks and hands set() its own Session object, whose
// cookie (maxAge, expires) gives the session's lifetime in sessd. bench/ecosystem/fastify.js
// runs the same beside connect-redis by hand; this keeps the sessd side in CI.

const test = require('node:test');
const assert = require('node:assert/strict');
const Fastify = require('fastify');
const { SessdStore } = require('..');
const { Browser, once, persistentDaemon } = require('./helpers');

const SECRET = 'a-fastify-session-secret-of-32-chars-or-more';
const HOUR = 3600 * 1000;
const MONTH = 30 * 24 * HOUR;

async function fastifyApp(t, store) {
  const app = Fastify();
  // Browser.post sends an urlencoded form (empty here: the routes read the query).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body))));
  await app.register(require('@fastify/cookie'));
  await app.register(require('@fastify/session'), { secret: SECRET, store, cookie: { secure: false, maxAge: HOUR }, saveUninitialized: false });
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
  app.get('/page', async (request) => ({ sid: request.session.sessionId, user: request.session.user ?? null, cart: request.session.cart ?? [] }));
  app.post('/logout', async (request) => {
    await request.session.destroy();
    return { ok: true };
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => {
    await app.close();
    store.close();
  });
  return new Browser(`http://127.0.0.1:${app.server.address().port}`);
}

const json = (r) => {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
};

test('@fastify/session on SessdStore: login by regenerate, the cookie\'s maxAge as the lifetime in sessd, logout', async (t) => {
  const d = await persistentDaemon(t);
  const store = new SessdStore({ url: d.unixUrl, namespace: 'apps60-fastify' });
  await once(store, 'connect');
  const br = await fastifyApp(t, store);

  json(await br.post('/cart?item=fig'));
  const anon = json(await br.get('/page'));
  assert.deepEqual(anon.cart, ['fig']);
  json(await br.post('/login?user=ann'));
  const page = json(await br.get('/page'));
  assert.equal(page.user, 'ann');
  assert.deepEqual(page.cart, ['fig'], 'regenerate([\'cart\']) kept the cart');
  assert.notEqual(page.sid, anon.sid);
  assert.equal(await store.client.ttl('apps60-fastify', anon.sid), null, 'the pre-login session is destroyed');
  const ttl = await store.client.ttl('apps60-fastify', page.sid);
  assert.ok(ttl > HOUR - 60000 && ttl <= HOUR, `the session lives the cookie's hour in sessd, not ${ttl} ms`);
  // Its stored form is the Session's own: the cookie with its expiry.
  const stored = await store.get(page.sid);
  assert.equal(stored.user, 'ann');
  assert.equal(stored.cookie.originalMaxAge, HOUR);

  json(await br.post('/logout'));
  assert.equal(await store.client.ttl('apps60-fastify', page.sid), null);
  assert.equal(json(await br.get('/page')).user, null);
});

test('@fastify/session on SessdStore: "remember me" gives the session 30 days in sessd', async (t) => {
  const d = await persistentDaemon(t);
  const store = new SessdStore({ url: d.unixUrl, namespace: 'apps60-fastify-remember' });
  await once(store, 'connect');
  const br = await fastifyApp(t, store);
  const login = await br.post('/login?user=bo&remember=1');
  json(login);
  const expires = /Expires=([^;]+)/.exec(login.headers['set-cookie'][0]);
  assert.ok(expires && Date.parse(expires[1]) > Date.now() + MONTH - 86400000, login.headers['set-cookie'][0]);
  const { sid } = json(await br.get('/page'));
  const ttl = await store.client.ttl('apps60-fastify-remember', sid);
  assert.ok(ttl > MONTH - 60000 && ttl <= MONTH, `30 days in sessd, not ${ttl} ms`);
});

test('@fastify/session on SessdStore: sessd down answers 503 with the store\'s code; back, the user is still logged in', async (t) => {
  const d = await persistentDaemon(t);
  const store = new SessdStore({ url: d.unixUrl, namespace: 'apps60-fastify-down', restartWaitMs: 300, reconnectMinMs: 20, reconnectMaxMs: 200 });
  await once(store, 'connect');
  const br = await fastifyApp(t, store);
  json(await br.post('/login?user=cy'));
  json(await br.post('/cart?item=pear'));

  const down = once(store, 'disconnect');
  await d.stop('SIGKILL');
  await down;
  const r = await br.get('/page');
  assert.equal(r.status, 503, r.body);
  assert.equal(JSON.parse(r.body).code, 'ESESSD_DISCONNECTED');

  await d.start();
  await once(store, 'connect');
  const back = json(await br.get('/page'));
  assert.equal(back.user, 'cy');
  assert.deepEqual(back.cart, ['pear']);
});
