'use strict';
// SessdStore as the store of @fastify/session (with @fastify/cookie), as connect-redis users
// plug theirs in (client/node/README.md, "Other frameworks"): @fastify/session calls the
// express-session store methods with callbacks and hands set() its own Session object, whose
// cookie (maxAge, expires) gives the session's lifetime in sessd. bench/ecosystem/fastify.js
// runs the same beside connect-redis by hand; this keeps the sessd side in CI. Requests of one
// visitor in flight at once: apps61-fastify-keep-reads.test.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { once, persistentDaemon } = require('./helpers');
const { fastifyApp, json, HOUR, MONTH } = require('./apps61-fastify-app');

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
