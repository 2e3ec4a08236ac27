'use strict';
// Scenario 2: for each app in APPS (label:port:namespace:rolling, comma-separated), one
// browser logs in, views a page at 3 s and 6 s (changing nothing), then stops. After each
// response: the browser's cookie expiry against sessd's (`sessctl ttl`). Then `sessctl ttl`
// gives the end; the store's Client polls TTL every 5 ms until the session is gone: when,
// against that end (LATE_MS, 50: how late counts as a problem).
// Needs SESSCTL, SESSD_URL, SESSD_AUTH_FILE. Exit 1 when a session ends before its cookie
// (more than the cookie's 1 s rounding), or before or well after the end sessd said.
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const fs = require('node:fs');
const { Browser } = require('./browser');
const { Client } = require('../../client/node');
const LATE_MS = Number(process.env.LATE_MS || 50);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const notes = [];
// Not execFileSync: the four browsers share this process, and a blocked event loop would
// time the others' replies late (their ends by as much as a second).
async function sessdEnd(ns, sid) {
  try {
    const { stdout } = await promisify(execFile)(process.env.SESSCTL, ['--connect', process.env.SESSD_URL, '--auth-file', process.env.SESSD_AUTH_FILE, '--namespace', ns, '--id-env', 'ttl'], { env: { ...process.env, SESSD_ID: sid } });
    return Date.now() + Number(stdout.split('\t')[0]);
  } catch (e) {
    if (e.code === 1) { notes.push(`sessctl ttl ${sid.slice(0, 6)}: exit 1: ${e.stderr}`); return null; } // gone
    throw e;
  }
}

// The polling for the instant it goes: the store's own Client, in process, whose round trip
// (about a millisecond) bounds the error, where a sessctl process took 50-250 ms at load 30.
const client = new Client({ url: process.env.SESSD_URL, auth: fs.readFileSync(process.env.SESSD_AUTH_FILE) });
async function ttlNow(ns, sid) {
  const sent = Date.now();
  const ms = await client.ttl(ns, sid);
  const got = Date.now();
  return { sent, got, end: ms === null ? null : got + ms };
}

async function oneApp(label, port, ns, rolling) {
  const br = new Browser(port);
  const rows = [];
  const look = async (what) => {
    const c = br.cookieExpiresMs();
    const s = await sessdEnd(ns, br.sid());
    rows.push({ what, at: Date.now(), cookieEnd: c, sessdEnd: s, sessdMinusCookieMs: s === null || c === null ? null : s - c, cookieSet: br.setCookieAt });
  };
  const t0 = Date.now();
  let r = await br.request('POST', '/login?user=ttl');
  if (r.status !== 303) throw new Error(`${label}: login ${r.status}`);
  await look('login');
  for (const at of [3000, 6000]) {
    await sleep(t0 + at - Date.now());
    const before = br.setCookieAt;
    r = await br.request('GET', '/state');
    if (r.status !== 200 || r.json().user !== 'ttl') throw new Error(`${label}: page at ${at} ms: ${r.status} ${r.body}`);
    await look(`page ${at / 1000}s${br.setCookieAt !== before ? ' (cookie renewed)' : ' (no Set-Cookie)'}`);
  }
  const last = rows[rows.length - 1];
  const cookieEnd = last.cookieEnd;
  const first = await ttlNow(ns, br.sid());
  const promised = first.end; // the end sessd gives now, to the round trip
  let goneAt = null;
  let lastLive = null;
  while (promised !== null && Date.now() < promised + 5000) {
    const s = await ttlNow(ns, br.sid());
    if (s.end === null) { goneAt = s.sent; break; }
    lastLive = s.got;
    await sleep(5);
  }
  const res = {
    label, rolling, rows: rows.map((x) => ({ ...x, at: x.at - t0, cookieEnd: x.cookieEnd && x.cookieEnd - t0, sessdEnd: x.sessdEnd && x.sessdEnd - t0, cookieSet: x.cookieSet - t0 })),
    cookieEnd: cookieEnd - t0, sessdPromisedEnd: promised && promised - t0, lastSeenLive: lastLive && lastLive - t0, goneSeenAt: goneAt && goneAt - t0,
  };
  res.problems = [];
  if (goneAt === null) res.problems.push('never gone');
  else if (goneAt > promised + LATE_MS) res.problems.push(`gone ${goneAt - promised} ms after sessd's end`);
  else if (goneAt < promised - LATE_MS) res.problems.push(`gone ${promised - goneAt} ms before sessd's end`);
  if (lastLive !== null && lastLive > promised + 10) res.problems.push(`alive ${lastLive - promised} ms after sessd's end`);
  for (const x of rows) if (x.sessdEnd !== null && x.cookieEnd !== null && x.sessdEnd < x.cookieEnd - 1000) res.problems.push(`${x.what}: sessd ends ${x.cookieEnd - x.sessdEnd} ms before the cookie`);
  return res;
}

(async () => {
  const apps = process.env.APPS.split(',').map((s) => s.split(':'));
  const results = await Promise.all(apps.map(([label, port, ns, rolling]) => oneApp(label, Number(port), ns, rolling === '1')));
  let bad = false;
  for (const r of results) { console.log(JSON.stringify(r)); if (r.problems.length) bad = true; }
  for (const n of notes) console.log(n);
  client.close();
  process.exit(bad ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
