'use strict';
// probe
const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');
const { Daemon, Browser, Gates, listen, closeServer, once } = require('./helpers');

const HOUR = 3600 * 1000;
const MONTH = 30 * 24 * HOUR;
const DAY = 24 * HOUR;
let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

function expiresOf(r) {
  const c = (r.headers['set-cookie'] || [])[0];
  if (!c) return null;
  const m = /Expires=([^;]+)/.exec(c);
  return m ? Date.parse(m[1]) : Infinity;
}

for (const rolling of [false, true]) for (const resave of [false, true]) for (const note of ['', 'late']) {
  test(`express rolling ${rolling} resave ${resave} note ${note}`, async (t) => {
    const ns = `apps62-ex-${rolling}-${resave}-${note}`;
    const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
    await once(store, 'connect');
    const gates = new Gates();
    const app = express();
    app.use(session({ store, secret: 'apps62', name: 'sid', resave, rolling, saveUninitialized: false, cookie: { maxAge: HOUR } }));
    app.post('/login', (req, res) => { req.session.user = 'ann'; res.json({ sid: req.sessionID }); });
    app.post('/remember', (req, res) => { req.session.remembered = req.query.on === '1'; req.session.cookie.maxAge = req.query.on === '1' ? MONTH : HOUR; res.json({}); });
    app.get('/slow', async (req, res) => { await gates.hold(req.query.name); if (req.query.note) req.session.note = req.query.note; res.json({ user: req.session.user }); });
    app.get('/page', (req, res) => res.json({ user: req.session.user || null }));
    const { server, base } = await listen(app);
    t.after(async () => { await closeServer(server); store.close(); });
    const br = new Browser(base);
    let browserEnd = null;
    const seen = (r) => { const e = expiresOf(r); if (e !== null) browserEnd = e; return r; };
    const { sid } = JSON.parse(seen(await br.post('/login')).body);
    const slow = br.get(`/slow?name=A&note=${note}`);
    await gates.arrived('A');
    seen(await br.post('/remember?on=1'));
    gates.open('A');
    seen(await slow);
    await new Promise((r) => setTimeout(r, 100));
    const now = Date.now();
    const ttl = await store.client.ttl(ns, sid);
    const stored = JSON.parse((await store.client.get(ns, sid)).toString()).cookie;
    console.log(JSON.stringify({ rolling, resave, note, ttlDays: ttl / DAY, maxAgeDays: stored.originalMaxAge / DAY, storedDays: (Date.parse(stored.expires) - now) / DAY, browserDays: (browserEnd - now) / DAY }));
  });
}
