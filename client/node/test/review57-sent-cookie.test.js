'use strict';
// A flash's page answered over a second after its pop is touched again at its end only when its
// response sets the session's cookie (the store's sentNoCookie reads the response's Set-Cookie
// for the session id): a cookie it fails to see there is a touch left out, and sessd ends the
// session before the browser drops the cookie the response sent. Checked where the reading could
// go wrong: a cookie name of the app's own, a genid whose ids hold characters that the cookie's
// URI encoding changes, and other cookies the app sets beside it (Set-Cookie read back as an
// array, or set by res.writeHead's headers). Counted by a relay (test/waverelay.js) as in
// touch-pop-end.test.js.
// test:express4: reads the Set-Cookie that Express's res.cookie writes.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, sleep } = require('./helpers');
const { waveRelay } = require('./waverelay');

const WAVE_DELAY_MS = 10;
const MAX_AGE = 3600000;
// How long the page takes after its pop: past the store's SAVED_RENEW_AFTER_MS (1 s).
const PAGE_MS = 1300;
const NAME = 'shop.sid';

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// An id with characters encodeURIComponent changes (space, '/', '+', '=', '%', 'é', ';').
function oddId() {
  return `a b/c+d=e%f;é-${crypto.randomBytes(12).toString('hex')}`;
}

async function shop(t, rolling, extra) {
  const relay = await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), WAVE_DELAY_MS);
  t.after(() => relay.close());
  const store = new SessdStore({ url: relay.url, namespace: `review57-sent-cookie-${rolling}-${extra}`, poolSize: 1 });
  t.after(() => store.close());
  await store.client.ready();
  const app = express();
  app.use(session({ store, name: NAME, genid: oddId, secret: 'review57', resave: false, saveUninitialized: false, rolling, cookie: { maxAge: MAX_AGE } }));
  app.use(flash());
  app.post('/login', (req, res) => {
    req.session.user = 'ann';
    req.flash('info', 'Welcome');
    res.redirect(303, '/slow');
  });
  app.get('/slow', flash.locals(), (req, res) => sleep(PAGE_MS).then(() => {
    const body = JSON.stringify({ flash: res.locals.flash, user: req.session.user });
    if (extra === 'array') {
      res.cookie('theme', 'dark');
      res.cookie('lang', 'en');
      res.type('json').end(body);
    } else if (extra === 'string') {
      res.setHeader('Set-Cookie', 'theme=dark; Path=/');
      res.type('json').end(body);
    } else {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Set-Cookie': 'theme=dark; Path=/' });
      res.end(body);
    }
  }));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  return { store, relay, b: new Browser(base) };
}

// sessionCookie(r): the response's Set-Cookie of the session, or undefined.
function sessionCookie(r) {
  return (r.headers['set-cookie'] || []).find((c) => c.startsWith(`${encodeURIComponent(NAME)}=`));
}

function expiresMs(cookie) {
  const m = /Expires=([^;]+)/.exec(cookie || '');
  if (!m) throw new Error(`no session cookie with an Expires: ${cookie}`);
  return Date.parse(m[1]);
}

// sessdEndsMs(store, b): when sessd ends the browser's session at the latest (its TTL read,
// then the clock).
async function sessdEndsMs(store, b) {
  const signed = decodeURIComponent(b.cookies.get(encodeURIComponent(NAME)));
  const sid = signed.slice(2, signed.lastIndexOf('.'));
  const left = await store.client.ttl(store.namespace, sid);
  assert.ok(left > 0, `sessd holds no session ${JSON.stringify(sid.slice(0, 14))}...`);
  return Date.now() + left;
}

for (const extra of ['array', 'string', 'writeHead']) {
  for (const rolling of [true, false]) {
    test(`a flash's page answered late, cookie "${NAME}", ids URI encoding changes, other cookies by ${extra} (rolling ${rolling}): ${rolling ? 'its cookie seen, touched at its end' : 'no cookie, no touch at its end'}`, async (t) => {
      const { store, relay, b } = await shop(t, rolling, extra);
      const login = await b.post('/login');
      assert.equal(login.status, 303);
      let drops = expiresMs(sessionCookie(login));
      relay.start();
      const r = await b.get('/slow');
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { flash: { info: ['Welcome'] }, user: 'ann' });
      assert.ok((r.headers['set-cookie'] || []).some((c) => c.startsWith('theme=dark')), 'the app\'s own cookie went out');
      const touches = relay.requests().flatMap((w) => w.requests).filter((q) => q.op === 'TOUCH' || q.op === 'TOUCH_IF');
      if (rolling) {
        drops = expiresMs(sessionCookie(r));
        assert.equal(touches.length, 2, `touches: ${touches.length}: the end did not renew a session whose cookie the response sent`);
      } else {
        assert.equal(sessionCookie(r), undefined);
        assert.equal(touches.length, 1, `touches: ${touches.length}`);
      }
      assert.ok(await sessdEndsMs(store, b) >= drops, 'sessd ends the session before the browser drops the cookie');
    });
  }
}
