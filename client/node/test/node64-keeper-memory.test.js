'use strict';
// What a @fastify/session site's read keeper (keepReads) holds, read adversarially at stop 64.
//
// Since stop 63 a read the keeper drops keeps its data for its token (the request's session
// object may still save over it). A read dropped behind the head of the keeper's order (past
// its session's share of the budget or KEPT_READS_PER_KEY: a page that polls, a visitor who
// reloads) stayed in that order, uncounted, until the head reached it or a compaction passed
// it: a visitor with a large session viewing pages (rolling: false, no save) behind another
// visitor's read left every one of those reads alive. Here a 400 KB session is viewed 40
// times (the session's share of the keeper 512 KiB): on stop 63's store the app's heap grew by
// about 16 MiB, the keeper counting 0.4 MiB.

const test = require('node:test');
const assert = require('node:assert/strict');
const v8 = require('node:v8');
const vm = require('node:vm');
const Fastify = require('fastify');
const { SessdStore } = require('..');
const { ReadKeeper } = require('../lib/store');
const { Daemon, Browser, once } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// settled(gc): the heap and buffers in use once collections free nothing more.
async function settled(gc) {
  let last = Infinity;
  for (let i = 0; i < 8; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    const m = process.memoryUsage();
    const now = m.heapUsed + m.arrayBuffers;
    if (Math.abs(now - last) < 256 * 1024) return now;
    last = now;
  }
  return last;
}

test('@fastify/session (rolling: false): a large session viewed again and again leaves the keeper within its bound', async (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'node64-keeper-memory', keepReads: true });
  await once(store, 'connect');
  // The defaults but a session's share: 512 KiB (one read of the 400 KB session), so that
  // what the keeper may hold stays small beside what the test looks for.
  store.keptReads = new ReadKeeper(undefined, undefined, 512 * 1024);
  const app = Fastify();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => done(null, {}));
  await app.register(require('@fastify/cookie'));
  await app.register(require('@fastify/session'), { secret: 'a-fastify-session-secret-of-32-chars-or-more', store, cookie: { secure: false }, saveUninitialized: false, rolling: false });
  app.post('/login', async (request) => {
    request.session.user = request.query.user;
    // A draft, a large cart, a report's filters: a session of 400 KB.
    if (request.query.kb) request.session.draft = 'd'.repeat(Number(request.query.kb) * 1024);
    return { ok: true };
  });
  app.get('/page', async (request) => ({ user: request.session.user ?? null }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => {
    await app.close();
    store.close();
  });
  const base = `http://127.0.0.1:${app.server.address().port}`;
  const other = new Browser(base);
  const big = new Browser(base);
  assert.equal((await other.post('/login?user=ann')).status, 200);
  assert.equal((await big.post('/login?user=bo&kb=400')).status, 200);
  // Another visitor's page view: its read, kept (no save), is the oldest in the keeper.
  assert.equal((await other.get('/page')).status, 200);
  for (let i = 0; i < 5; i++) assert.equal((await big.get('/page')).status, 200);
  const before = await settled(gc);
  for (let i = 0; i < 40; i++) assert.equal((await big.get('/page')).status, 200);
  const grew = (await settled(gc)) - before;
  const counted = store.keptReads.bytes;
  assert.ok(counted <= store.keptReads.keyBudgetBytes + 4096, `the keeper counts ${counted} bytes`);
  // The 512 KiB share the session may hold, and room for the runtime's own noise.
  assert.ok(grew < 6 * 1048576, `40 views of a 400 KB session grew the app's heap by ${(grew / 1048576).toFixed(1)} MiB; the keeper counts ${(counted / 1048576).toFixed(1)} MiB`);
});

test('the keeper\'s order holds the reads it counts and no other, through adds, claims, bounds and compactions', () => {
  // Sessions of up to 1.5 KB under 30 keys, a budget of 20 KB, a share of 3 KB, reads aging
  // out after 1 s of a made-up clock: every bound drops reads, and the order is compacted
  // both ways. Before stop 64 a read dropped behind the head stayed in the order (with its
  // data, since stop 63).
  let seed = 1;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 2; round++) {
    const k = new ReadKeeper(1000, 20000, 3000);
    const tokens = [];
    let now = 0;
    for (let i = 0; i < 10000; i++) {
      now += rnd(3);
      const op = rnd(10);
      if (op < 6) {
        const text = 'x'.repeat(10 + rnd(1500));
        tokens.push(k.add(`k${rnd(30)}`, text, text, now));
      } else if (op < 8 && tokens.length > 0) {
        const read = tokens.splice(rnd(tokens.length), 1)[0];
        if (read.data !== null) k.take(read);
      } else k.reads(`k${rnd(30)}`, now);
      let bytes = 0;
      let count = 0;
      for (let j = 0; j < k.order.length; j++) {
        const read = k.order[j];
        if (read === undefined) continue;
        assert.ok(j >= k.head && read.kept && read.at === k.base + j, `step ${i}: slot ${j} (head ${k.head}) holds a read dropped or out of place`);
        bytes += read.size;
        count++;
      }
      assert.deepEqual([bytes, count], [k.bytes, k.count], `step ${i}: the order's reads are not what the keeper counts`);
      for (const list of k.byKey.values()) for (const read of list) assert.equal(k.order[read.at - k.base], read, `step ${i}: a kept read is not at its place`);
    }
  }
});
