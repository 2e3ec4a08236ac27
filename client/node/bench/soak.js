#!/usr/bin/env node
'use strict';
// A long soak of a busy Express site on sessd: does anything grow, drift or rot over time?
//
//   nice node bench/soak.js [--minutes 12] [--data-dir] [--fsync everysec]
//       [--snapshot-log-bytes SIZE] [--restarts N] [--users 120] [--workers 2]
//       [--max-age 5000-20000] [--sample 5] [--out FILE.json] [--heap-snapshots DIR]
//
// Starts its own sessd (SESSD_BIN, default ../../build/daemon/sessd; SESSCTL_BIN, default
// ../../build/client/sessctl) on a Unix socket and a fixed loopback port, memory-only unless
// --data-dir (then in a fresh directory, with --fsync POLICY, default everysec), and
// --workers app processes (forked from this file, each an Express 5 app with express-session
// and connect-sessd; odd workers reach sessd over TCP, even ones over the Unix socket). The
// app: rolling sessions, a cookie maxAge each user picks at login (--max-age, ms), login with
// regenerate() and a save before its "Welcome" flash and redirect, a save-first cart add with a
// flash after its redirect (mergeKey for the cart), a JSON cart that pops nothing, logout with
// destroy(). Every response carries the cookie's exact expiry (x-cookie-expires).
//
// --users cookie-jar users are active at once, each one request at a time with think times,
// each request to a random worker. A user arrives (anonymous page), logs in, then 3..40
// actions (page views, cart adds followed to the page that shows their flash, JSON reads, at
// times two adds at once, at times a return just before the cookie expires), then leaves:
// logs out, abandons the session (now and then with an unread flash), or abandons it and
// comes back with the stale cookie after it expired (as a replay would). A new user takes
// its place. The jar drops a cookie past its Expires, as a browser does.
//
// Checked throughout (each violation counted and the first ones printed): every answer is
// the expected status (no 5xx, no unexpected logout: a logged-in user's page shows the user);
// every flash is shown once (a cart add's and a login's, on the page their redirect leads to);
// every acknowledged cart add is in the cart; sessd's end of the session (TTL probed right
// after a sample of the responses, by a separate connect-sessd client, probes slower than
// 40 ms left out) is the cookie's expiry (drift = sessd's end - the cookie's expires, by the
// route that answered; over 1 s either way is a violation); an abandoned session is alive
// 300 ms before the browser drops its cookie (its Expires, whole seconds) and gone 300 ms
// after its exact expiry (TTL and GET; a check that went out too late, or whose answer came
// after the end, proves nothing and is counted as late); a replayed stale cookie logs nobody
// in; a LIST shows no session whose cookie expired over 2 s before it, nor one a logout
// destroyed before it. A logged-in user's request that finds no session is a violation only
// when answered over a second before the end the last response gave the session; later, the
// request outlasted the session (seconds of latency on a loaded machine against 5 s cookies)
// and is counted apart, as are returns the jar had already expired (the harness late).
//
// Every --sample seconds: sessd's RSS and open fds (/proc), its STATS and COUNT (sessctl
// --json stats and count, spawned each time: a libsessd client connecting and leaving),
// each worker's heapUsed after a GC, RSS, active handles by type and the store's internal
// queues (pending requests, waiters, listeners), the data directory's files and bytes, and the
// harness's counters. Every 15 s a `sessctl list`. Every 20 s each worker opens a second
// SessdStore, reads through it and closes it (an app's connection churn).
//
// --restarts N (with --data-dir): restarts sessd N times, spread over the middle of the run,
// alternating SIGTERM (started again 300 ms after it exits) and kill -9 (started again 1 s
// later). Users must see nothing of it but slower pages.
//
// Prints a line per sample and at the end a table of start / middle / end figures and the
// violations; --out writes every sample and the summary as JSON. Exit status 1 when any
// check failed.

const { fork, execFile } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { Daemon } = require('../test/helpers');

const NODE_DIR = path.resolve(__dirname, '..');
const NS = 'soak';
const COOKIE = 'soak.sid';

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const rand = (lo, hi) => lo + Math.random() * (hi - lo);
const randInt = (lo, hi) => Math.floor(rand(lo, hi + 1));

// ---------------------------------------------------------------------------------------
// The app worker (forked with --app): one Express 5 app on connect-sessd.

function runApp() {
  const express = require('express');
  const session = require('express-session');
  const onHeaders = require('on-headers');
  const { SessdStore, flash, genid } = require('..');

  const url = process.env.SESSD_URL;
  const store = new SessdStore({ url, namespace: NS, mergeKey: mergeCart });
  const errors = {};
  const countError = (code) => {
    errors[code] = (errors[code] || 0) + 1;
  };
  // Touches that fail: the store spares the page the error (the session keeps its earlier
  // expiry), so they are counted here; and those that found the session gone (not_found: a
  // request that ran across its session's end, or a logout's race), which answer no error.
  const touchErrors = {};
  for (const m of ['touch', 'touchIf']) {
    const orig = store.client[m].bind(store.client);
    store.client[m] = (...args) => orig(...args).then((outcome) => {
      if (outcome === false || outcome === 'not_found') touchErrors.not_found = (touchErrors.not_found || 0) + 1;
      return outcome;
    }, (err) => {
      touchErrors[err.code || err.message] = (touchErrors[err.code || err.message] || 0) + 1;
      throw err;
    });
  }
  let disconnects = 0;
  store.on('disconnect', () => {
    disconnects++;
  });

  // mergeCart: items this request added go onto the cart a concurrent request stored.
  function mergeCart(key, base, mine, theirs) {
    if (key !== 'cart' || !Array.isArray(mine) || !Array.isArray(theirs)) return mine;
    const had = new Set(Array.isArray(base) ? base : []);
    const out = theirs.slice();
    for (const it of mine) if (!had.has(it) && !out.includes(it)) out.push(it);
    return out;
  }

  const app = express();
  app.disable('x-powered-by');
  app.use(express.urlencoded({ extended: false, limit: '8kb' }));
  // Registered before express-session's own onHeaders: runs after it, once the cookie is
  // touched, so the header is the expiry the browser is given, to the millisecond.
  app.use((req, res, next) => {
    onHeaders(res, () => {
      if (req.session && req.session.cookie && req.session.cookie.expires) {
        res.setHeader('x-cookie-expires', String(req.session.cookie.expires.getTime()));
      }
    });
    next();
  });
  app.use(session({
    genid,
    store,
    secret: 'soak secret',
    name: COOKIE,
    resave: false,
    saveUninitialized: false,
    rolling: true,
    cookie: { httpOnly: true, sameSite: 'lax', maxAge: 20000 },
  }));
  app.use(flash());
  app.use((req, res, next) => (req.session ? next() : res.status(503).json({ error: 'no session' })));

  app.get('/', flash.locals(), (req, res) => {
    res.json({ user: req.session.user || null, cart: req.session.cart || [], flash: res.locals.flash });
  });
  app.get('/api/cart', (req, res) => {
    res.json({ user: req.session.user || null, cart: req.session.cart || [] });
  });
  app.post('/login', (req, res, next) => {
    const name = String(req.body.username || '');
    const maxAge = Number(req.body.maxAge);
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = name;
      req.session.cart = [];
      req.session.cookie.maxAge = maxAge;
      req.session.save(async (e) => {
        if (e) return next(e);
        await req.flash('info', `Welcome ${name} #${req.body.seq}`).catch((fe) => countError('flash:' + (fe.code || fe.message)));
        res.redirect(303, '/');
        return undefined;
      });
      return undefined;
    });
  });
  app.post('/cart', (req, res, next) => {
    if (!req.session.user) return res.status(401).json({ error: 'not logged in', keys: Object.keys(req.session), sid: req.sessionID });
    const item = String(req.body.item);
    (req.session.cart || (req.session.cart = [])).push(item);
    req.session.save(async (e) => {
      if (e) return next(e);
      await req.flash('info', `Added ${item}`).catch((fe) => countError('flash:' + (fe.code || fe.message)));
      res.redirect(303, '/');
      return undefined;
    });
    return undefined;
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => {
      if (err) return next(err);
      res.redirect(303, '/');
      return undefined;
    });
  });
  app.use((err, req, res, next) => {
    countError(err.code || err.message);
    if (res.headersSent) return next(err);
    return res.status(err.statusCode || 500).json({ error: err.code || err.message });
  });

  // A second store opened, used and closed every 20 s: a short-lived process's connections.
  let churned = 0;
  let churnErrors = 0;
  const churn = setInterval(async () => {
    const s = new SessdStore({ url, namespace: NS, poolSize: 1 });
    try {
      await s.client.ready({ timeoutMs: 10000 });
      await s.length();
      churned++;
    } catch {
      churnErrors++;
    } finally {
      s.close();
    }
  }, 20000);
  churn.unref();

  const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  // Longer than any idle time of the harness's keep-alive agent: a server closing an idle
  // connection as the agent reuses it would fail a request (ECONNRESET) through no fault of
  // the app.
  server.keepAliveTimeout = 120000;
  // Node checks an idle keep-alive connection against headersTimeout (60 s) too.
  server.headersTimeout = 125000;

  // sample(): what a leak would show: the heap after a GC, handles by type, the store's
  // queues and listeners.
  function sample() {
    if (global.gc) global.gc();
    const mem = process.memoryUsage();
    const handles = {};
    for (const t of process.getActiveResourcesInfo()) handles[t] = (handles[t] || 0) + 1;
    const c = store.client;
    let pending = 0;
    let unflushed = 0;
    let connListeners = 0;
    let socketListeners = 0;
    for (const slot of c.slots) {
      if (!slot.conn) continue;
      pending += slot.conn.pendingCount;
      unflushed += slot.conn.unflushed.length;
      connListeners += slot.conn.eventNames().reduce((k, e) => k + slot.conn.listenerCount(e), 0);
      socketListeners += slot.conn.socket.eventNames().reduce((k, e) => k + slot.conn.socket.listenerCount(e), 0);
    }
    return {
      heapUsed: mem.heapUsed,
      rss: mem.rss,
      external: mem.external,
      arrayBuffers: mem.arrayBuffers,
      handles,
      pending,
      unflushed,
      pendingArrays: c.slots.map((s) => (s.conn ? s.conn.pending.length : 0)),
      readyWaiters: c.readyWaiters.size,
      clientListeners: c.eventNames().reduce((k, e) => k + c.listenerCount(e), 0),
      storeListeners: store.eventNames().reduce((k, e) => k + store.listenerCount(e), 0),
      connListeners,
      socketListeners,
      adminPending: c.adminConn ? c.adminConn.pendingCount : 0,
      errors,
      touchErrors,
      disconnects,
      churned,
      churnErrors,
    };
  }
  process.on('message', (m) => {
    if (m === 'sample') {
      server.getConnections((err, n) => process.send({ sample: { ...sample(), httpConnections: err ? null : n } }));
    } else if (m && m.heapSnapshot) {
      // A heap snapshot, for comparing what the heap holds early and late in a run.
      process.send({ heapSnapshot: require('v8').writeHeapSnapshot(m.heapSnapshot) });
    } else if (m === 'stop') {
      clearInterval(churn);
      server.closeAllConnections?.();
      server.close(() => {
        store.close();
        process.disconnect();
      });
    }
  });
}

// ---------------------------------------------------------------------------------------
// The harness.

// sessctl's path: $SESSCTL_BIN, else the build's.
function sessctlBin() {
  const p = process.env.SESSCTL_BIN ? path.resolve(NODE_DIR, process.env.SESSCTL_BIN) : path.resolve(NODE_DIR, '../../build/client/sessctl');
  if (!fs.existsSync(p)) throw new Error(`${p} not found: build it (meson setup build && ninja -C build) or set SESSCTL_BIN`);
  return p;
}

// sessctl(sock, args): { out, err, code, ms }; args name the namespace where they need one.
function sessctl(sock, args) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(sessctlBin(), ['--connect', `unix:${sock}`, ...args], { maxBuffer: 64 << 20 }, (err, out, stderr) => {
      resolve({ out, err: stderr, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, ms: Date.now() - t0 });
    });
  });
}

function procFigures(pid) {
  if (!pid) return null;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status) || [0, 0])[1]);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const tick = 100;
    return {
      rssKb: kb('VmRSS'),
      hwmKb: kb('VmHWM'),
      threads: kb('Threads'),
      fds: fs.readdirSync(`/proc/${pid}/fd`).length,
      cpuMs: ((Number(stat[11]) + Number(stat[12])) * 1000) / tick,
    };
  } catch {
    return null;
  }
}

function dataDirFigures(dir) {
  if (!dir) return null;
  const out = { files: 0, bytes: 0, logs: 0, logBytes: 0, snaps: 0, snapBytes: 0, other: [] };
  for (const name of fs.readdirSync(dir)) {
    let st;
    try {
      st = fs.statSync(path.join(dir, name));
    } catch {
      continue;
    }
    out.files++;
    out.bytes += st.size;
    if (name.startsWith('log.')) {
      out.logs++;
      out.logBytes += st.size;
    } else if (name.startsWith('snap.')) {
      out.snaps++;
      out.snapBytes += st.size;
    } else out.other.push(name);
  }
  return out;
}

// One keep-alive agent for all users: a browser's connection reuse without a socket per user.
// A socket idle for 30 s is closed here, long before the app's keepAliveTimeout (120 s) closes
// it under a request the agent sends on it (ECONNRESET, through no fault of the app).
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 30000 });

// A cookie-jar user: keeps soak.sid until its Expires, as a browser does.
class User {
  constructor(h, n) {
    this.h = h;
    this.n = n;
    this.name = `u${n}`;
    this.cookie = null; // { value, expiresMs (the header's, whole seconds), exactMs }
    this.cart = [];
    this.user = null;
    this.maxAge = randInt(h.maxAgeLo, h.maxAgeHi);
    this.history = []; // the last requests, for a violation's report
  }

  sid() {
    if (!this.cookie) return null;
    const v = decodeURIComponent(this.cookie.value);
    return v.startsWith('s:') ? v.slice(2, v.lastIndexOf('.')) : null;
  }

  // request(method, p, form, opts): { status, json, location, t0, t1, exactMs }.
  request(method, p, form = null, { ignoreExpiry = false } = {}) {
    const h = this.h;
    const base = h.workers[randInt(0, h.workers.length - 1)].base;
    const body = form ? new URLSearchParams(form).toString() : null;
    const headers = {};
    let dropped = false;
    if (this.cookie && (ignoreExpiry || Date.now() < this.cookie.expiresMs)) headers.cookie = `${COOKIE}=${this.cookie.value}`;
    else if (this.cookie) {
      this.cookie = null;
      dropped = true;
    }
    if (body !== null) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const t0 = Date.now();
    h.inflight++;
    return new Promise((resolve) => {
      const req = http.request(new URL(p, base), { method, headers, agent }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          data += d;
        });
        res.on('end', () => {
          h.inflight--;
          const t1 = Date.now();
          h.latencies.push(t1 - t0);
          for (const c of res.headers['set-cookie'] || []) {
            const parts = c.split(';').map((s) => s.trim());
            const [k, v] = [parts[0].slice(0, parts[0].indexOf('=')), parts[0].slice(parts[0].indexOf('=') + 1)];
            if (k !== COOKIE) continue;
            const exp = parts.find((s) => /^expires=/i.test(s));
            this.cookie = { value: v, expiresMs: exp ? Date.parse(exp.slice(8)) : Infinity };
          }
          const exactMs = res.headers['x-cookie-expires'] ? Number(res.headers['x-cookie-expires']) : null;
          let json = null;
          try {
            json = data && res.headers['content-type'] && res.headers['content-type'].includes('json') ? JSON.parse(data) : null;
          } catch {
            json = null;
          }
          h.count(`${method} ${p.split('?')[0]} ${res.statusCode}`);
          this.history.push({ method, p, status: res.statusCode, t0, t1, sid: headers.cookie ? this.sid() : null, exact: res.headers['x-cookie-expires'] || null, body: res.statusCode === 401 ? data.slice(0, 200) : undefined });
          if (this.history.length > 6) this.history.shift();
          if (res.statusCode >= 500) h.violation('5xx', `${method} ${p} answered ${res.statusCode} ${data.slice(0, 200)}`);
          resolve({ status: res.statusCode, json, location: res.headers.location, t0, t1, exactMs, dropped });
        });
      });
      req.on('error', (err) => {
        h.inflight--;
        h.violation('transport', `${method} ${p}: ${err.message}`);
        resolve({ status: 0, json: null, t0, t1: Date.now(), exactMs: null });
      });
      if (body !== null) req.end(body);
      else req.end();
    });
  }

  // after(r): bookkeeping of the session's end after a response that carried one.
  after(r, route) {
    this.last = { t1: r.t1, exactMs: r.exactMs, route };
    const sid = this.sid();
    if (!sid || r.exactMs === null) return;
    this.h.ends.set(sid, r.exactMs);
    if (Math.random() < this.h.probeShare) this.h.probeDrift(sid, r.exactMs, route);
  }

  // page(expectFlashes): GET / as a logged-in user; checks the user, the cart and the
  // flashes shown (exactly those expected, each once).
  async page(expect = []) {
    const r = await this.request('GET', '/');
    if (r.status !== 200 || !r.json) {
      this.h.violation('page', `${this.name}: GET / answered ${r.status}`);
      return false;
    }
    if (r.dropped) {
      // The jar dropped the cookie: the harness came back later than it meant to (a loaded
      // machine), as a browser would, logged out. Not the store's doing.
      this.h.jarExpired++;
      return false;
    }
    const last = this.last;
    if (r.json.user !== this.name) {
      this.h.loggedOut(this, r, last, 'GET /');
      return false;
    }
    this.after(r, 'GET /');
    const shown = Object.values(r.json.flash || {}).flat();
    this.h.checkFlashes(this, expect, shown);
    this.h.checkCart(this, r.json.cart);
    return true;
  }

  async login() {
    const seq = ++this.h.flashSeq;
    const r = await this.request('POST', '/login', { username: this.name, maxAge: String(this.maxAge), seq: String(seq) });
    if (r.status !== 303) {
      this.h.violation('login', `${this.name}: POST /login answered ${r.status}`);
      return false;
    }
    this.after(r, 'POST /login');
    this.user = this.name;
    return this.page([`Welcome ${this.name} #${seq}`]);
  }

  async add({ follow = true } = {}) {
    const item = `i${++this.h.itemSeq}`;
    const last = this.last;
    const r = await this.request('POST', '/cart', { item });
    if (r.status === 401) {
      this.h.loggedOut(this, r, last, 'POST /cart');
      return false;
    }
    if (r.status !== 303) {
      this.h.violation('cart', `${this.name}: POST /cart answered ${r.status}`);
      return false;
    }
    this.after(r, 'POST /cart');
    this.cart.push(item);
    this.h.adds++;
    return follow ? this.page([`Added ${item}`]) : true;
  }

  // Two adds at once (a double click, two tabs): both kept (mergeKey), both flashes shown.
  async doubleAdd() {
    const items = [`i${++this.h.itemSeq}`, `i${++this.h.itemSeq}`];
    const last = this.last;
    const rs = await Promise.all(items.map((item) => this.request('POST', '/cart', { item })));
    for (const r of rs) {
      if (r.status === 401) {
        this.h.loggedOut(this, r, last, 'concurrent POST /cart');
        return false;
      }
      if (r.status !== 303) {
        this.h.violation('cart', `${this.name}: concurrent POST /cart answered ${r.status}`);
        return false;
      }
    }
    // Each response set the cookie; sessd keeps whichever save came last: the page that
    // follows touches the session to one end.
    this.cart.push(...items);
    this.h.adds += 2;
    return this.page(items.map((i) => `Added ${i}`));
  }

  async apiCart() {
    const last = this.last;
    const r = await this.request('GET', '/api/cart');
    if (r.status === 200 && r.json && r.json.user === null) {
      this.h.loggedOut(this, r, last, 'GET /api/cart');
      return false;
    }
    if (r.status !== 200 || !r.json || r.json.user !== this.name) {
      this.h.violation('page', `${this.name}: GET /api/cart answered ${r.status} user ${r.json && r.json.user}`);
      return false;
    }
    this.after(r, 'GET /api/cart');
    this.h.checkCart(this, r.json.cart);
    return true;
  }

  // live(): one user's visit.
  async live() {
    const h = this.h;
    const first = await this.request('GET', '/');
    if (first.status !== 200 || !first.json || first.json.user !== null) h.violation('page', `${this.name}: anonymous GET / answered ${first.status} ${first.json && first.json.user}`);
    if (!(await this.login())) return;
    const actions = randInt(3, 40);
    const thinkMax = Math.min(1500, this.maxAge * 0.3);
    for (let i = 0; i < actions && h.running; i++) {
      await sleep(rand(50, thinkMax));
      const x = Math.random();
      let ok;
      if (x < 0.45) ok = await this.page();
      else if (x < 0.77) ok = await this.add();
      else if (x < 0.94) ok = await this.apiCart();
      else if (x < 0.97) ok = await this.doubleAdd();
      else {
        // Back shortly before the cookie expires (the jar's Expires is rounded down to the
        // second; the margin is for a loaded machine's late timers).
        const wait = this.cookie.expiresMs - Date.now() - randInt(1500, 2500);
        await sleep(wait);
        h.nearExpiry++;
        ok = await this.page();
      }
      if (!ok) return;
    }
    if (!h.running) return;
    const leave = Math.random();
    const sid = this.sid();
    if (leave < 0.4) {
      const r = await this.request('POST', '/logout');
      if (r.status !== 303) h.violation('logout', `${this.name}: POST /logout answered ${r.status}`);
      h.ends.delete(sid);
      h.destroyed.set(sid, Date.now());
      const p = await this.request('GET', '/');
      if (p.status !== 200 || !p.json || p.json.user !== null) h.violation('logout-failed', `${this.name}: still logged in after logout (${p.status})`);
      h.logouts++;
    } else if (leave < 0.85) {
      if (leave < 0.6) await this.add({ follow: false }); // leaves an unread flash
      h.abandoned++;
      h.watchExpiry(this.sid(), h.ends.get(this.sid()), this.cookie.expiresMs);
    } else {
      // Abandoned, then the stale cookie replayed after the session's end.
      const end = h.ends.get(sid);
      h.abandoned++;
      h.watchExpiry(sid, end, this.cookie.expiresMs);
      await sleep(end - Date.now() + randInt(1000, 3000));
      if (!h.running) return;
      const r = await this.request('GET', '/api/cart', null, { ignoreExpiry: true });
      h.replays++;
      if (r.status !== 200 || !r.json) h.violation('replay', `${this.name}: replay answered ${r.status}`);
      else if (r.json.user !== null) h.violation('outlived', `${this.name}: a cookie replayed ${Date.now() - end} ms after its expiry still logs in`);
    }
  }
}

class Harness {
  constructor(opts) {
    Object.assign(this, opts);
    this.running = true;
    this.inflight = 0;
    this.latencies = [];
    this.counts = {};
    this.violations = {};
    this.firstViolations = [];
    this.ends = new Map(); // sid -> the cookie's exact expiry, the end sessd should keep
    this.destroyed = new Map(); // sid -> when its logout was answered
    this.flashSeq = 0;
    this.itemSeq = 0;
    this.adds = 0;
    this.logouts = 0;
    this.abandoned = 0;
    this.replays = 0;
    this.nearExpiry = 0;
    this.jarExpired = 0;
    this.expiredInFlight = 0;
    this.usersDone = 0;
    this.flashShown = 0;
    this.drift = []; // ms, sessd's end - the cookie's expires, this sample period
    this.driftAll = { n: 0, min: Infinity, max: -Infinity, over5: 0, under5: 0 };
    this.driftByRoute = {};
    this.slowProbes = 0;
    this.expiryChecks = { aliveBefore: 0, goneAfter: 0, diedEarly: 0, outlived: 0, lateMaxMs: 0, probeErrors: 0, late: 0 };
    this.restarting = false;
  }

  count(k) {
    this.counts[k] = (this.counts[k] || 0) + 1;
  }

  violation(kind, msg) {
    // Transport errors and probe failures during a restart window are the restart's.
    this.violations[kind] = (this.violations[kind] || 0) + 1;
    if (this.firstViolations.length < 40) this.firstViolations.push(`${new Date().toISOString()} ${kind}: ${msg}`);
    if ((this.violations[kind] || 0) <= 3) console.error(`VIOLATION ${kind}: ${msg}`);
  }

  // loggedOut(user, r, last, what): a logged-in user's request r found no session. A
  // violation when its answer came over a second before the end the last response gave the
  // session (last.exactMs; sessd loaded the session before the answer); else the request
  // outlasted the session (a loaded machine: requests of seconds against 5 s cookies), which
  // any store does: counted apart.
  loggedOut(user, r, last, what) {
    if (last && r.t1 >= last.exactMs - 1000) {
      this.expiredInFlight++;
      return;
    }
    this.violation('logout', `${user.name}: ${what} found no session; sent ${last ? r.t0 - last.t1 : '-'} ms after the last response (${last ? last.route : '-'}), answered ${last ? last.exactMs - r.t1 : '-'} ms before the end that gave the session`);
    // What sessd holds of it now, and the user's last requests.
    const sid = user.sid();
    const at = Date.now();
    Promise.all([this.probe.ttl(NS, sid), this.probe.get(NS, sid)]).then(([ttl, data]) => {
      console.error(`  diagnosis ${user.name} (maxAge ${user.maxAge}): ${Date.now() - at} ms later sessd has ttl ${ttl}, data ${data ? data.toString().slice(0, 300) : null}; ` +
        `last requests: ${JSON.stringify(user.history.map((x) => ({ ...x, t0: x.t0 - at, t1: x.t1 - at, exact: x.exact ? Number(x.exact) - at : null, sid: x.sid ? x.sid.slice(0, 8) : null })))}`);
    }, (err) => console.error(`  diagnosis failed: ${err.message}`));
  }

  checkFlashes(user, expect, shown) {
    const want = expect.slice().sort();
    const got = shown.slice().sort();
    this.flashShown += got.length;
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      const dup = got.filter((m, i) => got.indexOf(m) !== i);
      const lost = want.filter((m) => !got.includes(m));
      const extra = got.filter((m) => !want.includes(m));
      if (dup.length) this.violation('flash-twice', `${user.name}: ${dup.join(', ')}`);
      if (lost.length) this.violation('flash-lost', `${user.name}: ${lost.join(', ')}`);
      if (extra.length) this.violation('flash-unexpected', `${user.name}: ${extra.join(', ')}`);
    }
  }

  checkCart(user, cart) {
    const lost = user.cart.filter((i) => !cart.includes(i));
    if (lost.length) this.violation('cart-lost', `${user.name}: ${lost.join(', ')} missing`);
    if (cart.length !== new Set(cart).size || cart.length !== user.cart.length) this.violation('cart-wrong', `${user.name}: ${cart.length} items, ${user.cart.length} expected`);
  }

  // probeDrift(sid, exactMs, route): sessd's end of the session against the cookie's expiry,
  // after a response of route. A probe that took over 40 ms is not counted (slowProbes): its
  // reading is loose, and the user's next request (50 ms later at the earliest) may have
  // moved the end meanwhile.
  async probeDrift(sid, exactMs, route) {
    const sent = Date.now();
    let ttl;
    try {
      ttl = await this.probe.ttl(NS, sid);
    } catch (err) {
      this.expiryChecks.probeErrors++;
      return;
    }
    const got = Date.now();
    if (got - sent > 40) {
      this.slowProbes++;
      return;
    }
    if (ttl === null || this.ends.get(sid) !== exactMs) return;
    // sessd read its clock between sent and got: its end is in [sent + ttl, got + ttl].
    const lo = sent + ttl - exactMs;
    const hi = got + ttl - exactMs;
    const d = Math.abs(lo) < Math.abs(hi) ? lo : hi;
    const mid = lo <= 0 && hi >= 0 ? 0 : d;
    this.drift.push(mid);
    const r = this.driftByRoute[route] || (this.driftByRoute[route] = { n: 0, min: Infinity, max: -Infinity, over5: 0, under5: 0 });
    r.n++;
    r.min = Math.min(r.min, mid);
    r.max = Math.max(r.max, mid);
    if (mid > 5) r.over5++;
    if (mid < -5) r.under5++;
    const a = this.driftAll;
    a.n++;
    a.min = Math.min(a.min, mid);
    a.max = Math.max(a.max, mid);
    if (mid > 5) a.over5++;
    if (mid < -5) a.under5++;
    if (mid > 1000 || mid < -1000) this.violation('ttl-drift', `sessd's end of a session is ${mid} ms from its cookie's expiry`);
  }

  // watchExpiry(sid, end, browserEnd): an abandoned session must live until the browser drops
  // its cookie (browserEnd: its Expires, whole seconds, so up to a second before end, the
  // cookie's exact expiry) and be gone after end. (How far sessd's end is from end exactly,
  // the TTL probes measure: see probeDrift.)
  watchExpiry(sid, end, browserEnd) {
    if (!sid || !end) return;
    const check = async (alive) => {
      if (!this.running) return;
      const sent = Date.now();
      // A check that could not go out in time (the loop was busy) proves nothing.
      if (alive ? sent > browserEnd - 50 : sent < end) {
        this.expiryChecks.late++;
        return;
      }
      let ttl;
      let data;
      try {
        ttl = await this.probe.ttl(NS, sid);
        data = await this.probe.get(NS, sid);
      } catch {
        this.expiryChecks.probeErrors++;
        return;
      }
      // sessd answered between sent and got: gone by got before the end is early for sure,
      // alive at sent or later after the end is late for sure.
      const got = Date.now();
      if (this.ends.get(sid) !== end) return; // used again since (cannot happen: abandoned)
      if (alive) {
        this.expiryChecks.aliveBefore++;
        if ((ttl === null || data === null) && got < browserEnd) {
          this.expiryChecks.diedEarly++;
          this.violation('died-early', `a session gone ${browserEnd - got} ms or more before the browser's cookie expires (${end - got} ms before its exact expiry)`);
        } else if (ttl === null || data === null) this.expiryChecks.late++;
      } else {
        this.expiryChecks.goneAfter++;
        if (ttl !== null || data !== null) {
          // sessd's end is at least this late: the check went out at sent, and found ttl left.
          const late = sent - end + (ttl || 0);
          this.expiryChecks.outlived++;
          this.expiryChecks.lateMaxMs = Math.max(this.expiryChecks.lateMaxMs, late);
          if (late > 1000) this.violation('outlived', `a session alive ${late} ms or more after its cookie expired`);
        }
      }
    };
    setTimeout(() => check(true), browserEnd - 300 - Date.now());
    setTimeout(() => check(false), end + 300 - Date.now());
    // Forgotten a minute later.
    setTimeout(() => this.ends.get(sid) === end && this.ends.delete(sid), end + 60000 - Date.now()).unref();
  }

  // expectedLive(): sessions the harness believes sessd holds now.
  expectedLive(now = Date.now()) {
    let n = 0;
    for (const end of this.ends.values()) if (end > now) n++;
    return n;
  }

  async userLoop() {
    while (this.running) {
      const u = new User(this, ++this.userSeq);
      try {
        await u.live();
      } catch (err) {
        this.violation('harness', err.stack);
      }
      this.usersDone++;
    }
  }
}

function pct(arr, p) {
  if (!arr.length) return null;
  const s = arr.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main() {
  const minutes = Number(arg('minutes', 12));
  const useData = arg('data-dir', false) !== false;
  const fsync = arg('fsync', 'everysec');
  const snapBytes = arg('snapshot-log-bytes', null);
  const restarts = Number(arg('restarts', 0));
  const usersN = Number(arg('users', 120));
  const workersN = Number(arg('workers', 2));
  const [maxAgeLo, maxAgeHi] = String(arg('max-age', '5000-20000')).split('-').map(Number);
  const sampleMs = Number(arg('sample', 5)) * 1000;
  const outFile = arg('out', null);
  if (restarts > 0 && !useData) throw new Error('--restarts needs --data-dir (memory-only, a restart logs everybody out)');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-soak-'));
  const dataDir = useData ? path.join(dir, 'data') : null;
  const args = [];
  if (useData) args.push('--data-dir', dataDir, '--fsync', fsync);
  if (snapBytes) args.push('--snapshot-log-bytes', String(snapBytes));
  // A sessd of our own; restarted on the same socket and port, which the apps keep using.
  const sessd = new Daemon({ dir, extraArgs: args, logFile: path.join(dir, 'sessd.log'), readyMs: 60000 });
  await sessd.start();
  sessd.tcpPort = Number(new URL(sessd.tcpUrl).port);
  console.log(`sessd ${args.join(' ') || '(memory-only)'} in ${dir}; ${usersN} users, ${workersN} workers, maxAge ${maxAgeLo}-${maxAgeHi} ms, ${minutes} min, ${restarts} restarts`);

  const workers = [];
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      for (const w of workers) w.child.kill();
      if (sessd.proc) sessd.proc.kill('SIGKILL');
      process.exit(3);
    });
  }
  for (let i = 0; i < workersN; i++) {
    const url = i % 2 ? sessd.tcpUrl : `unix:${sessd.sock}`;
    const child = fork(__filename, ['--app'], { env: { ...process.env, SESSD_URL: url }, execArgv: ['--expose-gc'] });
    const port = await new Promise((resolve, reject) => {
      child.once('message', (m) => resolve(m.port));
      child.once('exit', (code) => reject(new Error(`worker exited ${code}`)));
    });
    workers.push({ child, base: `http://127.0.0.1:${port}`, url, samples: [] });
  }
  const askSample = (w) => new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), 10000);
    const on = (m) => {
      if (!m.sample) return;
      clearTimeout(t);
      w.child.off('message', on);
      resolve(m.sample);
    };
    w.child.on('message', on);
    w.child.send('sample');
  });

  const { Client } = require('..');
  const probe = new Client({ url: `unix:${sessd.sock}`, poolSize: 1, clientName: 'soak-probe' });
  await probe.ready();
  const h = new Harness({ workers, probe, maxAgeLo, maxAgeHi, probeShare: 0.2, userSeq: 0 });

  const t0 = Date.now();
  const endAt = t0 + minutes * 60000;
  // --heap-snapshots DIR: worker 0's heap at a quarter of the run and at its end.
  const heapDir = arg('heap-snapshots', null);
  const heapSnapshot = (tag) => new Promise((resolve) => {
    const w = workers[0];
    const on = (m) => {
      if (!m.heapSnapshot) return;
      w.child.off('message', on);
      console.log(`worker 0 heap snapshot: ${m.heapSnapshot}`);
      resolve();
    };
    w.child.on('message', on);
    w.child.send({ heapSnapshot: path.join(heapDir, `worker0-${tag}.heapsnapshot`) });
  });
  let heapTaken = 0;
  const loops = [];
  // Users arrive over the first 20 s rather than all at once.
  for (let i = 0; i < usersN; i++) {
    loops.push(sleep((i * 20000) / usersN).then(() => h.userLoop()));
  }

  // Restarts, spread over the middle 70% of the run.
  const restartLog = [];
  const restarter = (async () => {
    for (let k = 0; k < restarts; k++) {
      const at = t0 + (minutes * 60000) * (0.15 + (0.7 * (k + 0.5)) / restarts);
      await sleep(at - Date.now());
      if (!h.running) return;
      const signal = k % 2 ? 'SIGKILL' : 'SIGTERM';
      const before = procFigures(sessd.pid);
      const t = Date.now();
      h.restarting = true;
      await sessd.stop(signal);
      await sleep(signal === 'SIGKILL' ? 1000 : 300);
      await sessd.start();
      h.restarting = false;
      restartLog.push({ atS: Math.round((t - t0) / 1000), signal, downMs: Date.now() - t, before });
      console.log(`restart ${k + 1}: ${signal}, sessd back after ${Date.now() - t} ms`);
    }
  })();

  const samples = [];
  let lastList = 0;
  let lastCounts = {};
  let lastReq = 0;
  let listOutlived = 0;
  let lastStats = null;
  while (Date.now() < endAt) {
    await sleep(sampleMs - ((Date.now() - t0) % sampleMs));
    const now = Date.now();
    const s = { t: Math.round((now - t0) / 1000) };
    s.sessd = procFigures(sessd.pid);
    const [st, nst, cnt] = await Promise.all([sessctl(sessd.sock, ['--json', 'stats']), sessctl(sessd.sock, ['--json', '--namespace', NS, 'stats']), sessctl(sessd.sock, ['--namespace', NS, 'count'])]);
    try {
      s.stats = JSON.parse(st.out);
      s.nsStats = JSON.parse(nst.out);
    } catch {
      s.stats = null;
      if (!h.restarting) h.violation('sessctl', `stats: ${st.code} ${st.err.trim()} ${nst.err.trim()}`);
    }
    s.count = cnt.code === 0 ? Number(cnt.out.trim()) : null;
    if (cnt.code !== 0 && !h.restarting) h.violation('sessctl', `count: ${cnt.code} ${cnt.err.trim()}`);
    s.sessctlMs = Math.max(st.ms, nst.ms, cnt.ms);
    s.expectedLive = h.expectedLive(now);
    if (now - lastList >= 15000) {
      lastList = now;
      const listStart = Date.now();
      const l = await sessctl(sessd.sock, ['--namespace', NS, 'list']);
      if (l.code === 0) {
        const lines = l.out.split('\n').filter(Boolean);
        s.listed = lines.length;
        let maxTtl = 0;
        const seen = Date.now();
        for (const line of lines) {
          const [id, ttl] = line.split(/\s+/);
          maxTtl = Math.max(maxTtl, Number(ttl));
          const end = h.ends.get(id);
          if (end !== undefined && end < seen - 2000) {
            listOutlived++;
            h.violation('outlived', `LIST shows a session whose cookie expired ${seen - end} ms ago`);
          }
          // Destroyed before the LIST started (a logout answered during it may show either way).
          if (h.destroyed.get(id) < listStart) h.violation('outlived', 'LIST shows a session destroyed by a logout');
        }
        s.listMaxTtl = maxTtl;
      } else if (!h.restarting) h.violation('sessctl', `list: ${l.code} ${l.err.trim()}`);
    }
    s.workers = await Promise.all(workers.map(askSample));
    s.data = dataDirFigures(dataDir);
    const total = Object.values(h.counts).reduce((a, b) => a + b, 0);
    s.reqPerS = Math.round(((total - lastReq) * 1000) / sampleMs);
    lastReq = total;
    s.p50 = pct(h.latencies, 50);
    s.p99 = pct(h.latencies, 99);
    s.pmax = h.latencies.length ? Math.max(...h.latencies) : null;
    h.latencies = [];
    s.driftP50 = pct(h.drift, 50);
    s.driftMin = h.drift.length ? Math.min(...h.drift) : null;
    s.driftMax = h.drift.length ? Math.max(...h.drift) : null;
    h.drift = [];
    s.inflight = h.inflight;
    s.tracked = h.ends.size;
    s.harnessHeap = process.memoryUsage().heapUsed;
    s.violations = Object.values(h.violations).reduce((a, b) => a + b, 0);
    if (s.stats && lastStats) {
      s.stalls1ms = s.stats.loop_stalls_over_1ms - lastStats.loop_stalls_over_1ms;
      s.stalls10ms = s.stats.loop_stalls_over_10ms - lastStats.loop_stalls_over_10ms;
    }
    if (s.stats) lastStats = s.stats;
    samples.push(s);
    if (heapDir && heapTaken === 0 && now - t0 >= (endAt - t0) / 4) {
      heapTaken++;
      await heapSnapshot('early');
    }
    const w = s.workers.filter(Boolean);
    console.log(`t=${s.t}s req/s ${s.reqPerS} p99 ${s.p99} ms | sessd rss ${s.sessd ? s.sessd.rssKb : '-'} KB fds ${s.sessd ? s.sessd.fds : '-'} | sessions ${s.stats ? s.stats.sessions : '-'} count ${s.count} expected ${s.expectedLive} bytes ${s.stats ? s.stats.bytes : '-'} conns ${s.stats ? s.stats.connections : '-'} stall max ${s.stats ? s.stats.loop_stall_max_us : '-'} us | ` +
      `node heap ${w.map((x) => Math.round(x.heapUsed / 1024)).join('/')} KB rss ${w.map((x) => Math.round(x.rss / 1048576)).join('/')} MB handles ${w.map((x) => Object.values(x.handles).reduce((a, b) => a + b, 0)).join('/')} pending ${w.map((x) => x.pending).join('/')} | ` +
      `data ${s.data ? `${s.data.logs} logs ${s.data.logBytes} B, ${s.data.snaps} snaps ${s.data.snapBytes} B` : '-'} | drift ${s.driftMin}..${s.driftMax} | violations ${s.violations}`);
    lastCounts = h.counts;
  }
  if (heapDir) await heapSnapshot('late');
  h.running = false;
  await restarter;
  // Let the users finish what they are doing (they check nothing once stopped).
  await Promise.race([Promise.all(loops), sleep(30000)]);

  // Start, middle, end.
  const pick = (i) => samples[Math.max(0, Math.min(samples.length - 1, i))];
  const marks = [pick(1), pick(Math.floor(samples.length / 2)), pick(samples.length - 1)];
  const row = (name, f) => {
    const v = marks.map((m) => {
      try {
        const x = f(m);
        return x === null || x === undefined ? '-' : String(x);
      } catch {
        return '-';
      }
    });
    console.log(`${name.padEnd(40)} ${v.map((x) => x.padStart(16)).join('')}`);
  };
  console.log(`\n${'figure'.padEnd(40)} ${marks.map((m) => `t=${m.t}s`.padStart(16)).join('')}`);
  row('sessd RSS KB', (m) => m.sessd.rssKb);
  row('sessd open fds', (m) => m.sessd.fds);
  row('sessd threads', (m) => m.sessd.threads);
  row('STATS sessions', (m) => m.stats.sessions);
  row('COUNT', (m) => m.count);
  row('sessions expected live (harness)', (m) => m.expectedLive);
  row('LIST entries (last list)', (m) => samples.slice(0, samples.indexOf(m) + 1).reverse().find((x) => x.listed !== undefined)?.listed);
  row('STATS bytes', (m) => m.stats.bytes);
  row('STATS soak namespace flashes', (m) => m.nsStats.flashes);
  row('STATS connections', (m) => m.stats.connections);
  row('STATS connections_total', (m) => m.stats.connections_total);
  row('STATS expired_total', (m) => m.stats.expired_total);
  row('STATS requests_total', (m) => m.stats.requests_total);
  row('STATS client_bytes', (m) => m.stats.client_bytes);
  row('STATS loop_stall_max_us', (m) => m.stats.loop_stall_max_us);
  row('STATS loop_stalls_over_10ms', (m) => m.stats.loop_stalls_over_10ms);
  row('requests/s (harness)', (m) => m.reqPerS);
  row('latency p50 / p99 / max ms', (m) => `${m.p50}/${m.p99}/${m.pmax}`);
  row('sessctl slowest call ms', (m) => m.sessctlMs);
  for (let i = 0; i < workers.length; i++) {
    row(`worker ${i} heapUsed KB (after GC)`, (m) => Math.round(m.workers[i].heapUsed / 1024));
    row(`worker ${i} RSS MB`, (m) => Math.round(m.workers[i].rss / 1048576));
    row(`worker ${i} handles (all types)`, (m) => Object.values(m.workers[i].handles).reduce((a, b) => a + b, 0));
    row(`worker ${i} sockets (Pipe+TCP, server incl.)`, (m) => (m.workers[i].handles.PipeWrap || 0) + (m.workers[i].handles.TCPSocketWrap || 0) + (m.workers[i].handles.TCPServerWrap || 0));
    row(`worker ${i} timers (Timeout)`, (m) => m.workers[i].handles.Timeout || 0);
    row(`worker ${i} http connections`, (m) => m.workers[i].httpConnections);
    row(`worker ${i} pending/waiters/listeners`, (m) => `${m.workers[i].pending}/${m.workers[i].readyWaiters}/${m.workers[i].clientListeners + m.workers[i].connListeners}`);
  }
  if (dataDir) {
    row('data dir files', (m) => m.data.files);
    row('data dir bytes', (m) => m.data.bytes);
    row('data dir logs / snaps', (m) => `${m.data.logs} / ${m.data.snaps}`);
  }
  console.log('\ncounts:', JSON.stringify(h.counts));
  console.log(`users done ${h.usersDone}, cart adds ${h.adds}, logouts ${h.logouts}, abandoned ${h.abandoned}, replays ${h.replays}, near-expiry returns ${h.nearExpiry}, flashes shown ${h.flashShown}, returns the jar had expired (harness late) ${h.jarExpired}, requests that outlasted their session (answered after its end, less 1 s) ${h.expiredInFlight}`);
  console.log(`ttl drift (sessd end - cookie expires, ms): n ${h.driftAll.n}, min ${h.driftAll.min}, max ${h.driftAll.max}, over +5 ms ${h.driftAll.over5}, under -5 ms ${h.driftAll.under5}; probes over 40 ms not counted: ${h.slowProbes}`);
  for (const [route, r] of Object.entries(h.driftByRoute)) console.log(`  after ${route}: n ${r.n}, min ${r.min}, max ${r.max}, over +5 ms ${r.over5}, under -5 ms ${r.under5}`);
  console.log('expiry checks:', JSON.stringify(h.expiryChecks), `LIST outlived ${listOutlived}`);
  console.log('restarts:', JSON.stringify(restartLog));
  console.log('worker errors:', JSON.stringify(samples[samples.length - 1].workers.map((w) => w && { errors: w.errors, touchErrors: w.touchErrors, disconnects: w.disconnects, churned: w.churned, churnErrors: w.churnErrors })));
  console.log('violations:', JSON.stringify(h.violations));
  for (const v of h.firstViolations) console.log('  ' + v);

  if (outFile) fs.writeFileSync(outFile, JSON.stringify({ args: process.argv.slice(2), samples, counts: h.counts, violations: h.violations, firstViolations: h.firstViolations, drift: h.driftAll, driftByRoute: h.driftByRoute, slowProbes: h.slowProbes, expiry: h.expiryChecks, restarts: restartLog }, null, 1));

  for (const w of workers) {
    w.child.send('stop');
    await new Promise((r) => {
      const t = setTimeout(() => {
        w.child.kill();
        r();
      }, 10000);
      w.child.once('exit', () => {
        clearTimeout(t);
        r();
      });
    });
  }
  probe.close();
  agent.destroy();
  await sessd.stop('SIGTERM');
  console.log(`sessd log: ${path.join(dir, 'sessd.log')}`);
  process.exitCode = Object.keys(h.violations).length ? 1 : 0;
}

if (process.argv.includes('--app')) runApp();
else {
  main().catch((err) => {
    console.error(err);
    process.exit(2);
  });
}
