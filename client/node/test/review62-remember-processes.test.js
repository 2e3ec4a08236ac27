'use strict';
// test:express4: "remember me" across two processes and a slow page.
// A slow page under express-session takes, as it ends, the lifetime a save of its own process
// set since its read (adoptNewerLifetime: the browser's cookie). That lifetime is this
// process's latest, not sessd's: another process (a second worker of the site) may have set a
// newer one since, "remember me" turned off. The slow page's save must not write the older
// lifetime it took over that newer one in sessd. Two apps, each its own SessdStore (as two
// worker processes are), on one sessd and one namespace; and in one process, a cookie for the
// browser's session set after "remember me". About 2.5-3.5 s at load 5-6 (five cases, with the daemon's start).

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');
const { assertSetterMaxAge, Daemon, Browser, Gates, listen, closeServer, once } = require('./helpers');

const HOUR = 3600 * 1000;
const MONTH = 30 * 24 * HOUR;
let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// worker(t, ns, gates, opts): an Express app of the site on a SessdStore of its own; its base URL
// and store.
async function worker(t, ns, gates, opts) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  await once(store, 'connect');
  const a = express();
  a.use(session({ store, secret: 'review62-remember', name: 'sid', saveUninitialized: false, resave: false, cookie: { maxAge: HOUR }, ...opts }));
  a.post('/login', (req, res) => {
    req.session.user = 'ann';
    res.json({ sid: req.sessionID });
  });
  a.post('/remember', (req, res) => {
    req.session.remembered = req.query.on === '1';
    req.session.cookie.maxAge = req.query.on === '1' ? MONTH : HOUR;
    res.json({ ok: true });
  });
  a.get('/slow', async (req, res) => {
    await gates.hold('A');
    if (req.query.note) req.session.note = req.query.note;
    res.json({ user: req.session.user || null });
  });
  const { server, base } = await listen(a);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  return { base, store, app: a };
}

function ok(r) {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

for (const rolling of [false, true]) {
  for (const note of ['late', '']) {
    test(`express-session (rolling: ${rolling}): "remember me" turned off in another process after this one turned it on outlives a slow page${note ? ' that changes a key' : ''} read before both`, async (t) => {
      const ns = `review62-rp-${rolling}-${note}`;
      const gates = new Gates();
      const one = await worker(t, ns, gates, { rolling });
      const two = await worker(t, ns, gates, { rolling });
      const br = new Browser(one.base);
      const { sid } = ok(await br.request('POST', '/login', null, one.base));
      const slow = br.request('GET', `/slow?note=${note}`, null, one.base);
      await gates.arrived('A');
      ok(await br.request('POST', '/remember?on=1', null, one.base));
      ok(await br.request('POST', '/remember?on=0', null, two.base));
      gates.open('A');
      ok(await slow);
      const stored = JSON.parse((await one.store.client.get(ns, sid)).toString('utf8'));
      const ttl = await one.store.client.ttl(ns, sid);
      assert.equal(stored.note, note || undefined);
      assert.equal(stored.remembered, false);
      assertSetterMaxAge(stored.cookie.originalMaxAge, HOUR, `the stored cookie holds ${stored.cookie.originalMaxAge} ms: the slow page wrote its own process's older "remember me" over the other's "forget me"`);
      assert.ok(ttl <= HOUR, `sessd keeps the session ${ttl} ms`);
    });
  }
}

// In one process: "remember me" (30 days), then a cookie for the browser's session only
// (req.session.cookie.expires = false, express-session's way), then a slow page read before
// both ends and sends its cookie (rolling). The 30 days were the last lifetime noted, the
// browser's session one not being a lifetime noteLifetime could hand over: the slow page gave
// the browser a cookie of 30 days after the visitor had asked for none.
test('express-session (rolling: true): a cookie for the browser\'s session set after "remember me" is not undone in the browser by a slow page read before both', async (t) => {
  const ns = 'review62-rp-browser-session';
  const gates = new Gates();
  const one = await worker(t, ns, gates, { rolling: true });
  one.app.post('/browser-session', (req, res) => {
    req.session.cookie.expires = false;
    res.json({ ok: true });
  });
  const br = new Browser(one.base);
  ok(await br.request('POST', '/login', null, one.base));
  const slow = br.request('GET', '/slow', null, one.base);
  await gates.arrived('A');
  ok(await br.request('POST', '/remember?on=1', null, one.base));
  ok(await br.request('POST', '/browser-session', null, one.base));
  gates.open('A');
  const r = await slow;
  ok(r);
  const set = (r.headers['set-cookie'] || [])[0] || '';
  assert.match(set, /^sid=/);
  assert.doesNotMatch(set, /Expires=/, `the slow page sent ${set}`);
});
