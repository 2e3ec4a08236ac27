'use strict';
// Scenario 3: what users see when sessd is full. USERS browsers log in to each app of PORTS
// and are read back; then a flood (FLOOD_NS, 2 KB sessions written and never read, as a bot's
// visits to an app saving anonymous sessions) until FLOOD writes are done or refused. Then each
// logged-in user views a page, changes a key (growing the session) and reads the flash; new
// visitors log in, and anonymous visitors with a cart log in. Prints what each saw (statuses, logged out or not) as JSON lines.
// Exit 1 when a logged-in user is logged out, or a change answered 303 is missing.
const { Browser } = require('./browser');
const { Client } = require('../../client/node');
const fs = require('node:fs');
const PORTS = (process.env.PORTS || '18121,18122').split(',').map(Number);
const USERS = Number(process.env.USERS || 20);
const FLOOD = Number(process.env.FLOOD || 5000);
const count = (o, k) => { o[k] = (o[k] || 0) + 1; };

(async () => {
  const users = {};
  for (const port of PORTS) {
    users[port] = [];
    for (let i = 0; i < USERS; i++) {
      const b = new Browser(port);
      const r = await b.request('POST', `/login?user=u${i}`);
      if (r.status !== 303) throw new Error(`login before the flood: ${r.status} ${r.body}`);
      await b.request('GET', '/state'); // the redirect's page: reads the session and its flash
      users[port].push(b);
    }
  }
  // Anonymous visitors with a cart (a key saved before any login), who log in once sessd is full.
  const anon = {};
  for (const port of PORTS) {
    anon[port] = [];
    for (let i = 0; i < 5; i++) {
      const b = new Browser(port);
      if ((await b.request('POST', `/set/k0?val=cart${i}`)).status !== 303) throw new Error('anonymous cart before the flood');
      await b.request('GET', '/state');
      anon[port].push(b);
    }
  }
  const c = new Client({ url: process.env.SESSD_URL, auth: fs.readFileSync(process.env.SESSD_AUTH_FILE) });
  const bot = Buffer.alloc(2000, 'x');
  const flood = { written: 0, refused: 0, firstRefusalAt: null };
  for (let i = 0; i < FLOOD; i++) {
    try { await c.set('bots', `bot${i}`, bot, 3600e3); flood.written++; } catch (e) {
      if (e.code !== 'ESESSD_NO_MEMORY') throw e;
      flood.refused++; if (flood.firstRefusalAt === null) flood.firstRefusalAt = i;
      if (flood.refused >= 50) break;
    }
  }
  console.log(JSON.stringify({ flood }));
  let bad = false;
  for (const port of PORTS) {
    const seen = { port, page: {}, stillLoggedIn: 0, loggedOut: 0, set: {}, setLost: 0, flashShown: 0, newLogin: {}, newLoggedIn: 0, samples: [] };
    for (const [i, b] of users[port].entries()) {
      const p = await b.request('GET', '/state');
      count(seen.page, p.status);
      if (p.status === 200) { if (p.json().user === `u${i}`) seen.stillLoggedIn++; else seen.loggedOut++; }
      const s = await b.request('POST', `/set/k1?val=${'v'.repeat(300)}${i}`);
      count(seen.set, s.status);
      if (seen.samples.length < 2 && s.status !== 303) seen.samples.push(`set ${s.status} ${s.body.slice(0, 120)}`);
      const q = await b.request('GET', '/state');
      if (q.status === 200) {
        const st = q.json();
        if (st.user !== `u${i}`) seen.loggedOut++;
        if (s.status === 303 && st.keys.k1 !== `${'v'.repeat(300)}${i}`) seen.setLost++;
        seen.flashShown += st.flashes.length;
      }
    }
    for (let i = 0; i < 10; i++) {
      const b = new Browser(port);
      const r = await b.request('POST', `/login?user=new${i}`);
      count(seen.newLogin, r.status);
      if (seen.samples.length < 4 && r.status !== 303) seen.samples.push(`login ${r.status} ${r.body.slice(0, 120)} cookie:${b.cookie ? 'yes' : 'no'}`);
      const q = await b.request('GET', '/state');
      if (q.status === 200 && q.json().user === `new${i}`) seen.newLoggedIn++;
    }
    // The anonymous carts: a login refused NO_MEMORY, then the cart page.
    seen.anonLogin = {}; seen.anonCartKept = 0; seen.anonCartLost = 0;
    for (const [i, b] of anon[port].entries()) {
      const l = await b.request('POST', `/login?user=anon${i}`);
      const q = await b.request('GET', '/state');
      const kept = q.status === 200 && q.json().keys.k0 === `cart${i}`;
      count(seen.anonLogin, `${l.status} cart ${kept ? 'kept' : 'lost'}${q.status === 200 && q.json().user ? ', logged in' : ''}`);
      if (kept) seen.anonCartKept++; else seen.anonCartLost++;
    }
    if (seen.loggedOut || seen.setLost) bad = true;
    console.log(JSON.stringify(seen));
  }
  c.close();
  process.exit(bad ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
