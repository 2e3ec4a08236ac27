'use strict';
// Scenario 2: for each app in APPS (label:port:namespace:rolling, comma-separated), one
// browser logs in, views a page at 3 s and 6 s (changing nothing), then stops. After each
// response: the browser's cookie expiry against sessd's (`sessctl ttl`). Then `sessctl ttl`
// is polled every 20 ms until the session is gone: when, against the end sessd gave.
// Needs SESSCTL, SESSD_URL, SESSD_AUTH_FILE. Exit 1 when a session ends before its cookie
// (more than the cookie's 1 s rounding), or before or well after the end sessd said.
const { execFileSync } = require('node:child_process');
const { Browser } = require('./browser');
const LATE_MS = Number(process.env.LATE_MS || 250);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sessdEnd(ns, sid) {
  try {
    const out = execFileSync(process.env.SESSCTL, ['--connect', process.env.SESSD_URL, '--auth-file', process.env.SESSD_AUTH_FILE, '--namespace', ns, '--id-env', 'ttl'], { env: { ...process.env, SESSD_ID: sid }, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return Date.now() + Number(out.split('\t')[0]);
  } catch (e) {
    if (e.status === 1) return null; // gone
    throw e;
  }
}

async function oneApp(label, port, ns, rolling) {
  const br = new Browser(port);
  const rows = [];
  const look = (what) => {
    const c = br.cookieExpiresMs();
    const s = sessdEnd(ns, br.sid());
    rows.push({ what, at: Date.now(), cookieEnd: c, sessdEnd: s, sessdMinusCookieMs: s === null || c === null ? null : s - c, cookieSet: br.setCookieAt });
  };
  const t0 = Date.now();
  let r = await br.request('POST', '/login?user=ttl');
  if (r.status !== 303) throw new Error(`${label}: login ${r.status}`);
  look('login');
  for (const at of [3000, 6000]) {
    await sleep(t0 + at - Date.now());
    const before = br.setCookieAt;
    r = await br.request('GET', '/state');
    if (r.status !== 200 || r.json().user !== 'ttl') throw new Error(`${label}: page at ${at} ms: ${r.status} ${r.body}`);
    look(`page ${at / 1000}s${br.setCookieAt !== before ? ' (cookie renewed)' : ' (no Set-Cookie)'}`);
  }
  const last = rows[rows.length - 1];
  const cookieEnd = last.cookieEnd;
  let promised = last.sessdEnd;
  let goneAt = null;
  let lastLive = null;
  while (Date.now() < promised + 5000) {
    const s = sessdEnd(ns, br.sid());
    if (s === null) { goneAt = Date.now(); break; }
    lastLive = Date.now();
    await sleep(20);
  }
  const res = {
    label, rolling, rows: rows.map((x) => ({ ...x, at: x.at - t0, cookieEnd: x.cookieEnd && x.cookieEnd - t0, sessdEnd: x.sessdEnd && x.sessdEnd - t0, cookieSet: x.cookieSet - t0 })),
    cookieEnd: cookieEnd - t0, sessdPromisedEnd: promised - t0, lastSeenLive: lastLive && lastLive - t0, goneSeenAt: goneAt && goneAt - t0,
  };
  res.problems = [];
  if (goneAt === null) res.problems.push('never gone');
  else if (goneAt > promised + LATE_MS) res.problems.push(`gone ${goneAt - promised} ms after sessd's end`);
  if (lastLive !== null && lastLive > promised + 50) res.problems.push(`alive ${lastLive - promised} ms after sessd's end`);
  for (const x of rows) if (x.sessdEnd !== null && x.cookieEnd !== null && x.sessdEnd < x.cookieEnd - 1000) res.problems.push(`${x.what}: sessd ends ${x.cookieEnd - x.sessdEnd} ms before the cookie`);
  return res;
}

(async () => {
  const apps = process.env.APPS.split(',').map((s) => s.split(':'));
  const results = await Promise.all(apps.map(([label, port, ns, rolling]) => oneApp(label, Number(port), ns, rolling === '1')));
  let bad = false;
  for (const r of results) { console.log(JSON.stringify(r)); if (r.problems.length) bad = true; }
  process.exit(bad ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
