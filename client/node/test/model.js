'use strict';
// A model-based, randomized check of connect-sessd as Express apps use it: two app processes'
// worth of Express apps (express-session, a SessdStore, flash()) in this process, one on sessd's
// Unix socket and one over TCP through the fault proxy, and many simulated browsers (cookie
// jars), each running a seeded random sequence of page views, logins (regenerate), logouts
// (destroy), bursts of concurrent cart adds from several tabs, flash pushes followed by their
// redirect, reloads and slow requests that save late, with sessd killed (-9) and restarted on
// its data directory, restarted with SIGTERM, stopped (SIGSTOP) and its TCP connections cut
// meanwhile. Every answer is checked against a model of what each browser was promised, by
// session id; what sessd holds at the end is checked against it too.
//
// Used by test/model.test.js (one short fixed seed) and bench/model-check.js (long runs, many
// seeds). runModel(options) returns { violations, stats }; violations is empty when every
// answer agreed with the model.
//
// What the model takes from connect-sessd's README rather than from a stricter wish:
// - A cart add answered 200 after req.session.save() succeeded is kept until its session ends
//   (logout, or a login's regenerate: the new session starts with an empty cart). One answered
//   before its save (express-session saves after the response) is kept unless that save
//   failed, which reaches the app's error handler after the response ("A save that fails").
// - A save or a flash push to a session a concurrent logout or login destroyed is dropped
//   (the push resolves 0); so is a flash queued on a session a login regenerates away (only the
//   login request's own flashes move).
// - A flash push or pop in flight when sessd is killed may fail (503) and its message may be
//   lost; it is never shown twice. Without a fault between its push and the end, a flash
//   pushed by a request answered 303 is shown exactly once.
// - A slow request of the old session answering after a login gives the browser the old,
//   destroyed id back: that browser is logged out (README, "What it does not do").
// - A 503 (and a save failing after its response) only where sessd was faulted: the app's own
//   crashes and graceful restarts cost the requests they cut, no 503 (excused503).
// - A logout drops the whole session: no record under its id at the end, none served under it
//   later, and the next page a fresh session (checkFresh).
// - Every record of the namespace at the end is one the model explains (scanNamespace).

const express = require('express');
const session = require('express-session');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const signature = require('cookie-signature');
const { SessdStore, flash } = require('..');
const { Daemon, listen, closeServer, sleep, waitFor, restartablePort } = require('./helpers');
const { faultProxy, tcpTarget } = require('./faultproxy');
const { fork } = require('child_process');
const cluster = require('cluster');
const net = require('net');
const { AsyncLocalStorage } = require('async_hooks');

// The store calls each request made (traceStoreCalls), for a hang's report: which call waited,
// how long, and how many connections the pool made ready meanwhile (each an outage met).
const callTrail = new AsyncLocalStorage();
const TRACED_CALLS = ['load', 'get', 'set', 'setIf', 'touch', 'touchIf', 'destroy', 'flashPush', 'flashPushExisting', 'flashPop', 'ttl', 'ttlIfKnown'];

// traceStoreCalls(client): each of the client's TRACED_CALLS made within a request (callTrail)
// noted in its trail: { op, key, at, gen (client.readyGens then), end, endGen, outcome }. Any
// call's start and end, in a request or not, is noted by session key in client.keyMovedAt: a
// save queued behind this process's saves of its session waits on theirs (see the sets in
// makeApp). Each resend of a request of a session (a break or a SHUTTING_DOWN met, see
// Client.resend) is noted by key in client.resentAt ({ at, n }): the call waits again from
// there, within restartWaitMs of its first and timeoutMs more (see Jar.request).
function traceStoreCalls(client) {
  client.keyMovedAt = new Map();
  client.resentAt = new Map();
  const resend = client.resend;
  client.resend = function tracedResend(entry, ...rest) {
    if (entry.key !== undefined) {
      const last = client.resentAt.get(entry.key);
      client.resentAt.set(entry.key, { at: Date.now(), n: last ? last.n + 1 : 1 });
    }
    return resend.call(this, entry, ...rest);
  };
  for (const m of TRACED_CALLS) {
    const orig = client[m];
    client[m] = function traced(...args) {
      const trail = callTrail.getStore();
      const p = orig.apply(this, args);
      if (!p || typeof p.then !== 'function') return p;
      const key = args[1];
      client.keyMovedAt.set(key, Date.now());
      const moved = () => client.keyMovedAt.set(key, Date.now());
      p.then(moved, moved);
      if (!trail) return p;
      const call = { op: m, key, at: Date.now(), gen: client.readyGens, end: null, endGen: null, outcome: null, resentFrom: client.resentAt.get(key)?.n ?? 0 };
      trail.push(call);
      const done = (outcome) => {
        call.end = Date.now();
        call.endGen = client.readyGens;
        call.outcome = outcome;
      };
      p.then(() => done('ok'), (err) => done(err.code || 'error'));
      return p;
    };
  }
}

// queuedSaves(trail): the request's saves (store.set) that wait behind another save
// of their session from this app (SessdStore.savesUnderway): { key, at, queued } each.
function queuedSaves(trail) {
  return trail && trail.sets ? trail.sets.filter((x) => x.end === null && x.queued) : [];
}

// resentSince(call, resentAt): { at, n } of the resends of the call's session since its start,
// or null (see traceStoreCalls).
function resentSince(call, resentAt) {
  const r = resentAt && resentAt.get(call.key);
  return r && r.at >= call.at && r.n > call.resentFrom ? { at: r.at, n: r.n - call.resentFrom } : null;
}

// trailText(trail, now, resentAt): a request's store calls, for a hang's report.
function trailText(trail, now, resentAt) {
  const queued = queuedSaves(trail).map((x) => `, a save queued behind another of its session's for ${now - x.at} ms`).join('');
  if (!trail || trail.length === 0) return `no store call${queued}`;
  const t0 = trail[0].at;
  const resent = (c) => {
    const r = resentSince(c, resentAt);
    return r ? `, ${r.n} resend${r.n === 1 ? '' : 's'} of its session's requests since, the last ${now - r.at} ms ago` : '';
  };
  return trail.map((c) => `${c.op} at +${c.at - t0} ms ${c.end === null ? `pending ${now - c.at} ms (ready gen ${c.gen} at its start${resent(c)})` : `${c.end - c.at} ms ${c.outcome} (ready gens ${c.gen}->${c.endGen})`}`).join(', ') + queued;
}

// The event loop's turns, as a 100 ms interval's runs in the last minute: a hang's report says
// how many ran over the bound (one in ten idle), which tells a starved process (load 60-80 in a
// half-CPU cgroup: 5-30 of 150) from a wait in connect-sessd.
const loopTurns = [];
function countLoopTurns() {
  if (loopTurns.timer) return;
  loopTurns.timer = setInterval(() => {
    const now = Date.now();
    loopTurns.push(now);
    while (loopTurns[0] < now - 60000) loopTurns.shift();
  }, 100);
  loopTurns.timer.unref();
}

const SECRET = 'model-check-secret';

// mulberry32: a small seeded PRNG, so that a seed replays the same choices.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
  };
}

function mergeCart(base = [], mine = [], theirs = []) {
  const removed = base.filter((item) => !mine.includes(item));
  const added = mine.filter((item) => !base.includes(item) && !theirs.includes(item));
  return [...theirs.filter((item) => !removed.includes(item)), ...added];
}

function mergeKey(key, base, mine, theirs) {
  if (key === 'cart') return mergeCart(base, mine, theirs);
  if (key === 'views') return (theirs || 0) + ((mine || 0) - (base || 0));
  return mine;
}

// makeApp(store, name): the app under test. Every JSON answer names the session it served
// (sid), so that the model can follow each browser's sessions.
function makeApp(store, name, sessionOptions = {}) {
  const app = express();
  app.locals.lateErrors = [];
  app.locals.sessionOptions = sessionOptions;
  app.locals.errors = [];
  // Saves express-session makes of a session whose request the error handler answered 5xx.
  app.locals.answered5xx = new Map();
  app.locals.finalErrors = [];
  app.locals.savesAfter5xx = [];
  // Each save a request makes, in its trail's sets: { key, at, end, queued }, queued when this
  // app had a save of the session under way then, which it waits for (see queuedSaves).
  const set = store.set.bind(store);
  store.set = (sid, sess, cb) => {
    const trail = callTrail.getStore();
    let key = null;
    try {
      key = store.key(sid);
    } catch {
      // A bad id: set() says so through cb.
    }
    const save = { key, at: Date.now(), end: null, queued: key !== null && store.savesUnderway.has(key) };
    if (trail) (trail.sets ??= []).push(save);
    return set(sid, sess, (err) => {
      save.end = Date.now();
      if (err && app.locals.answered5xx.has(sid)) app.locals.savesAfter5xx.push(`${app.locals.answered5xx.get(sid)} then save: ${err.code}`);
      if (cb) cb(err);
    });
  };
  // Where each request is, by its x-model-id header, for a hang's report, and its store calls.
  app.locals.phase = new Map();
  app.locals.trails = new Map();
  traceStoreCalls(store.client);
  // Each request's arrival in the app and its end ({ at, doneAt, cut, trail, keyMovedAt }: cut,
  // the phase it was in when its connection closed unanswered; trail, its store calls and saves;
  // keyMovedAt, its client's, see traceStoreCalls), for the hang bound
  // (which runs from the arrival or its store calls' latest start or end: Jar.request) and a
  // hang's report (the browser that gave up closed it); the browser's req() removes it once
  // answered, a worker once finished.
  app.locals.reached = new Map();
  app.use((req, res, next) => {
    const id = req.headers['x-model-id'];
    app.locals.phase.set(id, 'loading the session');
    const trail = [];
    const reached = { at: Date.now(), doneAt: null, cut: null, trail, keyMovedAt: store.client.keyMovedAt, resentAt: store.client.resentAt };
    app.locals.reached.set(id, reached);
    res.on('finish', () => {
      app.locals.phase.delete(id);
      app.locals.trails.delete(id);
      reached.doneAt ??= Date.now();
    });
    res.on('close', () => {
      if (!res.writableFinished) reached.cut ??= app.locals.phase.get(id) || 'the app';
      app.locals.phase.delete(id);
      app.locals.trails.delete(id);
    });
    const end = res.end;
    res.end = function phaseEnd(...args) {
      app.locals.phase.set(id, `res.end called (${res.statusCode}); express-session saving or flashes held`);
      return end.apply(this, args);
    };
    req.modelId = id;
    // An error that reaches Express's final handler after the response went out (it logs the
    // error and destroys the socket): which request it was.
    const destroy = req.socket.destroy;
    req.socket.destroy = function finalDestroy(...args) {
      if (res.headersSent && /finalhandler/.test(new Error().stack)) app.locals.finalErrors.push(`${req.method} ${req.url.split('?')[0]} answered ${res.statusCode}`);
      return destroy.apply(this, args);
    };
    app.locals.trails.set(id, trail);
    callTrail.run(trail, next);
  });
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 }, ...sessionOptions }));
  app.locals.flashErrors = new Set();
  app.use((req, res, next) => {
    app.locals.phase.set(req.modelId, 'in the route');
    next();
  });
  app.use(flash({ onError: (err, req) => app.locals.flashErrors.add(req.query.m || req.query.w || req.query.regen) }));
  // The example's guard: express-session passes requests through without a session while
  // the store is disconnected.
  app.use((req, res, next) => (req.session ? next() : res.status(503).json({ error: 'sessions unavailable' })));
  const view = (req) => ({
    app: name,
    sid: req.sessionID,
    user: req.session.user ?? null,
    cart: req.session.cart || [],
    views: req.session.views || 0,
    note: req.session.note ?? null,
  });
  app.get('/page', flash.locals(), (req, res) => {
    // Half the pages count the view (a merged save); the others change nothing (a TOUCH_IF).
    if (req.query.count !== '0') req.session.views = (req.session.views || 0) + 1;
    res.json({ ...view(req), flashes: res.locals.flash });
  });
  // A login in passport's shape: a successFlash pushed (not awaited) just before the
  // regenerate, which moves it to the new session (regenerateFlashes 'own').
  app.post('/login', (req, res, next) => {
    if (req.query.w) req.flash('info', req.query.w);
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.query.u;
      req.session.cart = [];
      return req.session.save((err2) => (err2 ? next(err2) : res.json(view(req))));
    });
  });
  // A logout by destroy(), or passport's: regenerate(), then a flash for the next page.
  app.post('/logout', (req, res, next) => {
    const sid = req.sessionID;
    if (req.query.regen) {
      return req.session.regenerate((err) => {
        if (err) return next(err);
        return req.flash('info', req.query.regen).then((n) => res.json({ app: name, sid, newSid: req.sessionID, n }), next);
      });
    }
    return req.session.destroy((err) => (err ? next(err) : res.json({ app: name, sid, ok: true })));
  });
  app.post('/cart', (req, res, next) => {
    if (!req.session.user) return res.status(401).json({ ...view(req), error: 'not logged in' });
    req.itemTag = req.query.item;
    req.session.cart = [...(req.session.cart || []), req.query.item];
    if (req.query.first === '1') return req.session.save((err) => (err ? next(err) : res.json(view(req))));
    return res.json(view(req));
  });
  app.post('/flash', (req, res, next) => {
    res.set('x-sid', req.sessionID); // the session the push went to, whatever the jar holds
    if (req.query.await === '0') {
      // connect-flash style: not awaited; the redirect is held until it is stored.
      req.flash('info', req.query.m);
      return res.redirect(303, '/page');
    }
    return req.flash('info', req.query.m).then((n) => {
      res.set('x-flash-n', String(n));
      res.redirect(303, '/page');
    }, next);
  });
  // The early save (connect-sessd's presave): a push not awaited, then the response's end, so
  // that the session's save goes out behind the push and the end waits for both. kind: cart (a
  // changed key), note (a new or changed key), none (no change: the touch), cookie (the cookie
  // alone: its maxAge), save (req.session.save() not awaited, then the redirect), destroy
  // (res.redirect(), then req.session.destroy()), regen (a logout's regenerate() after the push,
  // which moves it to the new session, then the redirect), logout (regenerate(), then the push
  // to the new session, saved behind it).
  app.locals.destroyErrors = new Map();
  app.post('/early', (req, res, next) => {
    const kind = req.query.kind;
    res.set('x-sid', req.sessionID);
    if ((kind === 'cart' || kind === 'save') && !req.session.user) return res.status(401).json({ ...view(req), error: 'not logged in' });
    if (kind === 'cart' || kind === 'save') {
      req.itemTag = req.query.item;
      req.session.cart = [...(req.session.cart || []), req.query.item];
    }
    if (kind === 'note') req.session.note = req.query.v;
    if (kind === 'cookie') req.session.cookie.maxAge = req.session.cookie.originalMaxAge === 3600000 ? 3000000 : 3600000;
    if (kind === 'logout') {
      // passport 0.7's logout, connect-flash style: regenerate(), then a push not awaited.
      return req.session.regenerate((err) => {
        if (err) return next(err);
        res.set('x-new-sid', req.sessionID);
        req.flash('info', req.query.m);
        return res.redirect(303, '/page');
      });
    }
    req.flash('info', req.query.m);
    if (kind === 'save') req.session.save();
    if (kind === 'regen') {
      return req.session.regenerate((err) => {
        if (err) return next(err);
        res.set('x-new-sid', req.sessionID);
        return res.redirect(303, '/page');
      });
    }
    res.redirect(303, '/page');
    if (kind === 'destroy') {
      const sid = req.sessionID;
      req.session.destroy((err) => {
        if (err) app.locals.destroyErrors.set(sid, err.code);
      });
    }
    return undefined;
  });
  // A visitor's first page: a flash for a session not in sessd yet (FLASH_PUSH and SET behind it).
  app.get('/hello', (req, res) => {
    res.set('x-sid', req.sessionID);
    req.flash('info', req.query.m);
    res.redirect(303, '/page');
  });
  app.get('/reload', (req, res, next) => req.session.reload((err) => (err ? next(err) : res.json(view(req)))));
  app.post('/slow', (req, res) => {
    req.session.note = req.query.v;
    setTimeout(() => res.json(view(req)), Number(req.query.ms));
  });
  app.use((err, req, res, next) => {
    if (res.headersSent) {
      app.locals.lateErrors.push({ tag: req.itemTag ?? null, url: req.url, code: err.code ?? null, message: err.message });
      return undefined;
    }
    app.locals.errors.push({ url: req.url, code: err.code ?? null, message: err.message });
    app.locals.answered5xx.set(req.sessionID, `${req.method} ${req.url.split('?')[0]} (${err.code})`);
    return res.status(err.statusCode || err.status || 500).json({ sid: req.sessionID ?? null, error: err.message, code: err.code ?? null });
  });
  return app;
}

// A cookie jar that sends what it holds at each request's start, as a browser does.
class Jar {
  constructor() {
    this.sid = null;
  }

  get sidValue() {
    if (!this.sid) return null;
    return decodeURIComponent(this.sid).slice(2).split('.')[0];
  }

  // track: an object whose abort(error) the caller may call to give up on the request (a
  // browser or load balancer timing out on a stopped app process).
  // reached(): null until the request reached the app, then { at, doneAt, trail } (makeApp's
  // app.locals.reached), or no function (an app in another process): boundMs from the send.
  // With it the bound runs from the arrival, the time connect-sessd and the app owe: before
  // it the request waits in the app server's listen queue, which Node drains one connection a
  // listener a loop turn, and this one process runs the browsers, the apps, the fault proxy
  // and sessd's spawns (42-49 connections queued for about 4 s on a loaded machine). That
  // wait has a bound of its own, boundMs from the send: a page the app never takes hangs too.
  // In the app, the bound runs again from each start or end of one of its store calls (the
  // trail's): each call may wait out an outage (README, "Restarts and outages"), so a request
  // that met several on a loaded machine took longer than boundMs while never stuck (at load
  // 44 and up on 2 cores: each call done in 0.2-8 s, 15 s in all); a call that never ends, or
  // an app that never goes on after one, still hangs boundMs after. A resend of a pending
  // call's session (its request met a break or a SHUTTING_DOWN: client.resentAt) counts as well:
  // one call may wait out two outages, one before it is sent and one from its first break, up
  // to twice timeoutMs + restartWaitMs (16 s here, past boundMs), and a merged save's SET_IF
  // that meets its own write then reads the session (traced at load 40-48 in a 40% cgroup: a
  // SET_IF sent, broken 3.8 s later, resent when the pool was ready again 3.3 s after, answered
  // CONFLICT 2.4 s later, its GET 1.3 s: 10.9 s, 13 of 109 loop ticks run). A call whose
  // request is never resent still hangs boundMs after its break. A save (store.set) counts
  // as a call from its start, and one queued behind this app's saves of its session (tabs
  // saving at once: SessdStore's savesUnderway) waits on theirs, so their calls on the session
  // count too: at load 60-80 in a half-CPU cgroup, one tab's save (an outage met, a CONFLICT,
  // a GET, a second SET_IF) took 17 s, each call ending, and the tab queued behind it started
  // none of its own for 15 s. A queue that never moves still hangs. An answer the app finished
  // gets 5 s more to be read. The HANG's where says which.
  request(base, method, p, boundMs, id, track = {}, reached = null) {
    const url = new URL(p, base);
    const headers = { 'x-model-id': id };
    const sentSid = this.sidValue;
    if (this.sid) headers.cookie = `sid=${this.sid}`;
    return new Promise((resolve) => {
      let done = false;
      const finish = (v) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ sentSid, ...v });
      };
      const req = http.request(url, { method, headers, agent: false }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          data += d;
        });
        res.on('end', () => {
          for (const c of res.headers['set-cookie'] || []) {
            const [pair] = c.split(';');
            const i = pair.indexOf('=');
            if (pair.slice(0, i).trim() === 'sid') this.sid = pair.slice(i + 1).trim();
          }
          let body = null;
          try {
            body = JSON.parse(data);
          } catch {
            body = data;
          }
          finish({ status: res.statusCode, headers: res.headers, body });
        });
        res.on('error', (err) => finish({ status: 0, error: err.code || err.message }));
      });
      const sentAt = Date.now();
      let timer = null;
      const check = () => {
        const r = reached ? reached() : null;
        const movedAt = r ? Math.max(r.at, ...r.trail.map((call) => call.end ?? resentSince(call, r.resentAt)?.at ?? call.at), ...(r.trail.sets || []).map((x) => x.at), ...queuedSaves(r.trail).map((x) => r.keyMovedAt.get(x.key) ?? 0)) : null;
        const until = !reached ? sentAt + boundMs : !r ? sentAt + boundMs : r.doneAt === null ? movedAt + boundMs : Math.max(r.at + boundMs, r.doneAt + 5000);
        if (Date.now() < until) {
          timer = setTimeout(check, until - Date.now());
          return;
        }
        req.destroy();
        const where = !reached ? null : !r ? `never reached the app within ${boundMs} ms of its send` : r.doneAt === null ? `in the app for ${Date.now() - r.at} ms, ${Date.now() - movedAt} ms since it arrived, a store call of its started or ended, or its session's requests were resent (reached it ${r.at - sentAt} ms after the send)` : `answered by the app ${r.doneAt - sentAt} ms after the send, the answer not read`;
        finish({ status: 0, error: 'HANG', hangWhere: where });
      };
      timer = setTimeout(check, boundMs);
      track.abort = (error) => {
        req.destroy();
        finish({ status: 0, error });
      };
      req.on('error', (err) => finish({ status: 0, error: err.code || err.message }));
      req.end();
    });
  }
}

async function runModel(opts = {}) {
  const o = {
    seed: 1,
    browsers: 6,
    steps: 30,
    faults: false,
    faultEveryMs: [400, 1200],
    // faultEveryRequests: requests answered (or failed) between the end of one fault of
    // sessd's and the next, besides faultEveryMs (null: as many as there are browsers).
    faultEveryRequests: null,
    downMs: [20, 600], // how long sessd stays down after a kill or a stop
    stopMs: [50, 1200], // how long a SIGSTOP lasts (below timeoutMs: nothing times out)
    persist: true,
    timeoutMs: 3000,
    restartWaitMs: 5000,
    log: () => {},
    minFaults: 0, // faults the browsers' steps go on for (see run)
    migrate: 0, // browsers that start with a session in an old store (migrateFrom, a MemoryStore)
    storeOptions: {}, // more SessdStore options (merge: false shows the check failing)
    // workers: N app worker processes (test/fixtures/model-worker.js, each its own store
    // pool; even ones on the Unix socket, odd ones over TCP through the fault proxy) instead
    // of the two apps in this process, and faults of the app's own: workerFaultKinds, in turn
    // or (workerFaultKinds null) at random, every workerFaultEveryMs.
    workers: 0,
    workerFaultKinds: null,
    workerFaultEveryMs: [300, 1500],
    workerDownMs: [20, 500], // how long a killed worker stays down before its restart
    wstopMs: [3500, 6000], // how long a worker stays stopped; its browsers give up at the end
    daemonFaults: true, // with workers, false: the app's faults only
    // cluster: the workers are node:cluster workers of this process, sharing one listening
    // port (the primary hands each connection to one): browsers cannot pick a worker, and
    // learn which one answered from its x-model-worker header only (see clusterFork).
    cluster: false,
    // clusterSched: 'rr' (Node's default on Linux: the primary accepts and hands each
    // connection to a worker) or 'none' (the workers accept on the shared socket). Set before
    // the process's first fork; it stays for the process.
    clusterSched: 'rr',
    // workerExpressSession: directories of express-session packages, worker i loading the
    // (i mod n)th (null: client/node's own): a fleet part-way through an upgrade.
    workerExpressSession: null,
    // early: the early save's actions too (a push not awaited, then a redirect, with each kind of
    // change, a save() not awaited, a destroy or regenerate after it, two tabs at once, a first
    // visit); rolling: the TCP app with express-session's rolling.
    early: false,
    rolling: false,
    // watch(stats): given the run's stats as it starts, which it updates as it goes
    // (stats.requests: the answers checked so far), so that a caller can tell a run that has
    // stopped from a slow one.
    watch: () => {},
    ...opts,
  };
  const r = rng(o.seed);
  const violations = [];
  const violate = (msg) => {
    if (violations.length < 200) violations.push(msg);
  };
  // mostReadies: the most connections an app's pool made ready while one request was out (each
  // outage the request met readies a pool's connections again; in-process apps only).
  const stats = { requests: 0, byStatus: {}, faults: {}, workerFaults: {}, flashesShown: 0, addsAcked: 0, cutByWorkerFault: 0, mostReadies: 0 };
  o.watch(stats);
  const cleanups = [];
  const t = { after: (fn) => cleanups.push(fn) };
  const unhandled = (err) => violate(`unhandled rejection: ${err && (err.stack || err)}`);
  process.on('unhandledRejection', unhandled);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-model-'));
  const d = new Daemon({ dir: path.join(dir, 'd'), logFile: o.workers ? path.join(dir, 'sessd.log') : null });
  fs.mkdirSync(d.dir);
  if (o.persist) d.extraArgs = ['--data-dir', path.join(dir, 'data')];
  let daemonUp = true;
  // One TCP port across restarts, so the proxy's target stays.
  d.tcpPort = await restartablePort();
  await d.start();
  const proxy = await faultProxy(t, tcpTarget(d.tcpUrl));
  o.log(`sessd ${d.tcpUrl}, proxy ${proxy.url}`);

  const storeOpts = { namespace: 'model', mergeKey, timeoutMs: o.timeoutMs, restartWaitMs: o.restartWaitMs, reconnectMinMs: 20, reconnectMaxMs: 200, ...o.storeOptions };
  // The app's previous store, shared by both app processes (as their Redis was).
  const oldStore = o.migrate ? new session.MemoryStore() : null;
  const apps = [];
  // With workers: what their app noted (a report from each incarnation that ended
  // gracefully, and from each live one at the end), and what they wrote to stderr.
  const workerReports = [];
  let workerLog = '';
  // clusterFork(env): a node:cluster worker running the model's worker fixture on the shared
  // port (this process is the cluster's primary); its ChildProcess, as fork() gives.
  const clusterFork = (env) => {
    if (!cluster.workers || Object.keys(cluster.workers).length === 0) cluster.schedulingPolicy = o.clusterSched === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
    cluster.setupPrimary({ exec: path.join(__dirname, 'fixtures', 'model-worker.js'), args: [], silent: true });
    const w = cluster.fork({ ...env, MODEL_PORT: String(clusterFront.port) });
    w.process.stdout.resume();
    return w.process;
  };
  // startWorker(a): forks a's next incarnation and resolves once it is ready (a.up).
  const startWorker = (a) => new Promise((resolve, reject) => {
    const { mergeKey: _m, ...plain } = storeOpts;
    const env = { MODEL_URL: a.url, MODEL_NAME: a.name, MODEL_STORE: JSON.stringify(plain), MODEL_GEN: String(a.gen + 1) };
    const es = o.workerExpressSession ? o.workerExpressSession[Number(a.name.slice(1)) % o.workerExpressSession.length] : null;
    if (es) env.MODEL_EXPRESS_SESSION = es;
    const proc = o.cluster ? clusterFork(env) : fork(path.join(__dirname, 'fixtures', 'model-worker.js'), [], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    a.gen++;
    a.proc = proc;
    a.exited = new Promise((r2) => proc.once('exit', (code, sig) => r2({ code, sig })));
    proc.stderr.on('data', (chunk) => {
      if (workerLog.length < 1e6) workerLog += `[${a.name}] ${chunk}`;
    });
    proc.on('message', (m) => {
      if (m.ready) {
        a.base = `http://127.0.0.1:${m.port}`;
        a.up = true;
        resolve(a);
      } else if (m.report) {
        if (m.final) workerReports.push(m.report);
        else if (a.onReport) a.onReport(m.report);
      } else if (m.diag && a.onDiag) {
        a.onDiag(m.diag);
      } else if (m.status && a.onStatus) {
        a.onStatus(m.status);
      }
    });
    a.exited.then(({ code, sig }) => reject(new Error(`worker ${a.name} exited (${code ?? sig}) before it was ready`)));
  });
  const ask = (a, what) => new Promise((resolve) => {
    const key = what === 'report' ? 'onReport' : 'onStatus';
    a[key] = (v) => {
      a[key] = null;
      resolve(v);
    };
    a.proc.send(what);
  });
  let checker = null; // with workers: this process's own store, for the end's checks
  // With o.cluster: the one port every worker listens on (fixed, so that it stays when all
  // workers are gone at once and the primary closes it), and what browsers send to.
  let clusterFront = null;
  if (o.cluster) {
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = probe.address().port;
        probe.close(() => resolve(p));
      });
    });
    clusterFront = { name: 'cluster', base: `http://127.0.0.1:${port}`, port, gen: 0, up: true, inflight: new Set(), wfaults: [] };
  }
  if (o.workers) {
    for (let i = 0; i < o.workers; i++) {
      const a = { name: `w${i}`, url: i % 2 ? proxy.url : d.unixUrl, gen: 0, up: false, busy: false, inflight: new Set(), wfaults: [] };
      await startWorker(a);
      apps.push(a);
    }
    checker = new SessdStore({ url: d.unixUrl, ...storeOpts });
    checker.on('error', () => {});
    await waitFor(() => checker.connected, 'the checker store connected');
  } else {
    for (const [name, url] of [['unix', d.unixUrl], ['tcp', proxy.url]]) {
      const store = new SessdStore({ url, ...storeOpts, ...(oldStore ? { migrateFrom: oldStore } : {}) });
      store.on('error', () => {});
      // rolling: the TCP app's express-session sends the cookie with every answer (early saves too).
      const app = makeApp(store, name, o.rolling && name === 'tcp' ? { rolling: true } : {});
      const { server, base } = await listen(app);
      apps.push({ name, store, app, server, base });
    }
    await waitFor(() => apps.every((a) => a.store.connected), 'both stores connected');
  }
  o.log(`sessd apps ${apps.map((a) => a.base).join(' ')}`);

  // Faults: each one's [start, end] in ms; a request that overlaps one (with a grace after
  // its end for the pools to settle) may fail with 503 and lose a flash.
  // startAgain(): d.start(), once more after a failed start: a connection of this process
  // that reached itself on sessd's TCP port holds it until closed (bind fails).
  const startAgain = async () => {
    try {
      await d.start();
    } catch (err) {
      o.log(`restart failed, again: ${err.message.slice(0, 200)}`);
      await sleep(300);
      await d.start();
    }
  };
  const faults = [];
  const GRACE_MS = o.timeoutMs + 500;
  const touchedByFault = (start, end) => faults.some((f) => start <= (f.end ?? Infinity) + GRACE_MS && end >= f.start);
  let running = true;
  let paused = false;
  // Faults are spaced by requests counted, not only by the clock: requests slow down on a loaded
  // machine and the clock does not, so that at load 44 and up on 2 cores one request met a
  // dozen outages (HANG after BOUND_MS, 10-12 connections made ready meanwhile), where on an
  // idle one it meets one or two. Counted from each fault's end: requests wait out an outage.
  const faultEveryRequests = o.faultEveryRequests ?? o.browsers;
  const faultLoop = async () => {
    const fr = rng(o.seed ^ 0x5eed);
    let countedAtLastEnd = stats.requests;
    while (running) {
      await sleep(fr.int(o.faultEveryMs[0], o.faultEveryMs[1]));
      while (running && stats.requests - countedAtLastEnd < faultEveryRequests) await sleep(10);
      if (!running) break;
      // faultKinds: the kinds in turn (a short run meets each); else a random one each time.
      const kind = o.faultKinds ? o.faultKinds[faults.length % o.faultKinds.length] : fr.pick(o.persist ? ['kill', 'term', 'cut', 'stop'] : ['cut', 'stop']);
      const f = { kind, start: Date.now(), end: null };
      faults.push(f);
      stats.faults[kind] = (stats.faults[kind] || 0) + 1;
      try {
        if (kind === 'kill' || kind === 'term') {
          daemonUp = false;
          await d.stop(kind === 'kill' ? 'SIGKILL' : 'SIGTERM');
          await sleep(fr.int(o.downMs[0], o.downMs[1]));
          await startAgain();
          daemonUp = true;
        } else if (kind === 'cut') {
          proxy.closeAll();
        } else if (kind === 'stopterm') {
          // A stuck daemon that the operator restarts: SIGTERM while it is stopped (pending
          // until the SIGCONT that follows), then a new one once it has exited.
          daemonUp = false;
          paused = true;
          await d.pause();
          await sleep(fr.int(o.stopMs[0], o.stopMs[1]));
          const exited = d.stop('SIGTERM');
          await sleep(fr.int(0, 50));
          process.kill(d.pid, 'SIGCONT');
          paused = false;
          await exited;
          await sleep(fr.int(o.downMs[0], o.downMs[1]));
          await startAgain();
          daemonUp = true;
        } else {
          paused = true;
          await d.pause();
          await sleep(fr.int(o.stopMs[0], o.stopMs[1]));
          process.kill(d.pid, 'SIGCONT');
          paused = false;
        }
      } catch (err) {
        violate(`fault ${kind} failed: ${err.message}`);
      }
      f.end = Date.now();
      countedAtLastEnd = stats.requests;
      o.log(`fault ${kind} ${f.end - f.start} ms`);
    }
  };

  // Faults of the app's own, on its worker processes: 'kill' (kill -9 of a worker with
  // requests in flight, as the OOM killer or a crash; restarted after workerDownMs), 'term'
  // (a graceful restart: the balancer stops sending it requests, SIGTERM, it ends the ones in
  // flight and exits, a new one starts), 'stop' (SIGSTOP; its browsers wait, give up after
  // wstopMs, then it resumes and carries out what they had sent), 'mass' (every worker killed
  // -9 at once and restarted together), 'rolling' (each worker in turn restarted by 'term').
  const resetsAtTerm = []; // requests reset by a worker's graceful restart: { what, id }
  const workerExit = async (a, boundMs) => {
    let timer;
    const r2 = await Promise.race([a.exited, new Promise((res) => {
      timer = setTimeout(() => res(null), boundMs);
    })]);
    clearTimeout(timer);
    return r2;
  };
  const killWorker = async (a, fr) => {
    const f = { kind: 'kill', app: a, gen: a.gen, start: Date.now(), end: null };
    a.wfaults.push(f);
    a.up = false;
    a.proc.kill('SIGKILL');
    await a.exited;
    await sleep(fr.int(o.workerDownMs[0], o.workerDownMs[1]));
    await startWorker(a);
    f.end = Date.now();
    return f;
  };
  const termWorker = async (a) => {
    const f = { kind: 'term', app: a, gen: a.gen, start: Date.now(), end: null };
    a.wfaults.push(f);
    a.up = false; // the balancer sends it nothing more
    await sleep(50); // and the requests sent it meanwhile reach it
    a.proc.kill('SIGTERM');
    const ex = await workerExit(a, 25000);
    if (ex === null) {
      violate(`worker ${a.name}: still running 25 s after SIGTERM (a graceful restart that does not end)`);
      a.proc.kill('SIGKILL');
      await a.exited;
    } else if (ex.code !== 0) {
      violate(`worker ${a.name}: graceful restart exited ${ex.code ?? ex.sig}`);
    }
    await startWorker(a);
    f.end = Date.now();
    return f;
  };
  const workerFaultLoop = async () => {
    const fr = rng(o.seed ^ 0xa99);
    const kinds = o.workerFaultKinds || ['kill', 'kill', 'term', 'stop', 'mass', 'rolling'];
    let n = 0;
    while (running) {
      await sleep(fr.int(o.workerFaultEveryMs[0], o.workerFaultEveryMs[1]));
      if (!running) break;
      const kind = o.workerFaultKinds ? kinds[n++ % kinds.length] : fr.pick(kinds);
      stats.workerFaults[kind] = (stats.workerFaults[kind] || 0) + 1;
      const t1 = Date.now();
      try {
        if (kind === 'mass') {
          await Promise.all(apps.map((a) => killWorker(a, fr)));
        } else if (kind === 'rolling') {
          for (const a of apps) await termWorker(a);
        } else {
          const a = fr.pick(apps);
          // Mid-request: wait (a while at most) until it has some in flight.
          const inflight = o.cluster ? clusterFront.inflight : a.inflight;
          await waitFor(() => inflight.size > 0, 'a request in flight', 1000, 2).catch(() => {});
          await sleep(fr.int(0, 15));
          if (kind === 'kill') {
            await killWorker(a, fr);
          } else if (kind === 'term') {
            await termWorker(a);
          } else {
            const f = { kind: 'stop', app: a, gen: a.gen, start: Date.now(), end: null };
            a.wfaults.push(f);
            a.proc.kill('SIGSTOP');
            await sleep(fr.int(o.wstopMs[0], o.wstopMs[1]));
            // With o.cluster the browsers cannot tell the stopped worker's requests from the
            // others': they wait (wstopMs is below BOUND_MS) and get their answers late.
            if (!o.cluster) for (const tr of a.inflight) tr.abort('GAVE_UP (worker stopped)');
            f.end = Date.now();
            a.proc.kill('SIGCONT');
          }
        }
      } catch (err) {
        violate(`worker fault ${kind} failed: ${err.message}`);
      }
      o.log(`worker fault ${kind} ${Date.now() - t1} ms`);
    }
  };
  // wfaulted(a, gen, start, end, kinds): a fault of those kinds on a's incarnation gen that
  // overlaps [start, end] (grace: after its end, as for sessd's faults).
  const wfaulted = (a, gen, start, end, kinds, grace = 0) => Boolean(a && a.wfaults && a.wfaults.some((f) => kinds.includes(f.kind) && (gen === null || f.gen === gen) && start <= (f.end ?? Infinity) + grace && end >= f.start));

  // The model, by session id.
  const sids = new Map(); // sid -> { owner, user, dead, acked: Map item->ackedAt, late: Set, flashes: Map msg->{at} }
  const owner = (sid, b) => {
    let s = sids.get(sid);
    if (!s) {
      // early: cart adds answered 303 after their early save (item -> { at, startedAt }), which
      // every page after shows unless that save's error was reported; cookieChanged: the cookie's
      // lifetime was set (checkEarlyExpiry); mustBeGone: destroyed after its redirect.
      s = { owner: b, user: null, dead: false, deadAt: null, acked: new Map(), late: new Set(), flashes: new Map(), early: new Map(), cookieChanged: false, mustBeGone: false };
      sids.set(sid, s);
    }
    return s;
  };
  const shown = new Map(); // flash message -> times shown
  const lateFrom = new Map(); // with workers: item -> the worker incarnation that answered its add
  const pushedAcked = new Map(); // msg -> { sid, b, at, end }
  const BOUND_MS = o.timeoutMs * 2 + o.restartWaitMs + 4000;

  // lateTagNow(item): a save error reported after the response for the add of item, by now
  // (in-process apps; with workers their reports come at the end: every add is excused here).
  // checkEarlyExpiry: what sessd holds right after an early save of a change was answered 303:
  // the cookie renewed from the request's start (express-session renews it before its save),
  // not the one read, which a session all of whose saves go early would keep for good, and its
  // pages then ask sessd its TTL once it looks near its end (stop 53's Medium). A save since
  // (another tab's) writes a cookie renewed later; a merge that finds the cookie within a second
  // of the one read leaves it (COOKIE_MAXAGE_SLACK_MS).
  const checkEarlyExpiry = async (b, sid, res, what) => {
    const data = await apps[0].store.client.get('model', sid).catch(() => null);
    if (!data) return;
    let raw;
    try {
      raw = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (!raw.cookie || !raw.cookie.expires || raw.cookie.originalMaxAge !== 3600000) return;
    const lag = res.startedAt + 3600000 - new Date(raw.cookie.expires).getTime();
    stats.earlyExpiryChecks = (stats.earlyExpiryChecks || 0) + 1;
    stats.earlyExpiryMaxLagMs = Math.max(stats.earlyExpiryMaxLagMs ?? -Infinity, lag);
    if (lag > 1500) violate(`browser ${b.i} ${what}: sessd holds a cookie expiring ${lag} ms before the early save answered 303 renewed it`);
  };
  const lateTagNow = (item) => o.workers || apps.some((a) => a.app.locals.lateErrors.some((e) => e.tag === item));
  const checkView = (b, what, res, startedAt) => {
    const v = res.body;
    if (!v || typeof v !== 'object' || !v.sid) return;
    const s = sids.get(v.sid);
    if (s && s.owner !== b.i) violate(`browser ${b.i} ${what}: served session of browser ${s.owner} (${v.sid.slice(0, 6)}...)`);
    if (what !== 'login' && res.sentSid && v.sid !== res.sentSid && sids.has(v.sid)) violate(`browser ${b.i} ${what}: sent ${res.sentSid.slice(0, 6)} and was served a known other session ${v.sid.slice(0, 6)}`);
    if (v.user !== null && !String(v.user).startsWith(`u${b.i}-`)) violate(`browser ${b.i} ${what}: shown user ${v.user}`);
    for (const item of v.cart || []) if (!String(item).startsWith(`b${b.i}-`)) violate(`browser ${b.i} ${what}: shown item ${item}`);
    if (v.note !== null && !String(v.note).startsWith(`b${b.i}-`)) violate(`browser ${b.i} ${what}: shown note ${v.note}`);
    for (const msgs of Object.values(v.flashes || {})) {
      for (const m of msgs) {
        if (!String(m).startsWith(`b${b.i}-`)) violate(`browser ${b.i} ${what}: shown flash ${m}`);
        shown.set(m, (shown.get(m) || 0) + 1);
        stats.flashesShown++;
        if (shown.get(m) > 1) violate(`browser ${b.i} ${what}: flash ${m} shown ${shown.get(m)} times`);
      }
    }
    checkFresh(b, what, res, startedAt, s);
    if (!s) {
      // A session the model does not know: a new anonymous one, never a user's.
      if (v.user !== null) violate(`browser ${b.i} ${what}: unknown session ${v.sid.slice(0, 6)} shows user ${v.user}`);
      owner(v.sid, b.i);
      return;
    }
    if (s.dead && s.deadAt < startedAt && v.user !== null) violate(`browser ${b.i} ${what}: logged-out session ${v.sid.slice(0, 6)} came back with user ${v.user}`);
    if (s.user !== null && v.user !== s.user && !s.dead && !(s.uncertain && v.user === null)) violate(`browser ${b.i} ${what}: session of ${s.user} shows user ${v.user}`);
    if (!s.dead && v.user !== null) {
      const cart = new Set(v.cart || []);
      for (const [item, at] of s.acked) if (at < startedAt && !cart.has(item)) violate(`browser ${b.i} ${what}: saved add ${item} (answered ${startedAt - at} ms before) missing from cart`);
      for (const [item, e] of s.early) {
        if (e.at >= startedAt || cart.has(item) || lateTagNow(item)) continue;
        violate(`browser ${b.i} ${what}: add ${item} saved early (answered 303 ${startedAt - e.at} ms before, no save error reported) missing from cart${touchedByFault(e.startedAt, e.at) ? ' (a fault during the add)' : ''}; the browser's requests:\n    ${b.events.slice(-12).join('\n    ')}`);
        s.early.delete(item);
      }
    }
  };

  // excused503(res, startedAt, endedAt): whether a 503 is one README allows: a request that
  // overlaps a fault of sessd's (a kill, a SIGTERM restart past the wait, a stop past
  // timeoutMs, a cut connection), with GRACE_MS after it for the pools to settle. The app's own
  // faults excuse none: a killed worker's requests get no answer at all (status 0, above), its
  // new incarnation takes requests only once its store is connected, a graceful restart lets
  // the requests in flight end before store.close() ("On a graceful restart"), and a stopped
  // worker, once resumed, fails nothing sessd answered in time ("A request times out only once
  // the replies already in its socket are read").
  const excused503 = (res, startedAt, endedAt) => Boolean(o.faults && o.daemonFaults !== false && touchedByFault(startedAt, endedAt));
  // For a 5xx's report: the app's own faults it overlapped, which excuse it not.
  const workerFaultsNear = (res, startedAt, endedAt) => {
    const near = apps.flatMap((a) => (a.wfaults || []).filter((f) => startedAt <= (f.end ?? Infinity) + GRACE_MS && endedAt >= f.start).map((f) => `${f.kind} of ${a.name} gen ${f.gen}`));
    return near.length ? ` (during the app's own faults only: ${near.join(', ')}; README promises no 503 there)` : '';
  };

  // checkFresh: what a logout promises the pages after it, beyond "no user": a request that
  // starts after the logout and sends the logged-out id is served a new session (express-session
  // finds the id gone and makes one) holding nothing of the old one: no user, no cart, no note
  // but its own, a view count of its own page at most. No known session is served under an id
  // logged out before the request began (it would be the old one come back, even emptied), and
  // an anonymous session (a page's, a regenerate() logout's) never holds a user or a cart.
  const checkFresh = (b, what, res, startedAt, s) => {
    const v = res.body;
    const short = v.sid.slice(0, 6);
    if (s && s.dead && !s.uncertain && s.deadAt < startedAt) violate(`browser ${b.i} ${what}: served logged-out session ${short} (logged out ${startedAt - s.deadAt} ms before the request)`);
    if (s && !s.dead && !s.uncertain && s.user === null && (v.user !== null || (v.cart || []).length)) violate(`browser ${b.i} ${what}: anonymous session ${short} shows user ${v.user}, cart ${JSON.stringify(v.cart)}`);
    const sent = res.sentSid ? sids.get(res.sentSid) : null;
    // A logged-in session the request named, neither logged out nor in doubt, is the one it
    // is served: a new one instead means express-session found it gone (the user logged out
    // by the store: README, "failures are errors, never a missing session").
    // A login or logout of this browser begun since the request was sent (a slow request runs
    // across them) may have destroyed it before the request loaded it: the session is marked
    // dead only once that answer is read, which may come after this one.
    const switched = b.switchedAt !== undefined && b.switchedAt >= startedAt;
    if (sent && !sent.dead && !sent.uncertain && sent.user !== null && v.sid !== res.sentSid && what !== 'login' && !switched) violate(`browser ${b.i} ${what}: sent the session ${res.sentSid.slice(0, 6)} of ${sent.user} and was served another, ${short} (user ${v.user}): the session was not found; the browser's requests:\n    ${b.events.slice(-12).join('\n    ')}`);
    if (!sent || !sent.dead || sent.uncertain || sent.deadAt >= startedAt || what === 'login') return;
    const stale = [];
    if (v.sid === res.sentSid) stale.push('the same id');
    if (v.user !== null) stale.push(`user ${v.user}`);
    if ((v.cart || []).length) stale.push(`cart ${JSON.stringify(v.cart)}`);
    if (v.note !== null && what !== 'slow') stale.push(`note ${v.note}`);
    if (v.views > 1) stale.push(`${v.views} views`);
    if (stale.length) violate(`browser ${b.i} ${what}: sent logged-out session ${res.sentSid.slice(0, 6)} and was served ${short} with ${stale.join(', ')}, not a fresh session`);
  };

  // With o.cluster, an answer's worker: its x-model-worker header (name:gen); a request with no
  // answer has none (res.app null).
  const whichWorker = (res) => {
    const [name, gen] = String((res.headers && res.headers['x-model-worker']) || '').split(':');
    res.app = apps.find((w) => w.name === name) || null;
    res.gen = res.app ? Number(gen) : null;
    if (res.app) (stats.byWorker ||= {})[name] = (stats.byWorker[name] || 0) + 1;
  };
  // clusterCut: with o.cluster, a request with no answer, which the browser cannot pin on a
  // worker: allowed while a worker was killed -9 (it may have held it; every worker killed at
  // once closes the shared port meanwhile) or, reset, at the start of a graceful restart
  // (server.close() closes the connections it has not read a request from yet).
  const clusterCut = (res, startedAt, endedAt) => {
    if (apps.some((w) => wfaulted(w, null, startedAt, endedAt, ['kill']))) {
      stats.cutByWorkerFault++;
      return true;
    }
    if (res.error === 'ECONNRESET' && apps.some((w) => w.wfaults.some((f) => f.kind === 'term' && startedAt <= f.start + 100 && endedAt >= f.start))) {
      stats.cutByServerClose = (stats.cutByServerClose || 0) + 1;
      return true;
    }
    // Node's round-robin primary holds for good a connection it handed to a worker that was
    // closing its server (no answer, no reset; without sessd or connect-sessd too: 4 of about
    // 7,000 requests over 30 graceful restarts of 2 workers, none with SCHED_NONE). Counted,
    // not excused, where the kernel hands them out (clusterSched 'none'), nor where a worker
    // says the request is in its app (a hang of the app's or connect-sessd's).
    if (String(res.error).startsWith('HANG') && !res.inApp && o.clusterSched !== 'none' && apps.some((w) => w.wfaults.some((f) => f.kind === 'term' && f.start >= startedAt - 200 && f.start <= startedAt + 1000))) {
      stats.lostByClusterPrimary = (stats.lostByClusterPrimary || 0) + 1;
      return true;
    }
    return false;
  };

  const allowedStatus = (what, res, startedAt, endedAt, allow) => {
    if (allow && allow(res)) return false;
    excused = false;
    const ok = allowedFailure(what, res, startedAt, endedAt);
    // A request that failed in a fault (no answer, or a 503) may have left a record the model
    // never saw: scanNamespace's bound.
    if (excused) stats.failedInFaults = (stats.failedInFaults || 0) + 1;
    return ok;
  };
  let excused = false;
  const allowedFailure = (what, res, startedAt, endedAt) => {
    // A request to a worker killed or stopped meanwhile may get no answer; one to a worker
    // restarted gracefully must get its answer. Any of them may meet a store reconnecting.
    if (res.status === 0 && wfaulted(res.app, res.gen, startedAt, endedAt, ['kill', 'stop'])) {
      stats.cutByWorkerFault++;
      excused = true;
      return false;
    }
    // Node's server.close() (since 19) also closes the connections whose request it has not
    // read yet (idle, to it): a request sent before the SIGTERM may be reset so (a loaded
    // machine reads late). Not one that reached the app: server.close() waits for those; the
    // worker's report names any it cut (checked at the end).
    if (res.status === 0 && res.error === 'ECONNRESET' && res.app && res.app.wfaults.some((f) => f.kind === 'term' && f.gen === res.gen && startedAt <= f.start + 100 && endedAt >= f.start)) {
      stats.cutByServerClose = (stats.cutByServerClose || 0) + 1;
      resetsAtTerm.push({ what, id: res.id });
      excused = true;
      return false;
    }
    if (res.status === 0 && o.cluster && clusterCut(res, startedAt, endedAt)) {
      excused = true;
      return false;
    }
    const faulted = excused503(res, startedAt, endedAt);
    if (res.status === 0) {
      const near = res.app ? res.app.wfaults.filter((f) => f.start <= endedAt + 1000 && (f.end ?? Infinity) >= startedAt - 1000).map((f) => `${f.kind} of gen ${f.gen} ${f.start - startedAt}..${(f.end ?? Infinity) - startedAt} ms`) : [];
      violate(`${what}: ${res.error.startsWith('HANG') ? `no answer within ${BOUND_MS} ms (${res.error})` : `request failed: ${res.error}`}${res.app ? ` (gen ${res.gen}, ${endedAt - startedAt} ms; worker faults near, from its start: ${near.join(', ') || 'none'})` : ''}`);
      return false;
    }
    if (res.status >= 500) {
      if (res.status === 503 && faulted) {
        excused = true;
        return false;
      }
      violate(`${what}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}${faulted ? ' (during a fault)' : workerFaultsNear(res, startedAt, endedAt)}${res.modelNote ? `; ${res.modelNote}` : ''}`);
      return false;
    }
    return true;
  };

  const browsers = [];
  countLoopTurns();
  const t0 = Date.now();
  for (let i = 0; i < o.browsers; i++) browsers.push({ i, events: [], jar: new Jar(), logins: 0, items: 0, flashes: 0, notes: 0, user: null });

  let reqIds = 0;
  // Migrated browsers: a session in the old store (user, cart, a connect-flash message),
  // their cookie naming it; their first steps are concurrent tabs, which move it once.
  for (const b of browsers.slice(0, o.migrate)) {
    const sid = `old-${o.seed}-${b.i}-${r.int(1e6, 9e6)}-model`;
    const sess = { cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' }, user: `u${b.i}-0`, cart: [`b${b.i}-m1`, `b${b.i}-m2`], flash: { info: [`b${b.i}-mf`] } };
    await new Promise((resolve, reject) => oldStore.set(sid, sess, (err) => (err ? reject(err) : resolve())));
    b.jar.sid = encodeURIComponent(`s:${signature.sign(sid, SECRET)}`);
    b.migrated = true;
    const s = owner(sid, b.i);
    s.user = `u${b.i}-0`;
    s.acked.set(`b${b.i}-m1`, 0);
    s.acked.set(`b${b.i}-m2`, 0);
    pushedAcked.set(`b${b.i}-mf`, { b: b.i, sid, at: Date.now(), end: Date.now() });
  }

  const pickUp = async () => {
    for (;;) {
      const up = apps.filter((a) => a.up);
      if (up.length) return r.pick(up);
      await sleep(10);
    }
  };
  const req = async (b, method, p, what, allow = null) => {
    // With o.cluster, every worker down (a mass kill) closes the shared port: a browser would
    // burn its steps on refused connections, each excused, a run that checks nothing (230 of
    // 308 requests of seed 4 with mass kills only); it waits for a worker, as pickUp does.
    if (o.cluster) while (!apps.some((w) => w.up)) await sleep(10);
    const a = o.cluster ? clusterFront : o.workers ? await pickUp() : r.pick(apps);
    const startedAt = Date.now();
    const id = String(++reqIds);
    const track = {};
    const gen = a.gen;
    // Connections the pool made ready while the request was out: a hang with many met one
    // outage after another (each store call may wait one out: README, "Restarts and
    // outages"); with none, a wait that nothing ended.
    const readies = o.workers ? 0 : a.store.client.readyGens;
    if (a.inflight) a.inflight.add(track);
    const res = await b.jar.request(a.base, method, p, BOUND_MS, id, track, o.workers ? null : () => a.app.locals.reached.get(id) || null);
    if (a.inflight) a.inflight.delete(track);
    if (!o.workers) a.app.locals.reached.delete(id);
    res.id = id;
    res.app = o.workers ? a : null;
    res.gen = gen;
    if (o.cluster) whichWorker(res);
    if (res.error === 'HANG' && o.cluster) {
      res.error = `HANG: ${(await Promise.all(apps.map((w) => new Promise((resolve) => {
        const timer = setTimeout(() => resolve(`${w.name} (gen ${w.gen}, ${w.up ? 'up' : 'restarting'}; its faults from the request's start: ${w.wfaults.filter((f) => (f.end ?? Infinity) >= startedAt).map((f) => `${f.kind} of gen ${f.gen} at ${f.start - startedAt} ms`).join(', ') || 'none'}): no IPC answer within 2 s`), 2000);
        w.onDiag = (v) => {
          clearTimeout(timer);
          // A worker holding it in its app: not a connection the primary kept (clusterCut).
          if (!String(v).startsWith('not in the app')) res.inApp = true;
          resolve(`${w.name} (gen ${w.gen}; faults from the request's start: ${w.wfaults.filter((f) => (f.end ?? Infinity) >= startedAt).map((f) => `${f.kind} of gen ${f.gen} at ${f.start - startedAt} ms`).join(', ') || 'none'}): ${v}`);
        };
        if (w.proc.connected) w.proc.send({ diag: id });
      })))).join('; ')}`;
    }
    if (res.error === 'HANG' && o.workers && !o.cluster) {
      res.error = `HANG: ${await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('the worker did not answer its IPC within 2 s'), 2000);
        a.onDiag = (v) => {
          clearTimeout(timer);
          resolve(v);
        };
        a.proc.send({ diag: id });
      })}`;
    }
    if (res.error === 'HANG' && !o.workers) {
      const c = a.store.client;
      const conns = c.slots.map((sl) => (sl.conn ? `${sl.conn.state}/${sl.conn.pending.length - sl.conn.head}${sl.conn.state === 'connecting' && !sl.conn.socketConnected ? ' (socket not connected)' : ''}` : 'none'));
      // res.hangWhere: in the app (for BOUND_MS since it reached it or a store call of its
      // started or ended), never taken from the app server's listen queue, or answered and not
      // read (Jar.request).
      const where = a.app.locals.phase.has(id) ? `${a.app.locals.phase.get(id)}, ${res.hangWhere}` : res.hangWhere;
      const turns = loopTurns.filter((at) => at >= Date.now() - BOUND_MS).length;
      res.error = `HANG: ${where}; the event loop ran ${turns} of ${BOUND_MS / 100} 100 ms ticks meanwhile; store connected ${a.store.connected} reconnecting ${c.reconnecting}, ${c.readyGens - readies} connections ready meanwhile, conns ${conns.join(',')}; store calls: ${trailText(a.app.locals.trails.get(id), Date.now(), c.resentAt)}`;
    }
    const endedAt = Date.now();
    if (!o.workers) stats.mostReadies = Math.max(stats.mostReadies, a.store.client.readyGens - readies);
    stats.requests++;
    const key = `${method} ${p.split('?')[0]} ${res.status}`;
    stats.byStatus[key] = (stats.byStatus[key] || 0) + 1;
    res.ok = allowedStatus(`browser ${b.i} ${what} (${a.name})`, res, startedAt, endedAt, allow);
    const bodySid = res.body && typeof res.body === 'object' ? res.body.sid : null;
    const fl = res.body && res.body.flashes ? JSON.stringify(res.body.flashes) : '';
    b.events.push(`${startedAt - t0}-${endedAt - t0} ${a.name} ${what} ${res.status} sent=${(res.sentSid || '-').slice(0, 6)} served=${(bodySid || '-').slice(0, 6)} jar=${(b.jar.sidValue || '-').slice(0, 6)} ${fl}`);
    res.startedAt = startedAt;
    res.endedAt = endedAt;
    return res;
  };

  const actions = {
    async page(b) {
      const res = await req(b, 'GET', `/page${r.chance(0.5) ? '?count=0' : ''}`, 'page');
      if (res.ok) checkView(b, 'page', res, res.startedAt);
    },
    async reload(b) {
      // README (Other frameworks): a reload() of a session gone fails with express-session's
      // 'failed to load session': a session destroyed meanwhile, or one this request made
      // (the browser's cookie named none sessd holds), which was never saved.
      const gone = (res) => {
        if (res.status !== 500 || !res.body || res.body.error !== 'failed to load session') return false;
        const s = sids.get(res.body.sid);
        // Or one in doubt: a login or logout of it that got no answer (a worker stopped past its
        // browser's patience carries it out on waking, regenerate() and all).
        if (!s || s.dead || s.user === null || s.uncertain) return true;
        res.modelNote = `the model: ${s.uncertain ? 'uncertain ' : ''}session of ${s.user}, ${s.acked.size} saved adds; the browser's requests:\n    ${b.events.slice(-12).join('\n    ')}`;
        return false;
      };
      const res = await req(b, 'GET', '/reload', 'reload', gone);
      if (res.ok) checkView(b, 'reload', res, res.startedAt);
    },
    async login(b) {
      const u = `u${b.i}-${++b.logins}`;
      const before = b.jar.sidValue;
      const w = r.chance(0.5) ? `b${b.i}-w${b.logins}` : null;
      b.switchedAt = Date.now(); // checkFresh
      const res = await req(b, 'POST', `/login?u=${u}${w ? `&w=${w}` : ''}`, 'login');
      if (!res.ok || res.status !== 200) {
        // A login that failed (503 in a fault) or was cut may have been carried out: its
        // error page carries the new session's cookie (README, "On a full or failing disk"),
        // and its save may have been stored; the old session may be destroyed.
        if (before && sids.has(before)) sids.get(before).uncertain = true;
        const now = b.jar.sidValue;
        if (now && now !== before && !sids.has(now)) Object.assign(owner(now, b.i), { user: u, uncertain: true });
        return;
      }
      const s = owner(res.body.sid, b.i);
      if (w) pushedAcked.set(w, { b: b.i, sid: res.body.sid, at: res.startedAt, end: res.endedAt });
      if (s.user !== null || s.acked.size) violate(`browser ${b.i} login: new session ${res.body.sid.slice(0, 6)} was known already`);
      s.user = u;
      if (before && sids.has(before) && before !== res.body.sid) {
        const old = sids.get(before);
        if (!old.dead) {
          old.dead = true;
          old.deadAt = res.endedAt;
        }
      }
      checkView(b, 'login', res, res.startedAt);
    },
    async logout(b) {
      const sent = b.jar.sidValue;
      const bye = r.chance(0.5) ? `b${b.i}-x${++b.flashes}` : null;
      b.switchedAt = Date.now(); // checkFresh
      const res = await req(b, 'POST', `/logout${bye ? `?regen=${bye}` : ''}`, 'logout');
      if (!res.ok || res.status !== 200) {
        // Carried out or not: a destroy in flight when sessd died is sent again, and fails
        // if no connection is ready in time.
        if (sent && sids.has(sent)) sids.get(sent).uncertain = true;
        return;
      }
      const s = owner(res.body.sid, b.i);
      if (bye) {
        owner(res.body.newSid, b.i);
        if (res.body.n > 0) pushedAcked.set(bye, { b: b.i, sid: res.body.newSid, at: res.startedAt, end: res.endedAt });
      }
      if (sent && res.body.sid !== sent) return; // the session had gone already: a new one was destroyed
      if (!s.dead) {
        s.dead = true;
        s.deadAt = res.endedAt;
      }
    },
    async cart(b) {
      const tabs = r.int(1, 4);
      await Promise.all(Array.from({ length: tabs }, async () => {
        const item = `b${b.i}-i${++b.items}`;
        const first = r.chance(0.6) ? 1 : 0;
        const res = await req(b, 'POST', `/cart?item=${item}&first=${first}`, `cart add ${item}${first ? ' (save first)' : ''}`);
        if (!res.ok || res.status !== 200) return;
        checkView(b, 'cart', res, res.startedAt);
        const s = owner(res.body.sid, b.i);
        stats.addsAcked++;
        if (first) s.acked.set(item, res.endedAt);
        else s.late.add(item);
        if (!first && res.app) lateFrom.set(item, { a: res.app, gen: res.gen, end: res.endedAt });
      }));
    },
    async flash(b) {
      const m = `b${b.i}-f${++b.flashes}`;
      const sent = b.jar.sidValue;
      const awaited = r.chance(0.7);
      const res = await req(b, 'POST', `/flash?m=${m}${awaited ? '' : '&await=0'}`, `flash ${m}`);
      if (!res.ok) return;
      if (res.status !== 303) {
        violate(`browser ${b.i} flash ${m}: ${res.status}`);
        return;
      }
      const n = awaited ? Number(res.headers['x-flash-n']) : 1;
      // The session the push went to: a concurrent tab's answer may have set the jar to another.
      const sid = res.headers['x-sid'];
      if (sid) owner(sid, b.i); // a push to a new session (no cookie, or a logged-out one's) made it
      if (n > 0) pushedAcked.set(m, { b: b.i, sid, sent, at: res.startedAt, end: res.endedAt });
      const page = await req(b, 'GET', '/page', `page after flash ${m}`);
      if (page.ok) checkView(b, 'page after flash', page, page.startedAt);
    },
    // The early save: a push not awaited, then the redirect (see makeApp's /early), and the
    // page it redirects to. tabs: this browser's tabs doing it at once.
    async early(b, kinds = ['cart', 'cart', 'note', 'none', 'cookie', 'save']) {
      // A user who reads the page a while first: the session's data was last written seconds
      // before, so a save that wrote the cookie as read would store an expiry that much stale.
      if (r.chance(0.15)) await sleep(r.int(1600, 2500));
      const tabs = r.chance(0.3) ? r.int(2, 3) : 1;
      const results = await Promise.all(Array.from({ length: tabs }, async () => {
        const kind = r.pick(kinds);
        const m = `b${b.i}-e${++b.flashes}`;
        const item = `b${b.i}-i${++b.items}`;
        const v = `b${b.i}-n${++b.notes}`;
        const res = await req(b, 'POST', `/early?kind=${kind}&m=${m}&item=${item}&v=${v}`, `early ${kind} ${m}${kind === 'cart' || kind === 'save' ? ` ${item}` : ''}`);
        return { kind, m, item, res };
      }));
      for (const { kind, m, item, res } of results) {
        // A logout that failed (a 503 in a fault) or got no answer may have been carried out.
        if ((kind === 'destroy' || kind === 'regen' || kind === 'logout') && (!res.ok || res.status !== 303) && res.sentSid && sids.has(res.sentSid)) sids.get(res.sentSid).uncertain = true;
        if (!res.ok || res.status === 401) continue;
        (stats.earlyKinds ||= {})[kind] = (stats.earlyKinds[kind] || 0) + 1;
        if (res.status !== 303) {
          violate(`browser ${b.i} early ${kind} ${m}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
          continue;
        }
        const sid = res.headers['x-sid'];
        const s = owner(sid, b.i);
        const newSid = res.headers['x-new-sid'];
        if (kind === 'regen' || kind === 'logout') {
          // The push moved with the regenerate() to the new session, or made after it there.
          owner(newSid, b.i);
          pushedAcked.set(m, { b: b.i, sid: newSid, at: res.startedAt, end: res.endedAt });
          if (!s.dead) Object.assign(s, { dead: true, deadAt: res.endedAt });
          continue;
        }
        if (kind === 'destroy') {
          // Logged out by a destroy() nobody awaits: it may land after the redirect is read
          // (the app's race), and fail in a fault (destroyErrors); at the end it must be gone.
          // With workers: a worker killed meanwhile takes its destroy with it, and its report.
          Object.assign(s, { dead: true, deadAt: res.endedAt, uncertain: true, mustBeGone: !o.workers });
          continue;
        }
        pushedAcked.set(m, { b: b.i, sid, at: res.startedAt, end: res.endedAt });
        stats.earlyAcked = (stats.earlyAcked || 0) + 1;
        if (kind === 'cookie') s.cookieChanged = true;
        // Not after the app's own save() (kind save): nothing awaits it, and it may land after
        // the answer.
        if ((kind === 'cart' || kind === 'note') && !s.cookieChanged && !o.workers && !touchedByFault(res.startedAt, Date.now())) await checkEarlyExpiry(b, sid, res, `early ${kind} ${m}`);
        if (kind === 'cart') {
          s.early.set(item, { at: res.endedAt, startedAt: res.startedAt });
          s.late.add(item);
        } else if (kind === 'save' && !touchedByFault(res.startedAt, res.endedAt)) {
          // The app's own save, which nobody awaits: a fault may lose it without a word.
          s.late.add(item);
        }
      }
      const page = await req(b, 'GET', '/page', 'page after early');
      if (page.ok) checkView(b, 'page after early', page, page.startedAt);
    },
    async earlyLogout(b) {
      b.switchedAt = Date.now(); // checkFresh
      await actions.early(b, ['destroy', 'regen', 'logout']);
    },
    // A first visit: a browser without a cookie whose first page pushes a flash (the session is
    // made by the FLASH_PUSH, saved whole behind it), then the page it redirects to.
    async visitor(b) {
      const v = { ...b, jar: new Jar() };
      const m = `b${b.i}-v${++b.flashes}`;
      const res = await req(v, 'GET', `/hello?m=${m}`, `first visit ${m}`);
      if (!res.ok) return;
      if (res.status !== 303) {
        violate(`browser ${b.i} first visit ${m}: ${res.status}`);
        return;
      }
      const sid = res.headers['x-sid'];
      owner(sid, b.i);
      pushedAcked.set(m, { b: b.i, sid, at: res.startedAt, end: res.endedAt });
      const page = await req(v, 'GET', '/page?count=0', 'first visit page');
      if (page.ok) checkView(v, 'first visit page', page, page.startedAt);
    },
    async slow(b) {
      const v = `b${b.i}-n${++b.notes}`;
      const res = await req(b, 'POST', `/slow?v=${v}&ms=${r.int(20, 400)}`, 'slow');
      if (res.ok) checkView(b, 'slow', res, res.startedAt);
    },
  };
  const weights = [['page', 5], ['reload', 1], ['login', 2], ['logout', 1], ['cart', 4], ['flash', 3], ['slow', 1]];
  if (o.early) weights.push(['early', 6], ['earlyLogout', 1], ['visitor', 1]);
  const total = weights.reduce((n, [, w]) => n + w, 0);
  const choose = () => {
    let x = r.next() * total;
    for (const [name, w] of weights) if ((x -= w) < 0) return name;
    return 'page';
  };

  const run = async (b) => {
    if (b.migrated) await Promise.all([actions.page(b), actions.cart(b), actions.page(b), actions.flash(b)]);
    else await actions.login(b);
    const inflight = new Set();
    const spanning = new Set();
    // Past o.steps while fewer than o.minFaults faults were made (at most four times as many
    // steps): a short run on a fast machine ended before the fault loop had made each kind.
    for (let n = 0; n < o.steps || (faults.length < o.minFaults && n < o.steps * 4); n++) {
      const name = choose();
      // Within a browser: another tab may start before this one ends, except around a login
      // or logout, which a user makes alone (a slow request may still be running: it ends
      // in the inflight set).
      const alone = name === 'login' || name === 'logout' || name === 'earlyLogout';
      if (alone) await Promise.all(inflight);
      const p = actions[name](b).catch((err) => violate(`browser ${b.i} ${name}: threw ${err.stack}`));
      if (alone || r.chance(0.5)) {
        await p;
      } else if (name === 'slow') {
        spanning.add(p); // may run across a later login or logout
      } else {
        inflight.add(p);
        p.finally(() => inflight.delete(p));
      }
      if (r.chance(0.3)) await sleep(r.int(0, 30));
    }
    await Promise.all([...inflight, ...spanning]);
  };

  // starve: sessd gets the CPU in short slices only (stopped 30 of every 50 ms), as on a
  // machine whose load is many times its cores.
  const starveLoop = async () => {
    while (running) {
      await sleep(20);
      if (paused || !daemonUp || d.pid === null) continue;
      try {
        process.kill(d.pid, 'SIGSTOP');
        await sleep(30);
        if (!paused && d.pid !== null) process.kill(d.pid, 'SIGCONT');
      } catch {
        // it was killed meanwhile
      }
    }
  };
  const starveDone = o.starve ? starveLoop() : Promise.resolve();
  const faultDone = o.faults && o.daemonFaults !== false ? faultLoop() : Promise.resolve();
  const workerFaultDone = o.workers && o.faults ? workerFaultLoop() : Promise.resolve();
  await Promise.all(browsers.map(run));
  running = false;
  await faultDone;
  await workerFaultDone;
  await starveDone;
  if (d.pid !== null) process.kill(d.pid, 'SIGCONT');
  const lastFault = faults.length ? faults[faults.length - 1].end : 0;
  proxy.heal();
  if (d.pid === null) await startAgain();
  if (o.workers) {
    await waitFor(async () => {
      for (const a of apps) {
        const st = a.up ? await ask(a, 'status') : null;
        if (!st || !st.connected || st.reconnecting) return false;
      }
      return checker.connected;
    }, 'worker stores connected after the run', 20000);
  } else {
    await waitFor(() => apps.every((a) => a.store.connected && !a.store.client.reconnecting), 'stores connected after the run', 20000);
  }
  // Let late saves land.
  await sleep(300);

  // Drain: each browser's pages until no flash is left; then what sessd holds.
  for (const b of browsers) {
    for (let k = 0; k < 3; k++) {
      const res = await req(b, 'GET', '/page', 'final page');
      if (res.ok) checkView(b, 'final page', res, res.startedAt);
    }
  }
  // What each app noted: with workers, each live one's report and those of the incarnations
  // that ended gracefully (a killed one's are lost with it).
  const locals = o.workers ? [...workerReports, ...(await Promise.all(apps.map((a) => ask(a, 'report'))))] : apps.map((a) => a.app.locals);
  if (o.workers) stats.expressSession = locals.slice(-apps.length).map((l) => l.expressSession);
  const lateTags = new Set(locals.flatMap((l) => l.lateErrors.map((e) => e.tag)).filter(Boolean));
  // A late save (express-session's, after the response) of a worker killed soon after it
  // answered is lost with the worker, as it would be without sessd.
  for (const [item, from] of lateFrom) if (wfaulted(from.a, from.gen, from.end, from.end + 2000, ['kill'])) lateTags.add(item);
  // Only sessd's faults may fail a save after its response: the app's own graceful restarts
  // end the requests in flight (their saves included) before store.close().
  for (const l of locals) for (const e of l.lateErrors) if (!o.faults || o.daemonFaults === false) violate(`a save failed after its response without a fault of sessd's: ${e.url} ${e.code} ${e.message}`);
  for (const l of locals) for (const u of l.unhandled || []) violate(`worker: unhandled rejection: ${u}`);
  const cutInApp = new Set(locals.flatMap((l) => l.cut || []));
  for (const r2 of resetsAtTerm) if (cutInApp.has(r2.id)) violate(`${r2.what}: reset by a graceful restart while in the app (server.close() should have waited for it)`);
  const store = checker || apps[0].store;
  const destroyFailed = new Set(locals.flatMap((l) => (l.destroyErrors instanceof Map ? [...l.destroyErrors.keys()] : l.destroyErrors || [])));
  for (const [sid, s] of sids) {
    let raw;
    try {
      raw = await store.get(sid);
    } catch (err) {
      violate(`final get of ${sid.slice(0, 6)}: ${err.code} ${err.message}`);
      continue;
    }
    if (s.mustBeGone && raw && !destroyFailed.has(sid)) violate(`browser ${s.owner}: session ${sid.slice(0, 6)} destroyed after its redirect (res.redirect(); req.session.destroy()) is in sessd at the end: ${JSON.stringify({ ...raw, cookie: undefined }).slice(0, 200)}`);
    if (s.uncertain) continue;
    if (s.dead) {
      if (raw) violate(`browser ${s.owner}: logged-out session ${sid.slice(0, 6)} of ${s.user} is in sessd at the end: ${JSON.stringify({ ...raw, cookie: undefined }).slice(0, 200)}`);
      continue;
    }
    if (s.user === null) continue;
    if (!raw) {
      // A login answers once its session is saved: it stays until a logout (or its hour).
      violate(`browser ${s.owner}: session ${sid.slice(0, 6)} of ${s.user} with ${s.acked.size} saved adds is gone at the end`);
      continue;
    }
    if (raw.user !== s.user) violate(`browser ${s.owner}: session ${sid.slice(0, 6)} holds user ${raw.user}, not ${s.user}`);
    const cart = new Set(raw.cart || []);
    for (const item of s.acked.keys()) if (!cart.has(item)) violate(`browser ${s.owner}: saved add ${item} missing from sessd at the end`);
    for (const item of s.late) if (!cart.has(item) && !lateTags.has(item)) violate(`browser ${s.owner}: add ${item} answered 200 (saved after the response, no save error reported) missing from sessd at the end`);
    for (const item of cart) if (!s.acked.has(item) && !s.late.has(item) && !String(item).startsWith(`b${s.owner}-`)) violate(`session of browser ${s.owner} holds ${item}`);
  }
  // Flashes: at most once everywhere (checked as shown); exactly once when no fault touched
  // them and their session still stands.
  const queuedAtEnd = new Set();
  const flashErrors = new Set(locals.flatMap((l) => [...l.flashErrors]));
  const allWfaults = apps.flatMap((a) => a.wfaults || []);
  for (const [m, p] of pushedAcked) {
    if (flashErrors.has(m)) continue; // failed, and the app heard of it (onError)
    const s = sids.get(p.sid);
    if (!s || s.dead) continue;
    if ((shown.get(m) || 0) > 0) continue;
    // A session the browser left (a slow request of an older session answered after a login
    // gives the browser that cookie back): its flashes wait in sessd, unread.
    const queued = await store.client.flashPop('model', p.sid, 'info').catch(() => []);
    for (const q of queued) queuedAtEnd.add(String(q));
    if (queuedAtEnd.has(m)) continue;
    if (!s.uncertain && !(o.faults && [...faults, ...allWfaults].some((f) => f.start <= Date.now() && (f.end ?? Infinity) + GRACE_MS >= p.at))) {
      violate(`browser ${p.b}: flash ${m} pushed (303) to a live session ${p.sid.slice(0, 6)} and never shown; the browser's requests:\n    ${browsers[p.b].events.join('\n    ')}`);
    }
  }
  if (oldStore) {
    for (const [sid, s] of sids) {
      if (!sid.startsWith('old-') || s.uncertain) continue;
      const left = await new Promise((resolve) => oldStore.get(sid, (err, v) => resolve(err ? null : v)));
      if (left && s.dead) violate(`browser ${s.owner}: logged-out migrated session ${sid.slice(0, 12)} is still in the old store`);
    }
  }
  stats.savesAfter5xx = locals.flatMap((l) => l.savesAfter5xx);
  stats.finalErrors = locals.flatMap((l) => l.finalErrors);
  for (const e of stats.finalErrors) violate(`an error reached Express's final handler after the response (logged, socket destroyed): ${e}`);
  stats.lateErrors = locals.reduce((n, l) => n + l.lateErrors.length, 0);
  stats.errors = locals.flatMap((l) => l.errors.map((e) => `${e.url.split('?')[0]} ${e.code}`));
  stats.sessions = sids.size;
  // With workers: what sessd holds and sees once they are all back. Every stored session of
  // the namespace one the app can read (a session, not a queue of flashes with no session or
  // a half-applied merge: get() of it works and gives a cookie), every connection sessd counts
  // one of a live pool (a killed worker's closed by the kernel), no full session id in sessd's
  // log or the workers' stderr.
  const checkWorkersEnd = async () => {
    const pools = apps.length * (storeOpts.poolSize || 2) + (storeOpts.poolSize || 2);
    let st = null;
    await waitFor(async () => {
      st = await store.client.stats(null);
      return Number(st.connections ?? st.clients) <= pools + 1;
    }, 'sessd connections back to the live pools', 5000).catch(() => violate(`sessd counts ${JSON.stringify(st)} connections; the live pools hold ${pools} (+1 admin)`));
    stats.sessdStats = st;
    const logged = fs.existsSync(path.join(dir, 'sessd.log')) ? fs.readFileSync(path.join(dir, 'sessd.log'), 'utf8') : '';
    for (const sid of sids.keys()) {
      if (sid.length < 16) continue;
      if (logged.includes(sid)) violate(`sessd's log holds the full session id ${sid.slice(0, 6)}...`);
      if (workerLog.includes(sid)) violate(`a worker's stderr holds the full session id ${sid.slice(0, 6)}...`);
    }
    stats.workerLog = workerLog.slice(0, 2000);
  };
  // scanNamespace: every record the namespace holds at the end is one the model can explain,
  // and readable (get() works; a session has its cookie; its ttl within the cookie's hour):
  // - a session the model followed, not logged out (a logged-out id holding anything, even
  //   flashes only, is the logout undone: "A session gone meanwhile");
  // - under an id the model never saw: what a request that got no answer or a 5xx may have
  //   left (a login saved by a worker killed before it answered, the flashes-only record of a
  //   push to a new session whose save never came, README "A session gone meanwhile"): at most
  //   one a request that failed so, and each holding one browser's data only;
  // and sessd's STATS counts what the scan found.
  const scanNamespace = async () => {
    const ids = await store.ids();
    stats.storedAtEnd = ids.length;
    const failedRequests = stats.failedInFaults || 0;
    let unknown = 0;
    for (const sid of ids) {
      const short = sid.slice(0, 6);
      let raw;
      try {
        raw = await store.get(sid);
      } catch (err) {
        violate(`stored session ${short}: the app cannot read it: ${err.code} ${err.message}`);
        continue;
      }
      const ttl = await store.client.ttl('model', sid).catch((err) => `error ${err.code}`);
      if (!(typeof ttl === 'number' && ttl > 0 && ttl <= 3600000 + 1000)) violate(`stored session ${short}: ttl ${ttl} ms, not within the cookie's hour`);
      let held = null;
      if (!raw) {
        // Flashes with no session data: never shown (no browser holds a cookie naming it),
        // kept until their ttl; counted, and popped to see whose they are.
        held = await store.client.flashPop('model', sid, null).catch((err) => `error ${err.code}`);
        stats.flashOnlyAtEnd = (stats.flashOnlyAtEnd || 0) + 1;
        (stats.flashOnly ||= []).push(`${short} ttl ${ttl} ms ${JSON.stringify(held)}`);
      } else if (!raw.cookie) {
        violate(`stored session ${short} has no cookie: ${JSON.stringify(raw).slice(0, 200)}`);
      }
      const s = sids.get(sid);
      if (s) {
        if (s.dead && !s.uncertain && !raw) violate(`browser ${s.owner}: logged-out session ${short} of ${s.user} is back as a record of flashes only: ${JSON.stringify(held)}`);
        continue;
      }
      unknown++;
      stats.storedUnknown = unknown;
      if (raw) (stats.unknownRecords ||= []).push(`${short} ${JSON.stringify({ ...raw, cookie: undefined }).slice(0, 120)}`);
      // One browser's data only: its user, its items, its note, its flashes.
      const marks = [];
      if (raw) {
        if (raw.user != null) marks.push(String(raw.user).replace(/^u(\d+)-.*$/, '$1'));
        for (const item of raw.cart || []) marks.push(String(item).replace(/^b(\d+)-.*$/, '$1'));
        if (raw.note != null) marks.push(String(raw.note).replace(/^b(\d+)-.*$/, '$1'));
      } else {
        for (const msgs of Object.values(held && typeof held === 'object' ? held : {})) for (const m of [].concat(msgs)) marks.push(String(m).replace(/^b(\d+)-.*$/, '$1'));
      }
      if (new Set(marks).size > 1) violate(`stored session ${short} the model never saw holds data of several browsers: ${JSON.stringify(raw || held).slice(0, 200)}`);
    }
    if (unknown > failedRequests) violate(`the namespace holds ${unknown} records under ids the model never saw, more than the ${failedRequests} requests that got no answer or a 503 in a fault could leave (${(stats.flashOnly || []).length} of flashes only)`);
    const st = await store.client.stats(null).catch(() => null);
    if (st && st.sessions !== ids.length) violate(`sessd's STATS counts ${st.sessions} sessions; a scan of the namespace found ${ids.length}`);
  };
  stats.migratedFlashesShown = [...shown.keys()].filter((m) => m.endsWith('-mf')).length;
  stats.lastFaultAgoMs = lastFault ? Date.now() - lastFault : null;

  await scanNamespace();
  if (o.workers) await checkWorkersEnd();
  for (const a of apps) {
    if (o.workers) {
      a.proc.kill('SIGTERM');
      if ((await workerExit(a, 25000)) === null) {
        violate(`worker ${a.name}: still running 25 s after the end's SIGTERM`);
        a.proc.kill('SIGKILL');
      }
      continue;
    }
    await closeServer(a.server);
    a.store.close();
  }
  if (checker) checker.close();
  for (const fn of cleanups.reverse()) await fn();
  try {
    await d.stop();
  } catch (err) {
    violate(err.message);
  }
  // With workers, sessd's whole log: an ASan+UBSan build's reports (SESSD_BIN=build-asan's),
  // a leak left by a killed worker's connections shows at its exit.
  const said = (o.workers && fs.existsSync(path.join(dir, 'sessd.log')) ? fs.readFileSync(path.join(dir, 'sessd.log'), 'utf8') : '') + d.stderr;
  const sanitizer = /ERROR: \w+Sanitizer|runtime error:/.exec(said);
  if (sanitizer) violate(`sessd's sanitizers: ${said.slice(sanitizer.index, sanitizer.index + 2000)}`);
  process.off('unhandledRejection', unhandled);
  fs.rmSync(dir, { recursive: true, force: true });
  if (!daemonUp) violate('daemon was left down');
  return { violations, stats };
}

module.exports = { runModel, rng, makeApp, mergeKey };
