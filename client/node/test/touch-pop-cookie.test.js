'use strict';
// A page that shows a flash (flash.locals()) and sets its session's cookie lifetime alone
// ("remember me": req.session.cookie.maxAge) while the touch its pop sent early (the store's
// presave, a TOUCH_IF behind the pop) is on its way: the store recorded the cookie as saved
// when that TOUCH_IF's reply came, by then the page's new one, though the touch wrote no
// cookie. That is every such page, not only a loaded machine's: the touch's reply comes in the
// pop's chunk, and the page runs before the touch's promise settles. The end of the request
// took the new cookie for saved and only touched (10 minutes): sessd kept the session's data
// with the 1-minute cookie, so the next page view (rolling: express-session sends the cookie
// with each response; without it, a cookie changed alone is never sent) read that cookie,
// sent the browser 1 minute and touched the session to it: "remember me" lasted one page. A
// relay may hold each TOUCH_IF's reply (and those behind it) HOLD_MS, so that the change
// surely lands between the touch's send and its reply whatever the machine's load.
// test:express4: flash.locals() on pages Express answers.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, codec } = require('..');
const { Daemon, Browser, listen, closeServer, frameProxy, cookieExpiresMs } = require('./helpers');

const OP_NAME = Object.fromEntries(Object.entries(codec.OP).map(([name, op]) => [op, name]));
const SHORT = 60000;
const LONG = 600000;
const HOLD_MS = 200;

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// holdingStore(t, namespace): a store behind a relay that, while hold.on, holds the reply to
// each TOUCH_IF HOLD_MS, and every reply behind it (sessd answers in order); hold.touches
// counts the TOUCH_IFs sent while hold.on.
async function holdingStore(t, namespace) {
  const hold = { on: false, touches: 0 };
  const { url } = await frameProxy(t, daemon.sock, {
    onRequest: (frame, pair) => {
      const op = OP_NAME[codec.decodeRequest(frame).op];
      (pair.ops || (pair.ops = [])).push(op);
      if (hold.on && op === 'TOUCH_IF') hold.touches++;
      return frame;
    },
    onReply: (frame, pair) => {
      const op = pair.ops.shift();
      if (pair.held) {
        pair.held.push(frame);
        return Buffer.alloc(0);
      }
      if (!(hold.on && op === 'TOUCH_IF')) return frame;
      pair.held = [frame];
      setTimeout(() => {
        const held = pair.held;
        pair.held = null;
        if (!pair.down.destroyed) pair.down.write(Buffer.concat(held));
      }, HOLD_MS);
      return Buffer.alloc(0);
    },
  });
  const store = new SessdStore({ url, namespace, poolSize: 1 });
  t.after(() => store.close());
  return { store, hold };
}

async function shop(t, namespace) {
  const { store, hold } = await holdingStore(t, namespace);
  const app = express();
  app.use(session({ store, secret: 'touch-pop-cookie', resave: false, saveUninitialized: false, rolling: true, cookie: { maxAge: SHORT } }));
  app.use(flash());
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    req.flash('info', 'Welcome');
    res.redirect(303, '/remember');
  });
  // The flash's page, where the visitor ticks "remember me".
  app.get('/remember', flash.locals(), (req, res) => {
    req.session.cookie.maxAge = LONG;
    res.json({ flash: res.locals.flash });
  });
  app.get('/', (req, res) => res.json({ user: req.session.user || null }));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  return { store, hold, b: new Browser(base) };
}

// sessdEndsMs(store, b): when sessd ends the browser's session at the latest, in ms since the
// epoch (its TTL read, then the clock: the late side).
async function sessdEndsMs(store, b) {
  const sid = decodeURIComponent(b.cookies.get('connect.sid')).slice(2).split('.')[0];
  const left = await store.client.ttl(store.namespace, sid);
  return Date.now() + left;
}

for (const held of [true, false]) {
  test(`remember me on a flash's page, the pop's touch answered ${held ? `${HOLD_MS} ms late` : 'as sessd answers'}: sessd keeps the session as long as the browser keeps the cookie`, async (t) => {
    const { store, hold, b } = await shop(t, `touch-pop-cookie-${held}`);
    assert.equal((await b.post('/login')).status, 303);
    hold.on = held;
    const r = await b.get('/remember');
    hold.on = false;
    assert.deepEqual(JSON.parse(r.body), { flash: { info: ['Welcome'] } });
    if (held) assert.ok(hold.touches >= 1, 'the pop sent no TOUCH_IF: the test shows nothing');
    const drops = cookieExpiresMs(r);
    assert.ok(drops - Date.now() > SHORT * 2, `the response's cookie ends in ${drops - Date.now()} ms, not the 10 minutes set`);
    assert.ok(await sessdEndsMs(store, b) >= drops, 'after the page that set it: sessd ends the session before the browser drops the cookie');
    // The next page view renews the cookie as stored: still the 10-minute one.
    const next = await b.get('/');
    assert.deepEqual(JSON.parse(next.body), { user: 'ann' });
    const nextDrops = cookieExpiresMs(next);
    assert.ok(nextDrops - Date.now() > SHORT * 2, `after the next page view the browser's cookie ends in ${nextDrops - Date.now()} ms: "remember me" lost`);
    assert.ok(await sessdEndsMs(store, b) >= nextDrops, 'after the next page view: sessd ends the session before the browser drops the cookie');
  });
}

// The same for a whole save (merge: false) of a session read from sessd: the app's
// req.session.save(cb) not waited for before it set the cookie's maxAge (the redirect in the
// callback). The store recorded the cookie as saved when the SET's reply came, by then the new
// one; the end only touched (express-session leaves the cookie out of its change check), and
// the next page view read the 1-minute cookie the SET wrote.
test('remember me set just after req.session.save() (merge: false): sessd keeps the session as long as the browser keeps the cookie', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'touch-save-cookie', merge: false });
  t.after(() => store.close());
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: 'touch-pop-cookie', resave: false, saveUninitialized: false, rolling: true, cookie: { maxAge: SHORT } }));
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.redirect(303, '/');
  });
  app.post('/remember', (req, res, next) => {
    req.session.save((err) => (err ? next(err) : res.redirect(303, '/')));
    req.session.cookie.maxAge = LONG;
  });
  app.get('/', (req, res) => res.json({ user: req.session.user || null }));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const b = new Browser(base);
  assert.equal((await b.post('/login')).status, 303);
  const r = await b.post('/remember');
  assert.equal(r.status, 303);
  assert.ok(cookieExpiresMs(r) - Date.now() > SHORT * 2, 'the response did not send the 10-minute cookie');
  const next = await b.get('/');
  assert.deepEqual(JSON.parse(next.body), { user: 'ann' });
  const drops = cookieExpiresMs(next);
  assert.ok(drops - Date.now() > SHORT * 2, `after the next page view the browser's cookie ends in ${drops - Date.now()} ms: "remember me" lost`);
  assert.ok(await sessdEndsMs(store, b) >= drops, 'after the next page view: sessd ends the session before the browser drops the cookie');
});
