'use strict';
// A save queued behind this process's save of the same session (save-underway.test.js) starts
// from the bytes that save wrote: it expected what its request read, which the save ahead had
// just changed, so its first SET_IF always met a CONFLICT and cost a GET and a second SET_IF
// (bench/fair-contention.js, six tabs through a 20 ms relay: 11 SET_IFs for 6 saves). SET_IF
// still decides: a basis another writer has changed since costs the CONFLICT it cost before,
// a session destroyed meanwhile stays destroyed. The bytes are kept only while a save of the
// session is under way in this process.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore, Client } = require('..');
const { Daemon, sealedDaemon, countCalls } = require('./helpers');

const SECRET = 'save-basis-secret';

let daemon;
let sealed;
test.before(async () => {
  daemon = await new Daemon().start();
  sealed = await sealedDaemon(SECRET);
});
test.after(async () => {
  await daemon.cleanup();
  await sealed.cleanup();
});

// call(fn): fn(cb)'s callback as a promise (the store's calls as express-session makes them).
function call(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

function hourCookie() {
  return { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' };
}

// store(t, namespace, opts): a started store on the plain daemon (or opts.url's), closed after t.
async function store(t, namespace, opts = {}) {
  const s = new SessdStore({ url: daemon.unixUrl, namespace, poolSize: 1, ...opts });
  t.after(() => s.close());
  await s.client.ready();
  return s;
}

// tabs(s, sid, n): n requests' reads of the session sid, as each tab's get() at once.
function tabs(s, sid, n) {
  return Promise.all(Array.from({ length: n }, () => call((cb) => s.get(sid, cb))));
}

// onSetIf(client, n, action): action() is awaited before the client's nth SET_IF goes out
// (another writer's change made between this process's saves).
function onSetIf(client, n, action) {
  const setIf = client.setIf;
  let calls = 0;
  client.setIf = async function held(...args) {
    if (++calls === n) await action();
    return setIf.apply(this, args);
  };
}

// A cart a tab adds to, merged (as the README's mergeKey example).
const union = (key, base, mine, theirs) => (key === 'cart' ? [...new Set([...(theirs || []), ...(mine || []).filter((x) => !(base || []).includes(x))])] : mine);

for (const seal of [false, true]) {
  test(`six tabs' saves of one session queued on one process${seal ? ', sealed connections' : ''}: one SET_IF each, no GET`, async (t) => {
    const s = await store(t, `six-${seal}`, seal ? { url: sealed.unixUrl, auth: SECRET } : {});
    assert.equal(s.client.seal, seal);
    await call((cb) => s.set('six', { cookie: hourCookie(), user: 'ann' }, cb));
    const read = await tabs(s, 'six', 6);
    read.forEach((sess, i) => (sess[`tab${i}`] = i));
    const ops = countCalls(s.client, ['setIf', 'get']);
    await Promise.all(read.map((sess) => call((cb) => s.set('six', sess, cb))));
    assert.deepEqual(ops, Array(6).fill('setIf'), `sent ${ops.join(', ')}`);
    const after = await call((cb) => s.get('six', cb));
    for (let i = 0; i < 6; i++) assert.equal(after[`tab${i}`], i);
    assert.equal(s.lastWritten.size, 0, 'the bytes kept are dropped as the queue empties');
  });
}

test('the bytes kept are those the SET_IF sent, and only while saves of the session are under way', async (t) => {
  const s = await store(t, 'bound');
  const sent = [];
  const setIf = s.client.setIf;
  s.client.setIf = function recorded(ns, id, data, ...rest) {
    const p = setIf.call(this, ns, id, data, ...rest);
    sent.push({ id, data: Buffer.from(data), p });
    return p;
  };
  const sids = Array.from({ length: 20 }, (_, i) => `bound-${i}`);
  for (const sid of sids) await call((cb) => s.set(sid, { cookie: hourCookie(), user: sid }, cb));
  const reads = await Promise.all(sids.map((sid) => tabs(s, sid, 3)));
  reads.forEach((read) => read.forEach((sess, i) => (sess[`tab${i}`] = i)));
  const saves = reads.flatMap((read, k) => read.map((sess) => call((cb) => s.set(sids[k], sess, cb))));
  // Once the first save of each session is answered, its bytes wait for the saves behind it.
  await Promise.all(sent.slice(0, sids.length).map((x) => x.p));
  await new Promise(setImmediate);
  assert.ok(s.lastWritten.size > 0 && s.lastWritten.size <= s.savesUnderway.size, `${s.lastWritten.size} kept, ${s.savesUnderway.size} queues`);
  for (const [key, bytes] of s.lastWritten) {
    const own = sent.filter((x) => x.id === key);
    assert.ok(own.some((x) => x.data.equals(bytes)), `${key}: the bytes kept are a SET_IF's`);
  }
  await Promise.all(saves);
  assert.equal(s.lastWritten.size, 0, 'none kept once the saves settled');
  assert.equal(s.savesUnderway.size, 0);
  // A save that no queue holds (a touch saving a cookie set alone: "remember me") keeps none.
  const sess = await call((cb) => s.get(sids[0], cb));
  sess.cookie = { ...sess.cookie, originalMaxAge: 30 * 24 * 3600000, expires: new Date(Date.now() + 30 * 24 * 3600000).toISOString() };
  const before = sent.length;
  await call((cb) => s.touch(sids[0], sess, cb));
  assert.equal(sent.length, before + 1, 'the touch saved the cookie with SET_IF');
  assert.equal(s.lastWritten.size, 0, 'a save outside any queue keeps nothing');
});

for (const writer of ['another process', 'a direct client']) {
  test(`a basis ${writer} changed since: the CONFLICT, then a merge over what sessd holds, nothing lost`, async (t) => {
    const s = await store(t, `stale-${writer}`, { mergeKey: union });
    await call((cb) => s.set('stale', { cookie: hourCookie(), user: 'ann', cart: [] }, cb));
    const read = await tabs(s, 'stale', 3);
    read.forEach((sess, i) => (sess.cart = [...sess.cart, `tab${i}`]));
    // Between the first save and the second: another writer adds to the cart.
    onSetIf(s.client, 2, async () => {
      if (writer === 'another process') {
        const other = await store(t, `stale-${writer}`, { mergeKey: union });
        const sess = await call((cb) => other.get('stale', cb));
        sess.cart = [...sess.cart, 'other'];
        await call((cb) => other.set('stale', sess, cb));
        return;
      }
      const c = new Client({ url: daemon.unixUrl });
      t.after(() => c.close());
      const now = JSON.parse((await c.get(`stale-${writer}`, 'stale')).toString('utf8'));
      now.cart.push('other');
      await c.set(`stale-${writer}`, 'stale', Buffer.from(JSON.stringify(now)), 3600000);
    });
    const ops = countCalls(s.client, ['setIf', 'get']);
    await Promise.all(read.map((sess) => call((cb) => s.set('stale', sess, cb))));
    // The first save's, the second's CONFLICT, GET and SET_IF, then the third's from that.
    assert.deepEqual(ops, ['setIf', 'setIf', 'get', 'setIf', 'setIf'], `sent ${ops.join(', ')}`);
    const after = await call((cb) => s.get('stale', cb));
    assert.deepEqual([...after.cart].sort(), ['other', 'tab0', 'tab1', 'tab2']);
  });
}

for (const flashes of [false, true]) {
  test(`the session destroyed between a save and the one queued behind it${flashes ? ', then a flash pushed to its id' : ''}: 'gone', not brought back`, async (t) => {
    const ns = `gone-${flashes}`;
    const s = await store(t, ns);
    await call((cb) => s.set('gone', { cookie: hourCookie(), user: 'ann' }, cb));
    const read = await tabs(s, 'gone', 3);
    read.forEach((sess, i) => (sess[`tab${i}`] = i));
    const c = new Client({ url: daemon.unixUrl });
    t.after(() => c.close());
    onSetIf(s.client, 2, async () => {
      await c.destroy(ns, 'gone');
      // A session that holds flashes and no data (FLASH_PUSH to an id with none makes one).
      if (flashes) await c.flashPush(ns, 'gone', 'info', 'signed out', 3600000);
    });
    const gone = [];
    s.on('gone', (sid, sess) => gone.push(read.indexOf(sess)));
    const ops = countCalls(s.client, ['setIf', 'get']);
    await Promise.all(read.map((sess) => call((cb) => s.set('gone', sess, cb))));
    assert.deepEqual(gone, [1, 2]);
    assert.deepEqual(ops, ['setIf', 'setIf', 'setIf'], `sent ${ops.join(', ')}`);
    assert.equal(await c.get(ns, 'gone'), null, 'no data brought back');
    if (flashes) assert.deepEqual(await c.flashPop(ns, 'gone', 'info'), ['signed out']);
  });
}

test('mergeKey gets the request\'s read base, not the bytes of the save ahead of it', async (t) => {
  const calls = [];
  // A counter each tab adds one to: mine - base added to theirs.
  const mergeKey = (key, base, mine, theirs) => {
    calls.push({ key, base, mine, theirs });
    return key === 'views' ? theirs + (mine - base) : mine;
  };
  const s = await store(t, 'counter', { mergeKey });
  await call((cb) => s.set('views', { cookie: hourCookie(), views: 10 }, cb));
  const read = await tabs(s, 'views', 6);
  for (const sess of read) sess.views++;
  const ops = countCalls(s.client, ['setIf', 'get']);
  await Promise.all(read.map((sess) => call((cb) => s.set('views', sess, cb))));
  assert.equal((await call((cb) => s.get('views', cb))).views, 16);
  assert.deepEqual(calls.map((c) => [c.base, c.mine, c.theirs]), [[10, 11, 11], [10, 11, 12], [10, 11, 13], [10, 11, 14], [10, 11, 15]]);
  assert.deepEqual(ops, Array(6).fill('setIf'), `sent ${ops.join(', ')}`);
});

test('a queued save that changed nothing (TOUCH_IF) records nothing; the save behind it starts from the one before', async (t) => {
  const s = await store(t, 'touched');
  await call((cb) => s.set('touched', { cookie: hourCookie(), user: 'ann' }, cb));
  const read = await tabs(s, 'touched', 3);
  read[0].cart = ['pear'];
  read[2].views = 1;
  const ops = countCalls(s.client, ['setIf', 'touchIf', 'get']);
  await Promise.all(read.map((sess) => call((cb) => s.set('touched', sess, cb))));
  // The touch goes out beside the first save (it waits for none) and meets its write as a
  // CONFLICT, as before; the third save, queued behind both, starts from the first's bytes.
  assert.equal(ops.filter((op) => op === 'setIf').length, 2, `sent ${ops.join(', ')}`);
  assert.deepEqual(ops.slice(0, 2), ['setIf', 'touchIf'], `sent ${ops.join(', ')}`);
  const after = await call((cb) => s.get('touched', cb));
  assert.deepEqual(after.cart, ['pear']);
  assert.equal(after.views, 1);
  assert.equal(s.lastWritten.size, 0);
});
