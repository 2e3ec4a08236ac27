'use strict';
// test:express4: "remember me" and a slow page under express-session.
// express-session on a SessdStore: "remember me" (cookie.maxAge set to 30 days, with the user's
// choice saved) in one tab while a slow page of the same session, loaded before it, is still
// running. The store's merge kept the 30 days in sessd and in the stored cookie whatever the
// slow page did (adoptLifetime, renewConflicted); but express-session decides the browser's
// cookie as it calls the store's set() or touch() at the end of the request, and writes the
// headers at once, before sessd has answered: whenever it sent the slow page's cookie
// (rolling: true, or a slow page that changed the session) that cookie held the hour the page
// had read, and a visitor who then only read pages (rolling: false) was signed out after the
// hour with sessd still holding the session for 30 days. The store now gives such a request,
// as set() or touch() is called, the lifetime a save made in this process since its read set
// (see README.md, "Expiry": another process's save is not seen there). About 2 s.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');
const { assertSetterMaxAge, Daemon, Browser, Gates, listen, closeServer, once } = require('./helpers');

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const MONTH = 30 * DAY;
let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

// app(t, ns, opts): an Express app on a SessdStore of namespace ns (opts: express-session's
// rolling and resave), and a Browser of it that remembers the Expires of the last cookie a
// response set (browser.cookieEnd).
async function app(t, ns, opts) {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
  await once(store, 'connect');
  const gates = new Gates();
  const a = express();
  a.use(session({ store, secret: 'apps62-express', name: 'sid', saveUninitialized: false, cookie: { maxAge: HOUR }, ...opts }));
  a.post('/login', (req, res) => {
    req.session.user = req.query.user;
    if (req.query.remember) req.session.cookie.maxAge = MONTH;
    res.json({ sid: req.sessionID });
  });
  // "Keep me signed in" ticked or unticked on a settings page: the choice saved with it.
  a.post('/remember', (req, res) => {
    req.session.remembered = req.query.on === '1';
    req.session.cookie.maxAge = req.query.on === '1' ? MONTH : HOUR;
    res.json({ ok: true });
  });
  a.get('/slow', async (req, res) => {
    await gates.hold(req.query.name);
    if (req.query.note) req.session.note = req.query.note;
    res.json({ user: req.session.user || null });
  });
  a.get('/page', (req, res) => res.json({ user: req.session.user || null, note: req.session.note || null }));
  const { server, base } = await listen(a);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  const br = new Browser(base);
  br.cookieEnd = null;
  const request = br.request.bind(br);
  br.request = async (...args) => {
    const r = await request(...args);
    const set = (r.headers['set-cookie'] || [])[0];
    if (set) br.cookieEnd = Date.parse(/Expires=([^;]+)/.exec(set)[1]);
    return r;
  };
  return { store, gates, br };
}

// ends(store, ns, sid, br): how long from now sessd, the stored cookie and the browser's keep
// the session.
async function ends(store, ns, sid, br) {
  const now = Date.now();
  const stored = JSON.parse((await store.client.get(ns, sid)).toString('utf8')).cookie;
  return { ttl: await store.client.ttl(ns, sid), maxAge: stored.originalMaxAge, browser: br.cookieEnd - now };
}

function ok(r) {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body);
}

for (const rolling of [false, true]) {
  for (const resave of [false, true]) {
    for (const note of ['', 'late']) {
      test(`express-session (rolling: ${rolling}, resave: ${resave}): "remember me" set in one tab outlives a slow page${note ? ' that changes a key' : ''} loaded before it`, async (t) => {
        const ns = `apps62-ex-${rolling}-${resave}-${note}`;
        const { store, gates, br } = await app(t, ns, { rolling, resave });
        const { sid } = ok(await br.post('/login?user=ann'));
        const slow = br.get(`/slow?name=A&note=${note}`);
        await gates.arrived('A');
        ok(await br.post('/remember?on=1'));
        gates.open('A');
        assert.equal(ok(await slow).user, 'ann');
        const after = await ends(store, ns, sid, br);
        assertSetterMaxAge(after.maxAge, MONTH, JSON.stringify(after));
        assert.ok(after.ttl > 29 * DAY, `sessd keeps the session ${after.ttl} ms`);
        assert.ok(after.browser > 29 * DAY, `the browser keeps its cookie ${after.browser} ms: "remember me" ends with the hour the slow page read (${JSON.stringify(after)})`);
        assert.equal(ok(await br.get('/page')).note, note || null);
      });
    }
  }
}

// Unticked in one tab while a slow page of the 30 days runs: the hour stands, in the browser too.
for (const rolling of [false, true]) {
  test(`express-session (rolling: ${rolling}): "remember me" turned off in one tab stays off after a slow page that changes a key`, async (t) => {
    const ns = `apps62-ex-forget-${rolling}`;
    const { store, gates, br } = await app(t, ns, { rolling, resave: false });
    const { sid } = ok(await br.post('/login?user=bo&remember=1'));
    const slow = br.get('/slow?name=A&note=late');
    await gates.arrived('A');
    ok(await br.post('/remember?on=0'));
    gates.open('A');
    ok(await slow);
    const after = await ends(store, ns, sid, br);
    assertSetterMaxAge(after.maxAge, HOUR, JSON.stringify(after));
    assert.ok(after.ttl <= HOUR, `sessd keeps the session ${after.ttl} ms`);
    assert.ok(after.browser <= HOUR + 1000, `the browser keeps its cookie ${after.browser} ms: the 30 days the slow page read`);
  });
}

// The lifetime taken is the other request's own originalMaxAge, not one express-session's
// maxAge setter works out again from the clock (the expiry less now: a millisecond short when
// the clock ticks between its two reads, as it did in a full run at load 20, "maxAge
// 2591999999"). Here every read of the clock moves it on a millisecond while the slow page
// ends.
test('express-session: the lifetime a slow page takes from another tab\'s save is that save\'s, to the millisecond', async (t) => {
  const ns = 'apps62-ex-tick';
  const { store, gates, br } = await app(t, ns, { rolling: false, resave: true });
  const { sid } = ok(await br.post('/login?user=cy'));
  const slow = br.get('/slow?name=A');
  await gates.arrived('A');
  ok(await br.post('/remember?on=1'));
  // What the "remember me" wrote (30 days, or a millisecond less: see assertSetterMaxAge), which
  // the slow page must take exactly.
  const chosen = (await ends(store, ns, sid, br)).maxAge;
  assertSetterMaxAge(chosen, MONTH, 'the "remember me" wrote');
  const now = Date.now;
  let extra = 0;
  Date.now = () => now() + ++extra;
  t.after(() => {
    Date.now = now;
  });
  gates.open('A');
  ok(await slow);
  Date.now = now;
  const end = await ends(store, ns, sid, br);
  assert.equal(end.maxAge, chosen, JSON.stringify(end));
});
