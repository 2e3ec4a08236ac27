'use strict';
// Part 1a: an app written against connect-flash, moved to connect-sessd's flash() as
// client/node/README.md says (every req.flash awaited), run beside the same app on
// connect-flash + MemoryStore. Each scenario is a list of requests of one browser; each
// request makes a list of req.flash calls (awaited, in order) and answers what they gave.
// Prints each scenario's results on both and marks the ones that differ. Exit 1 when a
// difference is not among those client/node/README.md documents (KNOWN below).
// Needs SESSD (a sessd binary); express and express-session come from client/node.
const path = require('path');
const fs = require('fs');
const os = require('os');
const http = require('http');
const NODE = path.join(__dirname, '../../client/node');
const req_ = (m) => require(require.resolve(m, { paths: [NODE] }));
// EXPRESS=express4: the same on Express 4 (client/node's devDependency of that name)
const express = req_(process.env.EXPRESS || 'express');
const session = req_('express-session');
const connectFlash = require('connect-flash');
const { startSessd } = require('./sessd');
const { SessdStore, flash } = require(NODE);

const SESSD = process.env.SESSD || path.join(__dirname, '../../build/daemon/sessd');

// Differences client/node/README.md documents ("Differences from connect-redis and
// connect-flash", "req.flash"): shown, not counted.
const KNOWN = new Set(['falsy-message', 'empty-array', 'proto-type', 'object-message']);

const SCENARIOS = [
  // [name, [request, ...]]; a request is { calls: [[...args], ...], then?: 'redirect' }
  ['format', [{ calls: [['info', 'Hi %s, you have %d items', 'ada', 3]] }, { calls: [['info']] }]],
  ['format-json', [{ calls: [['info', 'obj %j', { a: 1 }]] }, { calls: [['info']] }]],
  ['format-extra-args', [{ calls: [['info', 'no placeholders', 'x', 7]] }, { calls: [['info']] }]],
  ['format-array-first', [{ calls: [['info', ['a', 'b'], 'x']] }, { calls: [['info']] }]],
  ['array', [{ calls: [['info', ['one', 'two']]] }, { calls: [['info']] }]],
  ['two-pushes-count', [{ calls: [['info', 'a'], ['info', 'b'], ['error', 'c']] }, { calls: [['info']] }]],
  ['read-all', [{ calls: [['info', 'a'], ['error', 'e'], ['info', 'b']] }, { calls: [[]] }, { calls: [[]] }]],
  ['read-all-order', [{ calls: [['warning', 'w'], ['error', 'e'], ['info', 'i'], ['success', 's']] }, { calls: [[]] }]],
  ['same-request', [{ calls: [['info', 'x'], ['info'], ['info']] }]],
  ['same-request-all', [{ calls: [['info', 'x'], ['error', 'y'], []] }]],
  ['read-other-type-keeps', [{ calls: [['info', 'x'], ['error', 'y']] }, { calls: [['error']] }, { calls: [['info']] }]],
  ['read-empty', [{ calls: [['nothing']] }, { calls: [[]] }]],
  ['undefined-message-reads', [{ calls: [['info', 'x']] }, { calls: [['info', undefined]] }]],
  ['falsy-message', [{ calls: [['info', '']] }, { calls: [['info']] }]],
  ['empty-array', [{ calls: [['info', 'a'], ['info', []]] }, { calls: [['info']] }]],
  ['number-type', [{ calls: [[404, 'not found']] }, { calls: [['404']] }]],
  ['proto-type', [{ calls: [['constructor', 'x']] }, { calls: [['constructor']] }]],
  ['object-message', [{ calls: [['form', { field: 'email', msg: 'bad', at: '2026-01-01T00:00:00.000Z' }]] }, { calls: [['form']] }]],
  ['unicode', [{ calls: [['info', 'Größe ✓ <b>bold</b> 😀']] }, { calls: [['info']] }]],
  ['many-types', [{ calls: Array.from({ length: 20 }, (_, i) => [`t${i}`, `m${i}`]) }, { calls: [[]] }]],
  ['fire-and-forget', [{ calls: [['info', 'not awaited']], mode: 'noawait-redirect' }, { calls: [['info']] }]],
  ['noawait-push-then-read', [{ calls: [['info', 'a'], ['info', 'b'], ['error', 'c'], ['info']], mode: 'noawait-then-read' }, { calls: [[]] }]],
  ['noawait-push-then-read-all', [{ calls: [['info', 'a'], ['error', 'c'], []], mode: 'noawait-then-read' }, { calls: [[]] }]],
  ['promise-all-push-push-read', [{ calls: [['info', 'a'], ['info', 'b'], ['info']], mode: 'all' }, { calls: [['info']] }]],
  ['noawait-in-existing-session', [{ calls: [['x', 'seed']] }, { calls: [['x']] }, { calls: [['info', 'a'], ['info', 'b'], ['info']], mode: 'noawait-then-read' }, { calls: [[]] }]],
  ['locals-app-wide', [{ calls: [['info', 'saved']], mode: 'redirect' }, { mode: 'locals' }, { mode: 'locals' }]],
  ['push-then-redirect-then-locals', [{ calls: [['error', 'Invalid password'], ['error', 'Try again']], mode: 'redirect' }, { mode: 'locals' }]],
];


// The converted app: every req.flash awaited, errors become a JSON answer.
function makeApp(kind, store) {
  const app = express();
  app.use(express.json());
  app.use(session({ store, secret: 'users-65', resave: false, saveUninitialized: false }));
  app.use(kind === 'sessd' ? flash() : connectFlash());
  const run = async (req, calls) => {
    const out = [];
    for (const args of calls) {
      try { out.push(await req.flash(...args)); } catch (e) { out.push({ error: `${e.name}: ${e.message}` }); }
    }
    return out;
  };
  app.post('/do', async (req, res) => {
    const { calls, mode } = req.body;
    if (mode === 'noawait-redirect') {
      for (const args of calls) req.flash(...args);
      return res.redirect(303, '/landing');
    }
    if (mode === 'noawait-then-read') {
      // connect-flash code, unconverted but for the last call: the pushes not awaited
      const last = calls[calls.length - 1];
      for (const args of calls.slice(0, -1)) req.flash(...args);
      try { return res.json([await req.flash(...last)]); } catch (e) { return res.json([{ error: e.message }]); }
    }
    if (mode === 'all') {
      const r = await Promise.all(calls.map((args) => Promise.resolve(req.flash(...args)).catch((e) => ({ error: e.message }))));
      return res.json(r);
    }
    const out = await run(req, calls);
    if (mode === 'redirect') return res.redirect(303, '/landing');
    res.json(out);
  });
  // connect-flash's usual app-wide pattern, converted: messages into res.locals on a page.
  app.get('/page', async (req, res, next) => {
    try { res.locals.messages = await req.flash(); } catch (e) { return next(e); }
    res.json(res.locals.messages);
  });
  app.get('/landing', (req, res) => res.send('ok'));
  return app;
}

function listen(app) {
  return new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
}

function request(port, method, p, body, cookie) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : JSON.stringify(body);
    const r = http.request({ host: '127.0.0.1', port, method, path: p, headers: {
      ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
      ...(cookie ? { cookie } : {}),
    } }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    if (data) r.write(data);
    r.end();
  });
}

// JSON cannot carry undefined inside calls: mark it.
const enc = (calls) => calls.map((a) => a.map((x) => (x === undefined ? { $undef: true } : x)));

async function runScenario(port, reqs) {
  let cookie = null;
  const results = [];
  for (const r of reqs) {
    let res;
    if (r.mode === 'locals') res = await request(port, 'GET', '/page', undefined, cookie);
    else res = await request(port, 'POST', '/do', { calls: enc(r.calls), mode: r.mode }, cookie);
    const sc = res.headers['set-cookie'];
    if (sc) cookie = sc[0].split(';')[0];
    results.push(res.status >= 300 && res.status < 400 ? `${res.status}` : res.body);
  }
  return results;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'users65-flash-'));
  const d = await startSessd(SESSD, dir);
  const store = new SessdStore({ url: d.url, namespace: 'compat' });
  const apps = {
    'connect-flash': makeApp('cf', new session.MemoryStore()),
    'connect-sessd': makeApp('sessd', store),
  };
  // undefined marker back to undefined for both apps
  for (const app of Object.values(apps)) {
    app._router; // eslint-disable-line no-unused-expressions
  }
  const servers = {};
  for (const [k, app] of Object.entries(apps)) servers[k] = await listen(app);
  let unexpected = 0;
  for (const [name, reqs] of SCENARIOS) {
    const got = {};
    for (const [k, s] of Object.entries(servers)) got[k] = await runScenario(s.address().port, reqs);
    const a = JSON.stringify(got['connect-flash']);
    const b = JSON.stringify(got['connect-sessd']);
    const same = a === b;
    const mark = same ? 'same' : KNOWN.has(name) ? 'differs (documented)' : 'DIFFERS';
    if (!same && !KNOWN.has(name)) unexpected++;
    console.log(`${name}: ${mark}`);
    if (!same) { console.log(`  connect-flash: ${a}`); console.log(`  connect-sessd: ${b}`); }
  }
  console.log(`${unexpected} undocumented difference(s) in ${SCENARIOS.length} scenarios`);
  for (const s of Object.values(servers)) s.close();
  store.close();
  d.p.kill('SIGTERM');
  process.exitCode = unexpected ? 1 : 0;
}

// express.json() cannot give undefined: turn the marker back before the app sees it.
const origJson = express.json;
express.json = (...a) => {
  const mw = origJson(...a);
  return (req, res, next) => mw(req, res, (err) => {
    if (!err && req.body && req.body.calls) {
      req.body.calls = req.body.calls.map((c) => c.map((x) => (x && x.$undef ? undefined : x)));
    }
    next(err);
  });
};

main().catch((e) => { console.error(e); process.exit(2); });
