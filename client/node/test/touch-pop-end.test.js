'use strict';
// A page that shows a flash (flash.locals()) sends the touch express-session makes at the end
// of a request that changed nothing with its pop (the store's presave: a TOUCH_IF in the
// pop's round trip). A page answered more than a second after that touch was touched again at
// its end (savedShort: the response gives the browser a cookie maxAge from the response, later
// than the lifetime the touch gave), a round trip more. When the response sets no cookie (no
// rolling, the session unchanged) the browser keeps the cookie an earlier response sent, which
// ends no later than the lifetime the pop's touch gave, maxAge from the pop: the end's touch
// bought nothing. It is still sent when the response sets the cookie (rolling). Counted by a
// relay (test/waverelay.js) that holds each reply WAVE_DELAY_MS; what the visitor sees is
// checked too: sessd keeps the session as long as the browser keeps its cookie.
// test:express4: flash.locals() on pages Express answers.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, cookieExpiresMs, sleep } = require('./helpers');
const { waveRelay } = require('./waverelay');

const WAVE_DELAY_MS = 10;
const MAX_AGE = 3600000;
// How long the page takes after its pop: past the store's SAVED_RENEW_AFTER_MS (1 s).
const PAGE_MS = 1300;

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

async function shop(t, rolling) {
  const relay = await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), WAVE_DELAY_MS);
  t.after(() => relay.close());
  const store = new SessdStore({ url: relay.url, namespace: `touch-pop-end-${rolling}`, poolSize: 1 });
  t.after(() => store.close());
  await store.client.ready();
  const app = express();
  app.use(session({ store, secret: 'touch-pop-end', resave: false, saveUninitialized: false, rolling, cookie: { maxAge: MAX_AGE } }));
  app.use(flash());
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    req.flash('info', 'Welcome');
    res.redirect(303, '/slow');
  });
  // A flash's page that takes a while to render (a slow query after the pop).
  app.get('/slow', flash.locals(), (req, res) => sleep(PAGE_MS).then(() => res.json({ flash: res.locals.flash, user: req.session.user })));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  return { store, relay, b: new Browser(base) };
}

// sessdEndsMs(store, b): when sessd ends the browser's session at the latest, in ms since the
// epoch (its TTL read, then the clock: sessd read its own clock before its answer came, as in
// slow-after-save.test.js).
async function sessdEndsMs(store, b) {
  const sid = decodeURIComponent(b.cookies.get('connect.sid')).slice(2).split('.')[0];
  const left = await store.client.ttl(store.namespace, sid);
  return Date.now() + left;
}

for (const rolling of [false, true]) {
  test(`a flash's page answered ${PAGE_MS} ms after its pop (rolling ${rolling}): ${rolling ? 'touched again at its end, as the cookie it sends outlasts the pop\'s touch' : 'no touch at its end, as it sends no cookie'}`, async (t) => {
    const { store, relay, b } = await shop(t, rolling);
    const login = await b.post('/login');
    assert.equal(login.status, 303);
    let drops = cookieExpiresMs(login);
    relay.start();
    const r = await b.get('/slow');
    assert.deepEqual(JSON.parse(r.body), { flash: { info: ['Welcome'] }, user: 'ann' });
    // express-session ends the response once the end's touch is answered: it is counted.
    const all = relay.requests().flatMap((w) => w.requests).filter((q) => q.op === 'TOUCH' || q.op === 'TOUCH_IF');
    if (rolling) {
      drops = cookieExpiresMs(r);
      assert.equal(all.length, 2, `touches: ${all.length} (${relay.waves()} round trips)`);
    } else {
      assert.equal(r.headers['set-cookie'], undefined);
      assert.equal(all.length, 1, `touches: ${all.length} (${relay.waves()} round trips): the end touched a session whose cookie it did not renew`);
    }
    assert.ok(await sessdEndsMs(store, b) >= drops, 'sessd ends the session before the browser drops the cookie');
  });
}
