'use strict';
// Steady browser traffic behind a load balancer over the app hosts: N cookie-keeping browsers
// log in, then add an item (POST /add, 303) and read the page after the redirect (its flash
// must say "Added ITEM" and the cart must hold every item answered 303), over and over. The
// "load balancer" picks a random host for each request and tries another when one refuses
// the connection (a health check's view), not when it answers 5xx; hosts listed in the file
// $DRAINED (one address a line) get no new requests (a deploy drains a host first).
// Env: TARGETS (host:port,...), BROWSERS (10), SECONDS (30; or until the file $STOP exists),
// OUT (ndjson of every request).
// Prints, for each second with trouble, what went wrong; then totals. Exit 1 when an add
// answered 303 is missing later, a flash shows twice, or a logged-in browser finds itself
// logged out; 5xx pages are counted and printed, not failed on (the scripts judge them).
const http = require('http');
const fs = require('fs');

const targets = (process.env.TARGETS || '127.0.0.2:18651').split(',').map((t) => { const [h, p] = t.split(':'); return { host: h, port: Number(p) }; });
const BROWSERS = Number(process.env.BROWSERS || 10);
const SECONDS = Number(process.env.SECONDS || 30);
const out = process.env.OUT ? fs.createWriteStream(process.env.OUT) : null;
// COOKIES: a file to which every session cookie a browser was given is appended (the log check).
const cookies = new Set();
const t0 = Date.now();
const perSec = new Map();
const sec = () => Math.floor((Date.now() - t0) / 1000);
const bump = (k, n = 1) => { const s = sec(); const o = perSec.get(s) || {}; o[k] = (o[k] || 0) + n; perSec.set(s, o); };
const totals = { requests: 0, s5xx: 0, conn: 0, lost: 0, twice: 0, loggedOut: 0, maxMs: 0, adds: 0 };

function once(target, method, path, body, cookie) {
  return new Promise((resolve, reject) => {
    const data = body ? new URLSearchParams(body).toString() : null;
    const r = http.request({ host: target.host, port: target.port, method, path, agent: false, headers: {
      ...(data ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(data) } : {}),
      ...(cookie ? { cookie } : {}),
    } }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode, setCookie: res.headers['set-cookie'], body: b }));
    });
    r.setTimeout(30000, () => r.destroy(new Error('hang: no answer in 30 s')));
    r.on('error', reject);
    if (data) r.write(data);
    r.end();
  });
}

async function request(b, method, path, body) {
  let drained = [];
  try { drained = process.env.DRAINED ? fs.readFileSync(process.env.DRAINED, 'utf8').split('\n') : []; } catch (e) { /* none */ }
  const order = targets.filter((t) => !drained.includes(t.host)).sort(() => Math.random() - 0.5);
  const start = Date.now();
  let lastErr;
  for (const t of order) {
    try {
      const res = await once(t, method, path, body, b.cookie);
      const ms = Date.now() - start;
      totals.requests++; bump('requests');
      totals.maxMs = Math.max(totals.maxMs, ms);
      const s = sec(); const o = perSec.get(s) || {}; o.maxMs = Math.max(o.maxMs || 0, ms); perSec.set(s, o);
      if (res.setCookie) { b.cookie = res.setCookie[0].split(';')[0]; cookies.add(b.cookie); }
      if (res.status >= 500) {
        totals.s5xx++; bump(`${res.status} ${t.host}`);
        // PAGES5XX: what the browser was shown on each 5xx (the log check reads it)
        if (process.env.PAGES5XX) fs.appendFileSync(process.env.PAGES5XX, `${method} ${path} ${res.status}: ${res.body.slice(0, 4000)}\n`);
      }
      if (out) out.write(`${JSON.stringify({ t: Date.now() - t0, b: b.n, method, path, host: t.host, status: res.status, ms })}\n`);
      return res;
    } catch (e) {
      lastErr = e;
      if (e.code !== 'ECONNREFUSED') { totals.conn++; bump(`conn ${e.code || e.message} ${t.host}`); throw e; }
    }
  }
  totals.conn++; bump('all hosts refused');
  throw lastErr;
}

async function browser(n) {
  const b = { n, cookie: null, user: `user${n}`, cart: [], seq: 0 };
  const deadline = t0 + SECONDS * 1000;
  let loggedIn = false;
  while (Date.now() < deadline && !(process.env.STOP && fs.existsSync(process.env.STOP))) {
    try {
      if (!loggedIn) {
        const r = await request(b, 'POST', '/login', { username: b.user });
        if (r.status !== 303) { await new Promise((s) => setTimeout(s, 200)); continue; }
        loggedIn = true;
        b.cart = [];
        await request(b, 'GET', '/');
        continue;
      }
      const item = `${n}-${++b.seq}`;
      const r = await request(b, 'POST', '/add', { item });
      if (r.status === 303) { b.cart.push(item); totals.adds++; }
      const page = await request(b, 'GET', '/');
      if (page.status !== 200) continue;
      const p = JSON.parse(page.body);
      if (p.user !== b.user) {
        totals.loggedOut++; bump(`logged out ${p.host}`);
        loggedIn = false;
        continue;
      }
      const missing = b.cart.filter((i) => !p.cart.includes(i));
      if (missing.length) { totals.lost += missing.length; bump(`lost ${missing.join(' ')}`); b.cart = p.cart; }
      const shown = (p.flash.info || []).filter((m) => m.startsWith('Added '));
      if (new Set(shown).size !== shown.length) { totals.twice++; bump('flash twice'); }
    } catch (e) {
      await new Promise((s) => setTimeout(s, 100));
    }
  }
}

(async () => {
  await Promise.all(Array.from({ length: BROWSERS }, (_, i) => browser(i)));
  for (const [s, o] of [...perSec.entries()].sort((a, b) => a[0] - b[0])) {
    const trouble = Object.keys(o).filter((k) => k !== 'requests' && k !== 'maxMs');
    if (trouble.length || o.maxMs > 2000) console.log(`t=${s}s ${o.requests || 0} req, slowest ${o.maxMs || 0} ms: ${trouble.map((k) => `${k} x${o[k]}`).join(', ')}`);
  }
  console.log(`totals: ${JSON.stringify(totals)}`);
  if (out) out.end();
  if (process.env.COOKIES) fs.appendFileSync(process.env.COOKIES, [...cookies].map((c) => `${c}\n`).join(''));
  process.exitCode = totals.lost || totals.twice || totals.loggedOut ? 1 : 0;
})();
