'use strict';
// Scenario 4b's users. MODE=before: USERS browsers per app of PORTS log in, set k0..k2 (the
// last set's flash left unread) and are saved to STATE (cookies, expected keys, sessd's
// expiry of its cookie). MODE=load: page views by those browsers until the file STOP exists; counts statuses.
// MODE=after: each browser is still logged in with its keys and sees its unread flash once;
// sessd's end of its session against its cookie's. Exit 1 on a loss.
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { Browser } = require('./browser');
const PORTS = (process.env.PORTS || '18131,18132').split(',').map(Number);
const NSS = (process.env.NSS || 'up-f,up-e').split(',');
const USERS = Number(process.env.USERS || 10);
const STATE = process.env.STATE;
const ttlOf = (ns, sid) => {
  try {
    return Number(execFileSync(process.env.SESSCTL, ['--connect', process.env.SESSD_URL, '--auth-file', process.env.SESSD_AUTH_FILE, '--namespace', ns, '--id-env', 'ttl'], { env: { ...process.env, SESSD_ID: sid }, stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\t')[0]);
  } catch { return null; }
};
const restore = (u) => { const b = new Browser(u.port); b.cookie = u.cookie; return b; };

(async () => {
  const mode = process.env.MODE;
  if (mode === 'before') {
    const out = [];
    for (const [pi, port] of PORTS.entries()) {
      for (let i = 0; i < USERS; i++) {
        const b = new Browser(port);
        if ((await b.request('POST', `/login?user=u${i}`)).status !== 303) throw new Error('login');
        await b.request('GET', '/state');
        for (const k of ['k0', 'k1', 'k2']) if ((await b.request('POST', `/set/${k}?val=${k}-${i}`)).status !== 303) throw new Error('set');
        out.push({ port, ns: NSS[pi], user: `u${i}`, cookie: b.cookie, flash: `set:k2=k2-${i}`, cookieEnd: b.cookieExpiresMs(), at: Date.now() });
      }
    }
    fs.writeFileSync(STATE, JSON.stringify(out));
    console.log(`${out.length} users logged in, each with 3 keys and an unread flash`);
    return;
  }
  const us = JSON.parse(fs.readFileSync(STATE));
  if (mode === 'load') {
    const st = {};
    while (!fs.existsSync(process.env.STOP)) {
      await Promise.all(us.map(async (u) => {
        // A page that changes nothing and shows no flash: /set of k0 to the value it has.
        const r = await restore(u).request('POST', `/set/k0?val=k0-${u.user.slice(1)}`).catch((e) => ({ status: e.code }));
        st[r.status] = (st[r.status] || 0) + 1;
      }));
    }
    console.log(JSON.stringify({ loadDuringUpgrade: st }));
    return;
  }
  const res = { users: us.length, loggedIn: 0, keysKept: 0, flashOnce: 0, flashMissing: 0, flashTwice: 0, sessdEndMinusCookieMs: [] };
  for (const u of us) {
    const b = restore(u);
    const r1 = await b.request('GET', '/state');
    const r2 = await b.request('GET', '/state');
    if (r1.status !== 200) continue;
    const s = r1.json();
    if (s.user === u.user) res.loggedIn++;
    const i = u.user.slice(1);
    if (s.keys.k0 === `k0-${i}` && s.keys.k1 === `k1-${i}` && s.keys.k2 === `k2-${i}`) res.keysKept++;
    // The load's /set pushed flashes of k0 meanwhile: count only the unread one of k2.
    const n = [...s.flashes, ...(r2.status === 200 ? r2.json().flashes : [])].filter((m) => m === u.flash).length;
    if (n === 1) res.flashOnce++; else if (n === 0) res.flashMissing++; else res.flashTwice++;
    const left = ttlOf(u.ns, b.sid());
    if (left !== null) {
      const diff = Date.now() + left - u.cookieEnd;
      res.sessdEndMinusCookieMs.push(diff);
      // CHECK_TTL=1: never before the cookie's end (less its 1 s rounding), and no later than
      // this page's touch renewed it (express-session touches an unchanged session: maxAge from now).
      if (process.env.CHECK_TTL === '1' && (diff < -1000 || diff > Date.now() - u.at + 1500)) res.ttlWrong = (res.ttlWrong || 0) + 1;
    } else if (process.env.CHECK_TTL === '1') res.ttlWrong = (res.ttlWrong || 0) + 1;
  }
  const d = res.sessdEndMinusCookieMs.sort((a, b) => a - b);
  res.sessdEndMinusCookieMs = d.length ? { min: d[0], max: d[d.length - 1] } : null;
  console.log(JSON.stringify(res));
  process.exit(res.loggedIn === us.length && res.keysKept === us.length && res.flashOnce === us.length && !res.ttlWrong ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(2); });
