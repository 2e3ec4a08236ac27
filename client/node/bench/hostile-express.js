#!/usr/bin/env node
'use strict';
// connect-sessd inside an Express app whose sessd is behind scripts/hostile-proxy.py (by hand;
// scripts/hostile-clients.sh runs it for every scenario): two users log in and read their page
// ROUNDS times at once. Each answer must be the user's own page or a 5xx error, within
// timeoutMs and a margin; never the other user's (one user's session shown to another); the
// app must not crash; and once the faults are past, pages must be served again.
//
//   node bench/hostile-express.js URL [ROUNDS 20]
//
// Prints one line: answers by kind, the slowest, and PROBLEM lines; exit status 1 on a problem.
const http = require('http');
const express = require('express');
const session = require('express-session');
const { SessdStore } = require('..');

const url = process.argv[2];
const ROUNDS = Number(process.argv[3] || 20);
const TIMEOUT_MS = 1000;
const problems = [];
process.on('uncaughtException', (err) => problems.push(`uncaught ${err.stack}`));
process.on('unhandledRejection', (err) => problems.push(`unhandled rejection ${err && err.stack}`));

const store = new SessdStore({ url, timeoutMs: TIMEOUT_MS, connectTimeoutMs: TIMEOUT_MS, reconnectMinMs: 20, reconnectMaxMs: 200 });
const app = express();
app.use(session({ store, secret: 'hostile-express secret', resave: false, saveUninitialized: false }));
// The README's guard: while the store is disconnected express-session passes requests on
// without req.session.
app.use((req, res, next) => (req.session ? next() : res.status(503).send('error no session')));
app.get('/login/:user', (req, res) => {
  req.session.user = req.params.user;
  res.send('ok');
});
app.get('/me', (req, res) => res.send(`user=${req.session.user || ''}`));
// The error handler shows the status only. express-session hands on a failed save of a page
// already sent: nothing more can be said then.
app.use((err, req, res, next) => {
  if (res.headersSent) return;
  res.status(err.statusCode || 500).send(`error ${err.code || err.message}`);
});

function get(port, path, cookie) {
  return new Promise((resolve) => {
    const started = Date.now();
    const req = http.get({ port, path, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body, cookie: (res.headers['set-cookie'] || [])[0], ms: Date.now() - started }));
    });
    req.on('error', (err) => resolve({ status: 0, body: err.message, ms: Date.now() - started }));
    req.setTimeout(TIMEOUT_MS * 4 + 2000, () => req.destroy(new Error('no answer')));
  });
}

async function main() {
  const server = app.listen(0);
  await new Promise((r) => server.once('listening', r));
  const port = server.address().port;
  const kinds = {};
  let slowest = 0;
  const count = (r) => {
    const k = r.status === 200 ? '200' : `${r.status} ${r.body.slice(0, 40)}`;
    kinds[k] = (kinds[k] || 0) + 1;
    slowest = Math.max(slowest, r.ms);
    // A request may wait for a reconnection (restartWaitMs) and then its own timeout.
    if (r.ms > TIMEOUT_MS * 4 + 1000) problems.push(`an answer took ${r.ms} ms`);
    if (r.status !== 200 && (r.status < 500 || r.status > 599)) problems.push(`status ${r.status}: ${r.body}`);
  };
  const cookies = {};
  for (const user of ['alice', 'bob']) {
    for (let i = 0; i < 10 && !cookies[user]; i++) {
      const r = await get(port, `/login/${user}`);
      count(r);
      if (r.status === 200 && r.cookie) cookies[user] = r.cookie.split(';')[0];
    }
    if (!cookies[user]) problems.push(`${user} could not log in in 10 tries`);
  }
  let lastOk = 0;
  for (let round = 0; round < ROUNDS && cookies.alice && cookies.bob; round++) {
    const [a, b] = await Promise.all([get(port, '/me', cookies.alice), get(port, '/me', cookies.bob)]);
    for (const [r, user, other] of [[a, 'alice', 'bob'], [b, 'bob', 'alice']]) {
      count(r);
      if (r.status === 200 && r.body !== `user=${user}`) problems.push(`${user}'s page showed ${JSON.stringify(r.body)}${r.body.includes(other) ? ` (${other}'s session)` : ''}`);
      if (r.status === 200) lastOk = round;
    }
  }
  if (lastOk < ROUNDS - 3) problems.push(`no page served in the last rounds (last at round ${lastOk})`);
  server.close();
  store.client.terminate();
  console.log(`answers ${JSON.stringify(kinds)}, slowest ${slowest} ms`);
  for (const p of problems) console.log(`PROBLEM: ${p}`);
  process.exit(problems.length ? 1 : 0);
}

main();
