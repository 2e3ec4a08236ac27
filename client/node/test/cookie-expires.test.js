'use strict';
// An absolute cookie expiry: an app that ends its sessions at a fixed instant sets
// req.session.cookie.expires on each request (express-session's `expires` option slides
// like maxAge, its touch resetting the cookie to originalMaxAge from now). express-session
// computes originalMaxAge from that instant, so it shrinks by the time between pages; the
// store took that for a cookie this request changed and saved the whole session (SET_IF)
// on every page instead of touching it. What the store sends is counted by a proxy in front
// of the real daemon, on Express 4 and Express 5.

const test = require('node:test');
const assert = require('node:assert/strict');
const session = require('express-session');
const { SessdStore, codec } = require('..');
const { Daemon, Browser, listen, closeServer, frameProxy, sleep } = require('./helpers');

const { OP } = codec;
const OP_NAME = Object.fromEntries(Object.entries(OP).map(([name, op]) => [op, name]));
const HOUR = 3600 * 1000;
const MAJORS = [
  { name: 'Express 4', express: require('express4') },
  { name: 'Express 5', express: require('express') },
];
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// countingStore(t, namespace): a store whose requests pass through a proxy that names each
// opcode the daemon is sent, in order, in ops.
async function countingStore(t, namespace) {
  const ops = [];
  const { url } = await frameProxy(t, daemon.sock, {
    onRequest: (frame) => {
      ops.push(OP_NAME[codec.decodeRequest(frame).op]);
      return frame;
    },
  });
  const store = new SessdStore({ url, namespace });
  t.after(() => store.client.terminate());
  return { store, ops };
}

// A shop whose sessions end at `end` whatever the visitor does: the middleware sets the
// cookie's absolute expiry on every request; POST /end moves it.
function makeApp(express, store, state) {
  const app = express();
  app.use(session({ store, secret: 'cookie-expires-test', name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: HOUR } }));
  app.use((req, res, next) => {
    req.session.cookie.expires = state.end;
    next();
  });
  app.post('/login', (req, res) => {
    req.session.user = 'ada';
    res.json({ sid: req.sessionID });
  });
  app.get('/page', (req, res) => res.json({ user: req.session.user || null }));
  return app;
}

for (const major of MAJORS) {
  // express-session's own `expires` option: its touch slides the cookie by originalMaxAge, so
  // originalMaxAge stays put and pages were touched already; kept here so that it stays so.
  test(`${major.name}: a page that changes nothing under the cookie option expires is touched, not saved`, async (t) => {
    const { store, ops } = await countingStore(t, `cookie-expires-option-${major.name.replace(' ', '')}`);
    const app = major.express();
    app.use(session({ store, secret: 'cookie-expires-test', name: 'sid', resave: false, saveUninitialized: false, cookie: { expires: new Date(Date.now() + 2 * HOUR) } }));
    app.post('/login', (req, res) => {
      req.session.user = 'ada';
      res.json({ sid: req.sessionID });
    });
    app.get('/page', (req, res) => res.json({ user: req.session.user || null }));
    const { server, base } = await listen(app);
    t.after(() => closeServer(server));
    const b = new Browser(base);
    await b.post('/login');
    await sleep(1100);
    ops.length = 0;
    assert.deepEqual(JSON.parse((await b.get('/page')).body), { user: 'ada' });
    await store.client.ping();
    assert.deepEqual(ops.filter((op) => op !== 'PING'), ['LOAD', 'TOUCH_IF']);
  });

  test(`${major.name}: a page that changes nothing under an absolute cookie.expires is touched, not saved`, async (t) => {
    const { store, ops } = await countingStore(t, `cookie-expires-${major.name.replace(' ', '')}`);
    const state = { end: new Date(Date.now() + 2 * HOUR) };
    const { server, base } = await listen(makeApp(major.express, store, state));
    t.after(() => closeServer(server));
    const b = new Browser(base);
    const { sid } = JSON.parse((await b.post('/login')).body);
    const pages = async () => {
      const seen = [];
      for (let i = 0; i < 2; i++) {
        // More than a second between pages: express-session's originalMaxAge (end - now)
        // then differs by more than its own millisecond drift.
        await sleep(1100);
        ops.length = 0;
        const r = await b.get('/page');
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body), { user: 'ada' });
        // express-session touches from res.end, after the body went out.
        await store.client.ping();
        seen.push(ops.filter((op) => op !== 'PING'));
      }
      return seen;
    };
    assert.deepEqual(await pages(), [['LOAD', 'TOUCH_IF'], ['LOAD', 'TOUCH_IF']]);
    // sessd keeps the session until that instant.
    // sessd read its clock after asked and before answered: it ends the session no later than
    // asked + ttl and no earlier than answered + ttl. Both sides taken from one clock read after
    // the answer made the upper bound fail once the TTL request itself waited a second (load).
    const asked = Date.now();
    const ttl = await store.client.ttl(store.namespace, sid);
    const answered = Date.now();
    assert.ok(asked + ttl <= state.end.getTime() + 1000 && answered + ttl > state.end.getTime() - 60000, `sessd ends the session ${asked + ttl - state.end.getTime()} to ${answered + ttl - state.end.getTime()} ms after the cookie's end (allowed: -60000 to 1000)`);

    // A new end is a change of the cookie: the first page saves it, the next ones touch.
    state.end = new Date(Date.now() + 3 * HOUR);
    assert.deepEqual(await pages(), [['LOAD', 'SET_IF'], ['LOAD', 'TOUCH_IF']]);
    const stored = JSON.parse(await store.client.get(store.namespace, sid));
    // (express-session's touch recomputes the end from originalMaxAge: a millisecond off.)
    assert.ok(Math.abs(Date.parse(stored.cookie.expires) - state.end) <= 1000, stored.cookie.expires);
    assert.equal(stored.user, 'ada');
  });
}
