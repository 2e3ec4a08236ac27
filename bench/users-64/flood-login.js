'use strict';
// Scenario 3b: sessd full with --when-full drop-unread, a bot flooding the app's own
// namespace (NS: as an app saving a session for every anonymous visitor would) while USERS
// browsers log in on PORT and follow the redirect. Counts logins answered 303 whose next page
// is logged out (dropped as unread before the redirect read it). Exit 1 on any.
const fs = require('node:fs');
const { Browser } = require('./browser');
const { Client } = require('../../client/node');
const PORT = Number(process.env.PORT || 18161);
const USERS = Number(process.env.USERS || 40);
const c = new Client({ url: process.env.SESSD_URL, auth: fs.readFileSync(process.env.SESSD_AUTH_FILE), poolSize: 4 });
const bot = Buffer.alloc(2000, 'x');
let stop = false; let writes = 0; let refused = 0;
async function flood(k) {
  for (let i = 0; !stop; i++) {
    try { await c.set(process.env.NS, `bot-${k}-${i}`, bot, 3600e3); writes++; } catch (e) { if (e.code !== 'ESESSD_NO_MEMORY') throw e; refused++; }
  }
}
(async () => {
  // Fill first, then keep flooding while the users log in.
  const floods = Array.from({ length: 8 }, (_, k) => flood(k));
  while (writes < 3000) await new Promise((r) => setTimeout(r, 50));
  const res = { logins: {}, loggedInAfter: 0, loggedOutAfter: 0 };
  await Promise.all(Array.from({ length: USERS }, async (_, i) => {
    const b = new Browser(PORT);
    const l = await b.request('POST', `/login?user=u${i}`);
    res.logins[l.status] = (res.logins[l.status] || 0) + 1;
    if (l.status !== 303) return;
    const p = await b.request('GET', '/state');
    if (p.status === 200 && p.json().user === `u${i}`) res.loggedInAfter++; else res.loggedOutAfter++;
  }));
  stop = true; await Promise.all(floods);
  res.floodWrites = writes; res.floodRefused = refused;
  console.log(JSON.stringify(res));
  c.close();
  process.exit(res.loggedOutAfter ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
