'use strict';
// The store layer's own work per @fastify/session request, as store-layer.js measures
// express-session's: get() answered from a Map (no socket, no daemon), the copy
// @fastify/session makes of it (its own Session class, from DIR's node_modules), and set().
// ONLY=view: a page view under rolling: true (a save that changes nothing but the cookie's
// renewal); ONLY=add: a cart add. A measuring harness, not a test.
//
//   ONLY=view OPS=N node --predictable fastify-layer.js DIR   (DIR: a checkout's client/node)
//
// For instruction counts run it under cachegrind at two OPS and divide the difference (see
// bench/README.md, store-layer.js): stop 63 measured 275,858 (main) and 272,103 a page view,
// 284,044 and 272,576 a cart add.
const path = require('path');
const dir = path.resolve(process.argv[2]);
const { SessdStore, dataTag } = require(dir);
const Session = require(path.join(dir, 'node_modules/@fastify/session/lib/session.js'));
const m = new Map();
const client = {
  async load(ns, id) { const d = m.get(id); return d ? { data: d, flashes: 0 } : null; },
  async get(ns, id) { return m.get(id) || null; },
  async set(ns, id, data) { m.set(id, Buffer.from(data)); return 'ok'; },
  async setIf(ns, id, data, ttl, expect) { const d = m.get(id); if (!d) return 'not_found'; if (!dataTag(d).equals(expect)) return 'conflict'; m.set(id, Buffer.from(data)); return 'ok'; },
  async touchIf() { return 'ok'; }, async touch() { return true; }, async ttlIfKnown() { return 3600000; },
  request() {}, flashPush() {}, close() {}, on() {}, off() {}, once() {}, emit() {}, removeListener() {},
};
const store = new SessdStore({ client, keepReads: true });
const signer = { sign: (v) => v, unsign: (v) => ({ valid: true, value: v }) };
const N = 1000;
const sids = Array.from({ length: N }, (_, i) => `sid-${i}-`.padEnd(32, 'x'));
const p = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
async function once(kind, i) {
  const sid = sids[i % N];
  const read = await p((cb) => store.get(sid, cb));
  const sess = new Session(store, {}, () => sid, { maxAge: 3600000, secure: false }, signer, read, sid);
  if (kind === 'add') sess.cart = [...(sess.cart || []), `item${i % 7}`].slice(-3);
  await p((cb) => store.set(sid, sess, cb));
}
(async () => {
  for (const sid of sids) m.set(sid, Buffer.from(JSON.stringify({ cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), secure: false, path: '/', httpOnly: true }, user: 'ann', cart: ['a', 'b'] })));
  for (let i = 0; i < 3000; i++) { await once('view', i); await once('add', i); }
  const ops = +process.env.OPS;
  for (let i = 0; i < ops; i++) await once(process.env.ONLY, i);
})();
