'use strict';
// Many "browsers" (plain HTTP clients keeping cookies) using shop.js behind a "load balancer"
// that picks one of the app ports at random per request and tries another when a port refuses
// (an app process killed). Each browser: login, then rounds of two tabs adding distinct items
// at once and the page after the redirect, a logout every few rounds (checked final: the old
// cookie is no one). Every request is written to --out (ndjson: t, kind, status, ms, app);
// violations are counted:
//   lost_add: an item whose add was answered 303 missing from a later page's cart
//   flash_twice: a flash token shown on two pages
//   logout_undone: the cookie of a logged-out session still logged in
//   hang: no answer within --hang-ms
// usage: node browsers.js --ports P1,P2,.. --browsers N --duration S --out FILE
const http = require('http');
const fs = require('fs');

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const ports = args.ports.split(',').map(Number);
const nBrowsers = Number(args.browsers || 40);
const durationMs = Number(args.duration || 60) * 1000;
const hangMs = Number(args['hang-ms'] || 20000);
const out = fs.createWriteStream(args.out || '/dev/null');
const t0 = Date.now();
const stats = { requests: 0, ok: 0, err5xx: 0, err_other: 0, hang: 0, refused_retried: 0, conn_error: 0,
  adds_acked: 0, adds_unknown: 0, flashes_promised: 0, flashes_seen: 0, flash_twice: 0, lost_add: 0, logout_undone: 0, logouts: 0,
  error_pages_unclear: 0 };
const violations = [];

function request(jar, method, path, body, agent) {
  return new Promise((resolve) => {
    const tryPorts = [...ports].sort(() => Math.random() - 0.5);
    const attempt = () => {
      const port = tryPorts.shift();
      const start = Date.now();
      const headers = {};
      if (jar.cookie) headers.cookie = jar.cookie;
      let payload;
      if (body) { payload = new URLSearchParams(body).toString(); headers['content-type'] = 'application/x-www-form-urlencoded'; headers['content-length'] = Buffer.byteLength(payload); }
      let done = false;
      const finish = (r) => {
        if (done) return; done = true; clearTimeout(timer);
        const ms = Date.now() - start;
        out.write(`${JSON.stringify({ t: start, m: method, p: path, s: r.status, ms, port, e: r.error })}\n`);
        stats.requests++;
        resolve({ ...r, ms });
      };
      const rq = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { data += c; });
        res.on('end', () => {
          const sc = res.headers['set-cookie'];
          if (sc) for (const c of sc) if (c.startsWith('connect.sid=')) jar.cookie = c.split(';')[0];
          finish({ status: res.statusCode, body: data });
        });
        res.on('error', (e) => finish({ status: 0, error: e.code || e.message }));
      });
      const timer = setTimeout(() => { rq.destroy(); stats.hang++; finish({ status: 0, error: 'HANG' }); }, hangMs);
      rq.on('error', (e) => {
        if (done) return;
        if (e.code === 'ECONNREFUSED' && tryPorts.length) { clearTimeout(timer); stats.refused_retried++; attempt(); return; }
        finish({ status: 0, error: e.code || e.message });
      });
      if (payload) rq.write(payload);
      rq.end();
    };
    attempt();
  });
}

function classify(r) {
  if (r.status >= 200 && r.status < 400) stats.ok++;
  else if (r.status >= 500) { stats.err5xx++; if (!/class=err/.test(r.body || '')) stats.error_pages_unclear++; }
  else if (r.status === 0) { if (r.error !== 'HANG') stats.conn_error++; }
  else stats.err_other++;
}

const flashSeen = new Map(); // token -> count
const promised = []; // [time answered, flash text] of every 303 that pushed one
function seeFlashes(b, body) {
  for (const m of body.matchAll(/<p class=flash>([^<]*)<\/p>/g)) {
    stats.flashes_seen++;
    const tok = m[1];
    const n = (flashSeen.get(tok) || 0) + 1;
    flashSeen.set(tok, n);
    if (n === 2) { stats.flash_twice++; violations.push({ t: Date.now(), what: 'flash_twice', browser: b, tok }); }
  }
}

async function browser(b) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let round = 0;
  let logins = 0;
  while (Date.now() - t0 < durationMs) {
    const jar = {};
    const user = `u${b}`;
    const token = `L${b}.${logins++}`;
    const lr = await request(jar, 'POST', '/login', { username: user, token }, agent);
    classify(lr);
    if (lr.status !== 303) { await new Promise((r) => setTimeout(r, 200)); continue; }
    stats.flashes_promised++;
    promised.push([Date.now(), `Welcome back, ${user} ${token}`]);
    const acked = [];
    for (let k = 0; k < 5 && Date.now() - t0 < durationMs; k++, round++) {
      const items = [`i${b}x${round}a`, `i${b}x${round}b`];
      const rs = await Promise.all(items.map((item) => request(jar, 'POST', '/cart/add', { item }, agent)));
      rs.forEach((r, i) => {
        classify(r);
        if (r.status === 303) { acked.push(items[i]); stats.adds_acked++; stats.flashes_promised++; promised.push([Date.now(), `Added ${items[i]}`]); } else stats.adds_unknown++;
      });
      const started = acked.slice();
      const page = await request(jar, 'GET', '/', null, agent);
      classify(page);
      if (page.status === 200) {
        seeFlashes(b, page.body);
        const m = /<p class=cart>([^<]*)<\/p>/.exec(page.body);
        const cart = m && m[1] ? m[1].split(',') : [];
        const u = /<p class=user>([^<]*)<\/p>/.exec(page.body);
        if (!u || u[1] !== user) violations.push({ t: Date.now(), what: 'logged_out_unasked', browser: b, user: u && u[1] });
        for (const it of started) {
          if (!cart.includes(it)) { stats.lost_add++; violations.push({ t: Date.now(), what: 'lost_add', browser: b, item: it }); }
        }
      }
    }
    const old = { cookie: jar.cookie };
    const lo = await request(jar, 'POST', '/logout', null, agent);
    classify(lo);
    if (lo.status === 303) {
      stats.logouts++;
      const chk = await request(old, 'GET', '/cart.json', null, agent);
      classify(chk);
      if (chk.status === 200 && JSON.parse(chk.body).user) { stats.logout_undone++; violations.push({ t: Date.now(), what: 'logout_undone', browser: b }); }
    }
  }
  agent.destroy();
}

(async () => {
  await Promise.all(Array.from({ length: nBrowsers }, (_, b) => browser(b)));
  // Flashes never shown, by the second their push was answered (attribute them to events).
  const lost = {};
  for (const [t, m] of promised) if (!flashSeen.has(m)) { const k = Math.floor(t / 1000); lost[k] = (lost[k] || 0) + 1; }
  const summary = { ...stats, flashes_never_shown_by_second: lost, browsers: nBrowsers, ports, duration_s: durationMs / 1000, violations: violations.slice(0, 50) };
  out.end();
  console.log(JSON.stringify(summary, null, 1));
  process.exit(0);
})();
