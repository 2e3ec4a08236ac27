#!/usr/bin/env node
'use strict';
// The store layer's own CPU (lib/store.js) per page view (get, createSession, touch) and per
// cart add (get, createSession, set), with sessd's answers made in memory: no socket, no
// daemon, so that the noise of a shared machine's I/O and scheduling stays out and a change
// to the store's JS shows. This checkout's connect-sessd ('new') against another's ('base'),
// in one process, alternated round by round. A measuring harness, not a test: the Client it
// stands in for is tested against the real daemon in test/.
//
//   node store-layer.js DIR   (DIR: another checkout's client/node, its npm ci done)
//   env: OPS (30000 a round), ROUNDS (5), CART (items in the cart, 3), PROFILE (an object of
//   about that many bytes of JSON beside the cart that the cart add leaves as it is, as a
//   user's profile or preferences; 0), ONLY (view or add: DIR's lib alone, that action OPS
//   times after 3,000 of each, nothing printed: for instruction counts under cachegrind, the
//   difference of two OPS with node --predictable, see bench/README.md), STORE (with ONLY:
//   sessd, DIR's SessdStore, the default; or redis, connect-redis 9's RedisStore over a
//   node-redis stand-in that keeps strings in a Map: the store layer a user switches from),
//   STORE_OPTS (JSON: more options of the SessdStores, '{"merge":false}' for saves that write
//   the whole session with SET, as connect-redis does), TRUST (1: see below)
//   ONLY=login: a login instead, as express-session and the README's route make it (get,
//   createSession, regenerate: DESTROY and a new session, the user and the cart set, set:
//   SET and, since stop 64, the read-back LOAD), the new session then put back under the old
//   id for the next round (the same work for every lib)

const path = require('path');
if (!process.argv[2]) {
  console.error('usage: node store-layer.js DIR');
  process.exit(2);
}
const ONLY = process.env.ONLY;
const libs = ONLY ? { base: path.resolve(process.argv[2]) } : { new: path.resolve(__dirname, '../..'), base: path.resolve(process.argv[2]) };
const { dataTag } = require(path.resolve(__dirname, '../..'));
const p = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
function fakeClient() {
  const m = new Map();
  return {
    m,
    async load(ns, id) { const d = m.get(id); return d ? { data: d, flashes: 0 } : null; },
    async get(ns, id) { return m.get(id) || null; },
    async set(ns, id, data) { m.set(id, Buffer.from(data)); return 'ok'; },
    async setIf(ns, id, data, ttl, expect) { const d = m.get(id); if (!d) return 'not_found'; if (!TRUST && !dataTag(d).equals(expect)) return 'conflict'; m.set(id, Buffer.from(data)); return 'ok'; },
    async touchIf() { return 'ok'; }, async touch() { return true; }, async ttlIfKnown() { return 3600000; },
    async destroy(ns, id) { return m.delete(id); },
    close() {}, on() {}, once() {}, emit() {}, removeListener() {},
  };
}
// node-redis's calls as connect-redis 9 makes them, answered from a Map of strings.
function fakeRedis() {
  const m = new Map();
  return {
    async get(key) { return m.get(key) ?? null; },
    async set(key, val) { m.set(key, val); return 'OK'; },
    async expire(key) { return m.has(key) ? 1 : 0; },
    async del(keys) { let n = 0; for (const k of keys) n += m.delete(k) ? 1 : 0; return n; },
  };
}
const STORE_OPTS = JSON.parse(process.env.STORE_OPTS || '{}');
// TRUST=1: SET_IF's tag is taken as right unchecked, so that the count holds the app's work
// alone (sessd hashes the data it holds to check it; here that hash is the harness's).
const TRUST = process.env.TRUST === '1';
const N = 1000;
const OPS = +process.env.OPS || 30000;
const ROUNDS = +process.env.ROUNDS || 5;
const sids = Array.from({ length: N }, (_, i) => `sid-${i}-`.padEnd(32, 'x'));
const profile = {};
for (let i = 0; JSON.stringify(profile).length < (+process.env.PROFILE || 0); i++) profile[`field${i}`] = i % 3 ? `value of field ${i}` : { n: i, on: i % 2 === 0, tags: ['a', 'b'] };
const cart = Array.from({ length: +process.env.CART || 3 }, (_, i) => `product-${i}`);
let logins = 0;
async function login(store, sid) {
  const data = await p((cb) => store.get(sid, cb));
  const req = { sessionID: sid, sessionStore: store };
  req.session = store.createSession(req, data);
  await p((cb) => store.regenerate(req, cb));
  req.session.user = 'someone@example.com';
  req.session.cart = [...cart];
  await p((cb) => store.set(req.sessionID, req.session, cb));
  const m = store.client.m;
  m.set(sid, m.get(req.sessionID));
  m.delete(req.sessionID);
}
async function run(store, kind, ops = OPS) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < ops; i++) {
    const sid = sids[i % N];
    if (kind === 'login') {
      await login(store, sid);
      continue;
    }
    const data = await p((cb) => store.get(sid, cb));
    const sess = store.createSession({ sessionID: sid, sessionStore: store }, data);
    if (kind === 'add') sess.cart = [...sess.cart.slice(1), 'i' + i];
    sess.touch();
    if (kind === 'add') await p((cb) => store.set(sid, sess, cb));
    else await p((cb) => store.touch(sid, sess, cb));
  }
  return process.cpuUsage(c0).user / OPS;
}
(async () => {
  const stores = {};
  for (const [k, dir] of Object.entries(libs)) {
    if (ONLY && process.env.STORE === 'redis') {
      const { RedisStore } = require('connect-redis');
      stores[k] = new RedisStore({ client: fakeRedis(), prefix: 'x:' });
    } else {
      const { SessdStore, Client } = require(dir);
      const client = Object.assign(Object.create(Client.prototype), fakeClient());
      stores[k] = new SessdStore({ client, namespace: 'x', ...STORE_OPTS });
      // As express-session's middleware sets it (store.generate), for regenerate().
      const { Session, Cookie } = require(require.resolve('express-session', { paths: [dir] }));
      stores[k].generate = (req) => {
        req.sessionID = `sid-new-${logins++}-`.padEnd(32, 'y');
        req.session = new Session(req);
        req.session.cookie = new Cookie({ maxAge: 3600000 });
      };
    }
    for (const sid of sids) {
      const sess = stores[k].createSession({ sessionID: sid, sessionStore: stores[k] }, { cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000), httpOnly: true, path: '/' }, user: 'someone@example.com', ...(process.env.PROFILE ? { profile } : {}), cart: [...cart] });
      await p((cb) => stores[k].set(sid, sess, cb));
    }
    await run(stores[k], 'view', ONLY ? 3000 : OPS); await run(stores[k], 'add', ONLY ? 3000 : OPS);
    if (ONLY === 'login') await run(stores[k], 'login', 3000);
  }
  if (ONLY) {
    await run(stores.base, ONLY);
    return;
  }
  const res = { new: { view: [], add: [] }, base: { view: [], add: [] } };
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of r % 2 ? ['base', 'new'] : ['new', 'base']) for (const kind of ['view', 'add']) res[k][kind].push(await run(stores[k], kind));
  }
  const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  console.log(`user CPU per operation, medians of ${ROUNDS} rounds of ${OPS}, and of each round's ratio new / base:`);
  for (const kind of ['view', 'add']) console.log(kind, 'new', med(res.new[kind]).toFixed(1), 'us  base', med(res.base[kind]).toFixed(1), 'us  ratio', med(res.new[kind].map((v, i) => v / res.base[kind][i])).toFixed(2));
})();
