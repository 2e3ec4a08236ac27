'use strict';
// The soak's traffic: CONC loops, each playing one visitor after another against app.js.
// - anonymous (60%): a page, then (70%) 1-3 cart adds each followed by the page its redirect
//   leads to, then gone: the cookie is dropped and the session is left to expire;
// - a user (40%): logs in (30% with "remember me"), then 3-8 rounds of a cart add or an XHR
//   poll of /cart.json after a think time of up to 40% of the cookie's maxAge (rolling must keep
//   them logged in), then logs out (70%; the old cookie is then checked to be no one) or leaves;
//   5% of users wait past the cookie's maxAge and check that they are logged out.
// Every request goes to OUT/req.ndjson ({t, ms, st, kind}); what is wrong goes to
// OUT/anomalies.ndjson: logged out early, an acknowledged add missing from a later cart, a
// flash shown twice, a page over HANG_MS, an error page without the app's markup, a logout
// undone. Flashes never shown are counted (at most once: a crash may lose one in flight).
//
// env: URL (http://127.0.0.1:PORT), T0_MS (the epoch request times count from; default now), DURATION_S, CONC, MAXAGE_MS, REMEMBER_MS (the app's: think
// times are up to 40% of them), OUT, HANG_MS, EXPIRY_CHECKS (the share of users who wait out
// their cookie, default 0.05).
const http = require('http');
const fs = require('fs');
const path = require('path');

const base = new URL(process.env.URL);
const durationMs = Number(process.env.DURATION_S || 60) * 1000;
const conc = Number(process.env.CONC || 16);
const maxAgeMs = Number(process.env.MAXAGE_MS || 20000);
const rememberMs = Number(process.env.REMEMBER_MS || 60000);
const hangMs = Number(process.env.HANG_MS || 20000);
const out = process.env.OUT || '.';
const reqLog = fs.createWriteStream(path.join(out, 'req.ndjson'));
const anomLog = fs.createWriteStream(path.join(out, 'anomalies.ndjson'));
// The soak's own start (T0_MS), so that request times and its events' times share one clock.
const t0 = Number(process.env.T0_MS) || Date.now();
const agent = new http.Agent({ keepAlive: true, maxSockets: conc * 2 });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rnd = (n) => Math.floor(Math.random() * n);
const counts = {
  requests: 0, s2xx: 0, s3xx: 0, s4xx: 0, s503: 0, s5xxOther: 0, connErrors: 0, hangs: 0,
  anonVisitors: 0, users: 0, logins: 0, loginRetries: 0, addsAcked: 0, addsFailed: 0, logouts: 0,
  flashesPushed: 0, flashesShown: 0, flashesTwice: 0, loggedOutEarly: 0, cartLost: 0,
  logoutUndone: 0, expiryChecks: 0, notExpired: 0, unmarkedErrorPages: 0,
};
const shown = new Set();
const pending = new Map(); // flash token -> time acknowledged

function anomaly(kind, detail) {
  anomLog.write(`${JSON.stringify({ t: (Date.now() - t0) / 1000, kind, ...detail })}\n`);
}

function request(method, p, cookie, body, kind) {
  return new Promise((resolve) => {
    const start = Date.now();
    const headers = {};
    if (cookie) headers.cookie = cookie;
    let data;
    if (body) {
      data = new URLSearchParams(body).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(data);
    }
    const r = http.request({ host: base.hostname, port: base.port, method, path: p, headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        const ms = Date.now() - start;
        counts.requests++;
        const st = res.statusCode;
        if (st < 300) counts.s2xx++; else if (st < 400) counts.s3xx++; else if (st < 500) counts.s4xx++;
        else if (st === 503) counts.s503++; else counts.s5xxOther++;
        if (st >= 500 && !text.includes('class=err')) { counts.unmarkedErrorPages++; anomaly('unmarked-error-page', { st, p, text: text.slice(0, 200) }); }
        if (ms > hangMs) { counts.hangs++; anomaly('hang', { ms, p }); }
        reqLog.write(`${JSON.stringify({ t: (start - t0) / 1000, ms, st, kind })}\n`);
        const sc = res.headers['set-cookie'];
        const setCookie = sc ? sc.map((c) => c.split(';')[0]).find((c) => c.startsWith('connect.sid=')) : null;
        resolve({ st, text, setCookie, ms });
      });
    });
    r.setTimeout(120000, () => r.destroy(new Error('client timeout 120 s')));
    r.on('error', (err) => {
      counts.connErrors++;
      reqLog.write(`${JSON.stringify({ t: (start - t0) / 1000, ms: Date.now() - start, st: 0, kind, err: err.code || err.message })}\n`);
      resolve({ st: 0, text: '', setCookie: null, err });
    });
    if (data) r.write(data);
    r.end();
  });
}

const field = (text, cls) => {
  const m = text.match(new RegExp(`<p class=${cls}>([^<]*)</p>`));
  return m ? m[1] : null;
};
const flashes = (text) => [...text.matchAll(/<p class=flash>([^<]*)<\/p>/g)].map((m) => m[1]);

function noteFlashes(text) {
  for (const f of flashes(text)) {
    const tok = (f.match(/tok(\d+)/) || [])[1];
    if (!tok) continue;
    if (shown.has(tok)) { counts.flashesTwice++; anomaly('flash-twice', { tok }); }
    shown.add(tok);
    pending.delete(tok);
    counts.flashesShown++;
  }
}

let tokSeq = 0;
const started = Date.now();
const running = () => Date.now() - started < durationMs;

// A browser: follows its cookie as browsers do (the last Set-Cookie wins).
class Browser {
  constructor() { this.cookie = null; this.lastSeen = 0; }
  async go(method, p, body, kind) {
    const r = await request(method, p, this.cookie, body, kind);
    if (r.setCookie) this.cookie = r.setCookie;
    if (r.st && r.st < 500) this.lastSeen = Date.now();
    return r;
  }
}

async function addItem(b, item, acked, kind) {
  const tok = ++tokSeq;
  const r = await b.go('POST', '/cart/add', { item: `${item}-tok${tok}` }, kind);
  if (r.st !== 303) { counts.addsFailed++; return null; }
  counts.addsAcked++; counts.flashesPushed++;
  acked.push(`${item}-tok${tok}`);
  pending.set(String(tok), Date.now());
  const page = await b.go('GET', '/', null, `${kind}-page`);
  if (page.st === 200) noteFlashes(page.text);
  return page;
}

function checkCart(page, acked, who) {
  if (!page || page.st !== 200) return;
  const text = page.text.startsWith('{') ? null : page.text;
  const cart = text ? (field(text, 'cart') || '').split(',').filter(Boolean) : JSON.parse(page.text).cart;
  const missing = acked.filter((i) => !cart.includes(i));
  if (missing.length) { counts.cartLost += missing.length; anomaly('cart-lost', { who, missing, cart: cart.length }); }
}

async function anonymous() {
  counts.anonVisitors++;
  const b = new Browser();
  const acked = [];
  await b.go('GET', '/', null, 'anon-page');
  if (Math.random() < 0.7) {
    for (let i = 1 + rnd(3); i > 0 && running(); i--) {
      const page = await addItem(b, 'a', acked, 'anon-add');
      checkCart(page, acked, 'anon');
      await sleep(200 + rnd(800));
    }
  }
}

let userSeq = 0;
async function user() {
  counts.users++;
  const b = new Browser();
  const name = `u${++userSeq}`;
  const remember = Math.random() < 0.3;
  const life = remember ? rememberMs : maxAgeMs;
  let tries = 0;
  for (;;) {
    const tok = ++tokSeq;
    const r = await b.go('POST', '/login', { username: name, remember: remember ? '1' : '', token: `tok${tok}` }, 'login');
    if (r.st === 303) { counts.logins++; counts.flashesPushed++; pending.set(String(tok), Date.now()); break; }
    if (!running() || ++tries > 20) return;
    counts.loginRetries++;
    await sleep(500);
  }
  const page = await b.go('GET', '/', null, 'login-page');
  if (page.st === 200) noteFlashes(page.text);
  const acked = [];
  const checkUser = (p, kind) => {
    if (!p || p.st !== 200) return;
    const u = p.text.startsWith('{') ? JSON.parse(p.text).user : field(p.text, 'user');
    if (u !== name) {
      counts.loggedOutEarly++;
      anomaly('logged-out', { name, kind, remember, sinceLastMs: Date.now() - p.sentAfter, seen: u });
    }
  };
  if (Math.random() < Number(process.env.EXPIRY_CHECKS ?? 0.05)) {
    // The expiry check: gone after the cookie's lifetime, as with any store.
    counts.expiryChecks++;
    await sleep(life + 3000);
    const c = await b.go('GET', '/cart.json', null, 'expiry-check');
    if (c.st === 200 && JSON.parse(c.text).user === name) { counts.notExpired++; anomaly('not-expired', { name, remember }); }
    return;
  }
  for (let i = 3 + rnd(6); i > 0 && running(); i--) {
    await sleep(200 + rnd(Math.floor(life * 0.4)));
    const sentAfter = b.lastSeen;
    let p;
    if (Math.random() < 0.6) p = await addItem(b, name, acked, 'user-add');
    else p = await b.go('GET', '/cart.json', null, 'poll');
    if (p) { p.sentAfter = sentAfter; checkUser(p, 'round'); checkCart(p, acked, name); }
  }
  if (Math.random() < 0.7) {
    const old = b.cookie;
    const r = await b.go('POST', '/logout', null, 'logout');
    if (r.st === 303) {
      counts.logouts++;
      const c = await request('GET', '/cart.json', old, null, 'after-logout');
      if (c.st === 200 && JSON.parse(c.text).user) { counts.logoutUndone++; anomaly('logout-undone', { name }); }
    }
  }
}

async function loop() {
  while (running()) {
    if (Math.random() < 0.6) await anonymous(); else await user();
  }
}

(async () => {
  const timer = setInterval(() => {
    process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(0)}s ${JSON.stringify(counts)}\n`);
  }, 60000);
  await Promise.all(Array.from({ length: conc }, loop));
  clearInterval(timer);
  // Flashes acknowledged within the last 5 s may not have had their page yet.
  const neverShown = [...pending.values()].length;
  const summary = { ...counts, flashesNeverShown: neverShown };
  fs.writeFileSync(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
  console.log(JSON.stringify(summary));
  reqLog.end(); anomLog.end();
  agent.destroy();
})();
