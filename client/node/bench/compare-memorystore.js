#!/usr/bin/env node
'use strict';
// Requests/s of the example app (examples/express-demo) on connect-sessd vs the same app
// on express-session's MemoryStore, measured with autocannon in alternating runs.
//
//   node bench/compare-memorystore.js [--rounds 3] [--duration 5] [--connections 50]
//
// Uses SESSD_URL if set, else starts a private sessd (SESSD_BIN, default
// ../../build/daemon/sessd). Scenarios: "view" (a logged-in GET / : session load, flash
// pop, touch, render) and "add" (POST /cart: session load, save, flash push; then the
// GET / it redirects to; both requests counted). Each autocannon connection is its own
// logged-in user. Prints medians and the ratio.

const { spawn } = require('child_process');
const path = require('path');
const http = require('http');
const autocannon = require('autocannon');
const { Daemon } = require('../test/helpers');

const DEMO_DIR = path.resolve(__dirname, '../../../examples/express-demo');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const ROUNDS = arg('rounds', 3);
const DURATION = arg('duration', 5);
const CONNECTIONS = arg('connections', 50);

function startDemo(env) {
  const proc = spawn(process.execPath, ['server.js'], { cwd: DEMO_DIR, env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ proc, base: m[1] });
    });
    proc.once('exit', (code) => reject(new Error('demo exited ' + code)));
  });
}

function stopDemo(demo) {
  return new Promise((resolve) => {
    demo.proc.removeAllListeners('exit');
    demo.proc.once('exit', resolve);
    demo.proc.kill('SIGTERM');
  });
}

function login(base, name) {
  return new Promise((resolve, reject) => {
    const body = 'username=' + encodeURIComponent(name);
    const req = http.request(base + '/login', { method: 'POST', agent: false, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length } }, (res) => {
      res.resume();
      const c = (res.headers['set-cookie'] || [])[0];
      if (!c) reject(new Error('login set no cookie'));
      else resolve(c.split(';')[0]);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function measure(base, scenario) {
  const cookies = [];
  for (let i = 0; i < CONNECTIONS; i++) cookies.push(await login(base, 'user' + i));
  let next = 0;
  // "add" is what a browser does: the POST, then the page it redirects to, which shows
  // (pops) the flash, so no store accumulates flashes.
  const sequence = scenario === 'view'
    ? [{ method: 'GET', path: '/' }]
    : [{ method: 'POST', path: '/cart', body: 'item=2+lemons', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      { method: 'GET', path: '/' }];
  const withCookie = (request) => ({
    ...request,
    setupRequest: (req, ctx) => {
      if (!ctx.cookie) ctx.cookie = cookies[next++ % cookies.length];
      req.headers = { ...(req.headers || {}), cookie: ctx.cookie };
      return req;
    },
  });
  const opts = (duration) => ({ url: base, connections: CONNECTIONS, duration, requests: sequence.map(withCookie) });
  await autocannon(opts(1)); // warm-up
  const r = await autocannon(opts(DURATION));
  const bad = r.errors + r.timeouts + r['4xx'] + r['5xx'];
  if (bad > 0) throw new Error(`${scenario}: ${r.errors} errors, ${r.timeouts} timeouts, ${r['4xx']} 4xx, ${r['5xx']} 5xx`);
  if (scenario === 'add' && r['3xx'] === 0) throw new Error('add: no redirects');
  return r.requests.average;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  let daemon = null;
  let url = process.env.SESSD_URL;
  if (!url) {
    daemon = await new Daemon().start();
    url = daemon.tcpUrl;
  }
  const results = { view: { memory: [], sessd: [] }, add: { memory: [], sessd: [] } };
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const scenario of ['view', 'add']) {
        // Alternate which store goes first so drift on a shared machine hits both.
        const order = round % 2 ? ['memory', 'sessd'] : ['sessd', 'memory'];
        for (const kind of order) {
          const demo = await startDemo({ DEMO_STORE: kind, SESSD_URL: url, SESSD_NAMESPACE: `bench-${round}` });
          try {
            const rps = await measure(demo.base, scenario);
            results[scenario][kind].push(rps);
            console.log(`round ${round} ${scenario.padEnd(4)} ${kind.padEnd(6)} ${rps.toFixed(0)} req/s`);
          } finally {
            await stopDemo(demo);
          }
        }
      }
    }
  } finally {
    if (daemon) await daemon.cleanup();
  }
  console.log(`\nexample app, ${CONNECTIONS} connections, ${DURATION} s x ${ROUNDS} rounds, medians:`);
  for (const scenario of ['view', 'add']) {
    const mem = median(results[scenario].memory);
    const ses = median(results[scenario].sessd);
    console.log(`  ${scenario.padEnd(4)}  MemoryStore ${mem.toFixed(0).padStart(6)} req/s   connect-sessd ${ses.toFixed(0).padStart(6)} req/s   ratio ${(ses / mem).toFixed(2)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
