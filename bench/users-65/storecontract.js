'use strict';
// Part 1b: the Store contract express-session documents, on a SessdStore beside
// express-session's own MemoryStore (the reference).
//  A. each method called directly, with a callback and without: what it answers, that the
//     callback comes once and after the call returns;
//  B. an app under every resave x saveUninitialized x rolling combination, with a 60 s
//     maxAge, no maxAge (a browser-session cookie) and cookie.expires set to a Date in the
//     route: which responses send a cookie, who is logged in, and sessd's ttl against the
//     cookie's Expires (never earlier; a browser-session cookie: the store's ttl, 1 day);
//  C. req.session.regenerate, reload, save, destroy, touch;
//  D. unset: 'destroy', the cookie option expires as a Date, a "forget me" (maxAge = null).
// Prints each check, PASS or FAIL; exit 1 on a FAIL. Needs SESSD and SESSCTL.
const path = require('path');
const fs = require('fs');
const os = require('os');
const http = require('http');
const { execFileSync } = require('child_process');
const NODE = path.join(__dirname, '../../client/node');
const req_ = (m) => require(require.resolve(m, { paths: [NODE] }));
const express = req_('express');
const session = req_('express-session');
const { startSessd } = require('./sessd');
const { SessdStore } = require(NODE);

const BUILD = process.env.BUILD || path.join(__dirname, '../../build');
const SESSD = process.env.SESSD || path.join(BUILD, 'daemon/sessd');
const SESSCTL = process.env.SESSCTL || path.join(BUILD, 'client/sessctl');
let failures = 0;
// Every session id the checks saw, searched for in sessd's debug log at the end.
const seenIds = new Set();
const check = (name, ok, detail = '') => {
  if (!ok) failures++;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
};


// calls(store, method, args): the method with a callback; resolves { err, value, calls, sync }.
function viaCallback(store, method, args) {
  // Waits for the first call (10 s at most: a loaded machine), then 200 ms for a second one.
  return new Promise((resolve) => {
    let calls = 0;
    let returned = false;
    let first;
    const done = () => resolve({ ...first, calls });
    const limit = setTimeout(done, 10000);
    store[method](...args, (err, value) => {
      calls++;
      if (calls === 1) {
        first = { err, value, sync: !returned };
        clearTimeout(limit);
        setTimeout(done, 200);
      }
    });
    returned = true;
  });
}

async function partA(url) {
  const ns = 'contract-a';
  const stores = { memory: new session.MemoryStore(), sessd: new SessdStore({ url, namespace: ns }) };
  const sess = () => ({ cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' }, user: 'ada' });
  for (const [k, st] of Object.entries(stores)) {
    const id = `a-${k}-${Date.now()}`;
    let r = await viaCallback(st, 'get', ['missing-' + id]);
    check(`A ${k} get(missing, cb): cb(null, null or undefined), once, async`, !r.err && r.value == null && r.calls === 1 && !r.sync, JSON.stringify(r));
    r = await viaCallback(st, 'set', [id, sess()]);
    check(`A ${k} set(sid, sess, cb)`, !r.err && r.calls === 1 && !r.sync, JSON.stringify(r));
    r = await viaCallback(st, 'get', [id]);
    check(`A ${k} get(sid, cb) gives the session back`, !r.err && r.value && r.value.user === 'ada' && r.calls === 1, JSON.stringify(r.value));
    r = await viaCallback(st, 'touch', [id, sess()]);
    check(`A ${k} touch(sid, sess, cb)`, !r.err && r.calls === 1 && !r.sync, JSON.stringify(r));
    r = await viaCallback(st, 'length', []);
    check(`A ${k} length(cb) = 1`, !r.err && r.value === 1, JSON.stringify(r));
    r = await viaCallback(st, 'all', []);
    // express-session: "get all sessions in the store as an array" (MemoryStore gives an
    // object keyed by id: the docs and connect-redis say array)
    const n = Array.isArray(r.value) ? r.value.length : r.value && Object.keys(r.value).length;
    check(`A ${k} all(cb) holds the session`, !r.err && n === 1, `${Array.isArray(r.value) ? 'array' : typeof r.value} of ${n}`);
    r = await viaCallback(st, 'destroy', [id]);
    check(`A ${k} destroy(sid, cb)`, !r.err && r.calls === 1 && !r.sync, JSON.stringify(r));
    r = await viaCallback(st, 'destroy', [id]);
    check(`A ${k} destroy(missing, cb) is no error`, !r.err && r.calls === 1, JSON.stringify(r));
    await viaCallback(st, 'set', [id + 'x', sess()]);
    r = await viaCallback(st, 'clear', []);
    check(`A ${k} clear(cb)`, !r.err && r.calls === 1, JSON.stringify(r));
    r = await viaCallback(st, 'length', []);
    check(`A ${k} length(cb) after clear = 0`, !r.err && r.value === 0, JSON.stringify(r));
    // expires in the past: the contract leaves it to the store; MemoryStore's get() then
    // answers nothing, connect-redis destroys it.
    await viaCallback(st, 'set', [id + 'old', { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() - 1000).toISOString() }, user: 'x' }]);
    r = await viaCallback(st, 'get', [id + 'old']);
    check(`A ${k} a session saved with an expired cookie is not served`, !r.err && r.value == null, JSON.stringify(r.value));
  }
  // sessd without a callback: promises.
  const s = stores.sessd;
  const id = `p-${Date.now()}`;
  await s.set(id, sess());
  const got = await s.get(id);
  check('A sessd get() without a callback resolves the session', got && got.user === 'ada');
  check('A sessd length() resolves a number', typeof (await s.length()) === 'number');
  check('A sessd all() resolves an array', Array.isArray(await s.all()));
  await s.destroy(id);
  check('A sessd get() after destroy() resolves null', (await s.get(id)) === null);
  // A callback that throws: the error must surface (as MemoryStore's does, an uncaught
  // exception), and the callback must not be called a second time with it.
  let thrownCalls = 0;
  const caught = await new Promise((resolve) => {
    const onUncaught = (e) => { process.removeListener('uncaughtException', onUncaught); resolve(e.message); };
    process.on('uncaughtException', onUncaught);
    s.get('missing-throw', () => { thrownCalls++; throw new Error('thrown in callback'); });
    setTimeout(() => { process.removeListener('uncaughtException', onUncaught); resolve(null); }, 500);
  });
  check('A sessd a callback that throws: an uncaught exception, callback once', caught === 'thrown in callback' && thrownCalls === 1, `${caught}, ${thrownCalls} call(s)`);
  s.close();
}

function request(port, p, cookie) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, path: p, headers: cookie ? { cookie } : {} }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { b += c; });
      res.on('end', () => {
        const sc = (res.headers['set-cookie'] || [])[0] || null;
        const m = sc && /=s%3A([^.;]+)\./.exec(sc);
        if (m) seenIds.add(decodeURIComponent(m[1]));
        resolve({ status: res.statusCode, setCookie: sc, body: b });
      });
    });
    r.on('error', reject);
    r.end();
  });
}

function makeApp(store, opts, cookieOpts) {
  const app = express();
  app.use(session({ store, secret: 'users-65', name: 'sid', ...opts, cookie: cookieOpts }));
  app.get('/view', (req, res) => res.json({ user: req.session.user || null, id: req.sessionID }));
  app.get('/login', (req, res) => { req.session.user = 'ada'; res.json({ id: req.sessionID }); });
  app.get('/expires-at', (req, res) => {
    req.session.user = 'ada';
    req.session.cookie.expires = new Date(Date.now() + Number(req.query.ms));
    res.json({ id: req.sessionID });
  });
  app.get('/regenerate', (req, res, next) => {
    const old = req.sessionID;
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'grace';
      res.json({ old, id: req.sessionID });
    });
  });
  app.get('/reload', (req, res, next) => {
    const before = req.session.user;
    // another request (another process) changes the session meanwhile
    store.get(req.sessionID, (e, s) => {
      if (e) return next(e);
      s.user = 'changed-elsewhere';
      store.set(req.sessionID, s, (e2) => {
        if (e2) return next(e2);
        req.session.reload((e3) => (e3 ? next(e3) : res.json({ before, after: req.session.user })));
      });
    });
  });
  app.get('/save-then-read', (req, res, next) => {
    req.session.user = 'saved-early';
    req.session.save((e) => {
      if (e) return next(e);
      store.get(req.sessionID, (e2, s) => (e2 ? next(e2) : res.json({ stored: s && s.user })));
    });
  });
  app.get('/destroy', (req, res, next) => req.session.destroy((e) => (e ? next(e) : res.json({ ok: true }))));
  app.get('/touch', (req, res) => { req.session.touch(); res.json({ ok: true }); });
  app.get('/unset', (req, res) => { req.session = null; res.json({ ok: true }); });
  app.get('/forget-me', (req, res) => { req.session.cookie.maxAge = null; req.session.user = 'no-remember'; res.json({ id: req.sessionID }); });
  app.use((err, req, res, next) => res.status(500).json({ error: err.message })); // eslint-disable-line no-unused-vars
  return new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
}

const cookieOf = (sc) => (sc ? sc.split(';')[0] : null);
const expiresOf = (sc) => { const m = sc && /Expires=([^;]+)/.exec(sc); return m ? Date.parse(m[1]) : null; };
function sessdTtlMs(sock, ns, id) {
  try {
    return Number(execFileSync(SESSCTL, ['--connect', sock, '--namespace', ns, 'ttl', id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(/\s/)[0]);
  } catch (e) { return null; }
}

async function partB(url) {
  const cookies = { maxAge60s: { maxAge: 60000 }, browserSession: {}, expiresDate: 'route' };
  let n = 0;
  for (const resave of [false, true]) for (const saveUninitialized of [false, true]) for (const rolling of [false, true]) {
    for (const [cname, copt] of Object.entries(cookies)) {
      const ns = `contract-b${n++}`;
      const label = `B resave=${resave} saveUninitialized=${saveUninitialized} rolling=${rolling} cookie=${cname}`;
      const seen = {};
      for (const kind of ['memory', 'sessd']) {
        const store = kind === 'memory' ? new session.MemoryStore() : new SessdStore({ url, namespace: ns });
        const srv = await makeApp(store, { resave, saveUninitialized, rolling }, copt === 'route' ? {} : copt);
        const port = srv.address().port;
        const steps = [];
        let jar = null;
        const go = async (p) => {
          const r = await request(port, p, jar);
          if (r.setCookie) jar = cookieOf(r.setCookie);
          steps.push(`${p}:${r.status}:${r.setCookie ? 'cookie' : '-'}:${JSON.parse(r.body).user ?? ''}`);
          return r;
        };
        await go('/view');
        const login = await go(copt === 'route' ? '/expires-at?ms=120000' : '/login');
        await go('/view');
        const last = await go('/view');
        if (kind === 'sessd' && jar) {
          const id = decodeURIComponent(jar.split('=')[1]).slice(2).split('.')[0];
          const ttl = sessdTtlMs(url, ns, id);
          const exp = expiresOf(last.setCookie || login.setCookie);
          const cookieLeft = exp === null ? null : exp - Date.now();
          // sessd must not end before the cookie; a browser-session cookie: the store's ttl (1 day)
          const ok = ttl !== null && (cookieLeft === null ? Math.abs(ttl - 86400000) < 60000 : ttl >= cookieLeft - 1000 && ttl <= cookieLeft + 61000);
          check(`${label}: sessd's ttl against the cookie`, ok, `ttl ${ttl} ms, cookie ${cookieLeft === null ? 'browser-session' : `${cookieLeft} ms`} left`);
        }
        seen[kind] = steps.join(' ');
        srv.close();
        if (kind === 'sessd') store.close();
      }
      check(`${label}: responses as on MemoryStore`, seen.memory === seen.sessd, seen.memory === seen.sessd ? seen.sessd : `memory ${seen.memory} | sessd ${seen.sessd}`);
    }
  }
}

async function partC(url) {
  const ns = 'contract-c';
  for (const kind of ['memory', 'sessd']) {
    const store = kind === 'memory' ? new session.MemoryStore() : new SessdStore({ url, namespace: ns });
    const srv = await makeApp(store, { resave: false, saveUninitialized: false }, { maxAge: 60000 });
    const port = srv.address().port;
    let jar = null;
    const go = async (p) => {
      const r = await request(port, p, jar);
      if (r.setCookie) jar = cookieOf(r.setCookie);
      return JSON.parse(r.body);
    };
    const l = await go('/login');
    const g = await go('/regenerate');
    const oldGone = await new Promise((res) => store.get(l.id, (e, s) => res(!e && s == null)));
    const v = await go('/view');
    check(`C ${kind} regenerate: new id, old session gone, new one saved`, g.old === l.id && g.id !== l.id && oldGone && v.user === 'grace' && v.id === g.id, JSON.stringify({ g, oldGone, v }));
    const rl = await go('/reload');
    check(`C ${kind} reload sees a change made elsewhere`, rl.before === 'grace' && rl.after === 'changed-elsewhere', JSON.stringify(rl));
    const sv = await go('/save-then-read');
    check(`C ${kind} save() stores before the response`, sv.stored === 'saved-early', JSON.stringify(sv));
    const t = await go('/touch');
    check(`C ${kind} touch()`, t.ok === true);
    const before = jar;
    await go('/destroy');
    jar = before;
    const after = await go('/view');
    check(`C ${kind} destroy: the old cookie is no one`, after.user === null, JSON.stringify(after));
    srv.close();
    if (kind === 'sessd') store.close();
  }
}

// D. unset: 'destroy' (req.session = null), the cookie option expires as a fixed Date
// (deprecated by express-session, still in apps), and a "forget me" that sets maxAge to null
// (a browser-session cookie from then on: the store's ttl, a day).
async function partD(url, sock) {
  const ns = 'contract-d';
  const fixed = new Date(Date.now() + 90000);
  const forget = {};
  for (const kind of ['memory', 'sessd']) {
    const store = kind === 'memory' ? new session.MemoryStore() : new SessdStore({ url, namespace: ns });
    const srv = await makeApp(store, { resave: false, saveUninitialized: false, unset: 'destroy' }, { maxAge: 60000 });
    const port = srv.address().port;
    let jar = null;
    const go = async (p) => {
      const r = await request(port, p, jar);
      if (r.setCookie) jar = cookieOf(r.setCookie);
      return { ...JSON.parse(r.body), setCookie: r.setCookie };
    };
    const l = await go('/login');
    const before = jar;
    await go('/unset');
    const gone = await new Promise((res) => store.get(l.id, (e, s) => res(!e && s == null)));
    jar = before;
    const v = await go('/view');
    check(`D ${kind} unset 'destroy': req.session = null removes the session`, gone && v.user === null, JSON.stringify({ gone, v: v.user }));
    await go('/login');
    const f = await go('/forget-me');
    const browserCookie = f.setCookie && !/Expires=/.test(f.setCookie);
    if (kind === 'sessd') {
      const ttl = sessdTtlMs(url, ns, f.id);
      check('D sessd "forget me" (maxAge = null): the store\'s ttl (a day)', ttl !== null && Math.abs(ttl - 86400000) < 60000, `ttl ${ttl} ms, cookie ${f.setCookie}`);
    }
    // express-session sends no cookie for it (not rolling, and a browser-session cookie has no
    // expires to renew): the browser keeps its persistent one, on either store.
    forget[kind] = browserCookie ? 'browser-session cookie' : f.setCookie ? 'persistent cookie' : 'no Set-Cookie';
    srv.close();
    const st2 = kind === 'memory' ? new session.MemoryStore() : new SessdStore({ url, namespace: ns });
    const srv2 = await makeApp(st2, { resave: false, saveUninitialized: false }, { expires: fixed });
    jar = null;
    const port2 = srv2.address().port;
    const r = await request(port2, '/login', null);
    const id = JSON.parse(r.body).id;
    const exp = expiresOf(r.setCookie);
    check(`D ${kind} cookie option expires (a fixed Date): the cookie ends then`, exp !== null && Math.abs(exp - fixed.getTime()) < 1000, r.setCookie);
    if (kind === 'sessd') {
      const ttl = sessdTtlMs(url, ns, id);
      const left = fixed.getTime() - Date.now();
      check('D sessd cookie option expires: sessd ends the session with it', ttl !== null && ttl >= left - 1000 && ttl <= left + 2000, `ttl ${ttl} ms, ${left} ms to the date`);
    }
    srv2.close();
    if (kind === 'sessd') { store.close(); st2.close(); }
  }
  check('D "forget me": what the response sends, as on MemoryStore', forget.memory === forget.sessd, JSON.stringify(forget));
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'users65-contract-'));
  const d = await startSessd(SESSD, dir);
  try {
    await partA(d.url);
    await partB(d.url);
    await partC(d.url);
    await partD(d.url);
  } finally {
    d.p.kill('SIGTERM');
  }
  await new Promise((r) => d.p.on('exit', r));
  const log = fs.readFileSync(path.join(dir, 'sessd.log'), 'utf8');
  const found = [...seenIds].filter((id) => log.includes(id.slice(0, 16)));
  check(`sessd's debug log (${log.split('\n').length} lines) holds none of the ${seenIds.size} session ids, whole or their first 16 characters`, seenIds.size > 0 && found.length === 0, found.join(' '));
  console.log(`${failures} FAIL; sessd's log: ${dir}/sessd.log`);
  process.exitCode = failures ? 1 : 0;
}
main().catch((e) => { console.error(e); process.exit(2); });
