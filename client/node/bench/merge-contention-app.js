'use strict';
// The app process of bench/merge-contention.js (forked by it; not meant to be run alone).
// Express + express-session on connect-sessd with merge on. POST /k/:n?v=SEQ sets
// req.session['k' + n] = SEQ. Measured from outside the store: store.set is wrapped (save
// latency, outcome, the values acknowledged) and store.client.setIf (SET_IFs per save,
// attributed through AsyncLocalStorage). Talks to its parent over IPC: sends { port } when
// listening, answers 'stats' with its records.
// Env: SESSD_URL, MERGE_ATTEMPTS, MERGE_BACKOFF_MAX_MS (both optional: the store's defaults).

const { AsyncLocalStorage } = require('async_hooks');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');

const opts = { url: process.env.SESSD_URL, namespace: 'merge-bench' };
if (process.env.MERGE_ATTEMPTS) opts.mergeAttempts = Number(process.env.MERGE_ATTEMPTS);
if (process.env.MERGE_BACKOFF_MAX_MS) opts.mergeBackoffMaxMs = Number(process.env.MERGE_BACKOFF_MAX_MS);
const store = new SessdStore(opts);

// lat/att: per merged save (SET_IF), in ms and SET_IFs. acked: key -> highest value a save
// that succeeded carried for it.
const rec = { lat: [], att: [], ok: 0, conflict: 0, otherErr: 0, otherCodes: {}, gone: 0, touches: 0, creates: 0, acked: {} };
store.on('gone', () => {
  rec.gone++;
});

const als = new AsyncLocalStorage();
const setIf = store.client.setIf.bind(store.client);
store.client.setIf = function (...args) {
  const ctx = als.getStore();
  if (ctx) ctx.attempts++;
  return setIf(...args);
};
const touch = store.client.touch.bind(store.client);
store.client.touch = function (...args) {
  const ctx = als.getStore();
  if (ctx) ctx.touched = true;
  return touch(...args);
};

// The key and value a request set, hidden from the session's serialization.
const MARK = Symbol('merge-bench mark');
const set = store.set.bind(store);
store.set = function (sid, sess, cb) {
  const ctx = { attempts: 0, touched: false };
  const t0 = process.hrtime.bigint();
  const mark = sess && sess[MARK];
  return als.run(ctx, () => set(sid, sess, (err, v) => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ctx.attempts > 0) {
      rec.lat.push(ms);
      rec.att.push(ctx.attempts);
    } else if (ctx.touched) rec.touches++;
    else rec.creates++;
    if (err) {
      if (err.code === 'ESESSD_CONFLICT') rec.conflict++;
      else {
        rec.otherErr++;
        const code = err.code || err.message;
        rec.otherCodes[code] = (rec.otherCodes[code] || 0) + 1;
      }
    } else {
      if (ctx.attempts > 0) rec.ok++;
      if (mark) {
        const [k, val] = mark;
        if (!(k in rec.acked) || rec.acked[k] < val) rec.acked[k] = val;
      }
    }
    if (cb) cb(err, v);
  }));
};

const app = express();
app.use(session({ store, secret: 'merge-contention-bench', resave: false, saveUninitialized: false, name: 'sid' }));
app.post('/init', (req, res) => {
  req.session.init = Date.now();
  res.type('text').send(req.sessionID);
});
app.post('/k/:n', (req, res) => {
  const k = 'k' + req.params.n;
  const v = Number(req.query.v);
  req.session[k] = v;
  // A symbol-keyed property: neither JSON nor the store's change check sees it.
  req.session[MARK] = [k, v];
  res.type('text').send('ok');
});
// express-session reports a failed save here, after the response has been written.
app.use((err, req, res, next) => {
  if (!res.headersSent) res.status(500).type('text').send('error');
});

const server = app.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', (m) => {
  if (m === 'stats') process.send({ stats: rec });
});
process.on('SIGTERM', () => {
  server.closeAllConnections?.();
  server.close();
  store.close();
  setTimeout(() => process.exit(0), 200).unref();
});
process.on('disconnect', () => process.exit(0));
