#!/usr/bin/env node
'use strict';
// Merged saves under contention: N clients save one session at once, through Express and
// express-session on connect-sessd (merge on), and each client sends its next request as
// soon as the last was answered (a closed loop). Client i sets key k<i> of the session to
// 1, 2, 3, ...; with several app processes, client i talks to process i % procs.
//
//   node bench/merge-contention.js [--n 8,16,32,64] [--seconds 12] [--runs 2] [--procs 1]
//       [--attempts A] [--compare-cap MS] [--json]
//
// Starts a private sessd on a Unix socket in a fresh temporary directory (SESSD_BIN,
// default ../../build/daemon/sessd) and stops it at the end. For each N, per run: saves
// (merged saves, i.e. SET_IFs, counted in the app), the share that failed with
// ESESSD_CONFLICT, SET_IFs per save p50/p99/max, save latency p50/p99 (store.set called to
// its callback), and a check that the session holds, for every key, at least the last value
// a successful save acknowledged (else it prints LOST and exits 1). Prints the medians over
// runs (--json: the runs and the medians as JSON on stdout).
//
// --attempts sets the store's mergeAttempts (default: the store's, 25). --compare-cap MS
// also runs every N with the wait between merge attempts capped at MS instead of the
// store's MERGE_BACKOFF_MAX_MS (lib/store.js), alternating with the default in each round.

const { fork } = require('child_process');
const http = require('http');
const path = require('path');
const { Client } = require('..');
const { Daemon } = require('../test/helpers');

function usage(msg) {
  console.error(`${msg}\nusage: node bench/merge-contention.js [--n 8,16,32,64] [--seconds 12] [--runs 2] [--procs 1] [--attempts A] [--compare-cap MS] [--json]`);
  process.exit(2);
}

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  if (v === undefined) usage(`--${name} needs a value`);
  return v;
}

function positiveInt(name, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer`);
  return n;
}

const KNOWN = new Set(['--n', '--seconds', '--runs', '--procs', '--attempts', '--compare-cap', '--json']);
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (!KNOWN.has(a)) usage(`unknown argument ${a}`);
  if (a !== '--json') i++;
}
const NS = String(arg('n', '8,16,32,64')).split(',').map((v) => positiveInt('n', v));
const SECONDS = Number(arg('seconds', 12));
if (!(SECONDS > 0)) usage('--seconds must be above 0');
const RUNS = positiveInt('runs', arg('runs', 2));
const PROCS = positiveInt('procs', arg('procs', 1));
const ATTEMPTS = arg('attempts', null) === null ? null : positiveInt('attempts', arg('attempts'));
const COMPARE_CAP = arg('compare-cap', null) === null ? null : Number(arg('compare-cap'));
if (COMPARE_CAP !== null && !(Number.isFinite(COMPARE_CAP) && COMPARE_CAP >= 0)) usage('--compare-cap must be a number of ms of at least 0');
const JSON_OUT = process.argv.includes('--json');
// Progress lines go to stderr with --json, so that stdout is only the JSON.
const log = JSON_OUT ? (...a) => console.error(...a) : (...a) => console.log(...a);

function request(agent, port, method, p, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

// Nearest-rank percentile.
function pct(xs, p) {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function median(xs) {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function startApp(url, cap) {
  const env = { ...process.env, SESSD_URL: url };
  delete env.MERGE_ATTEMPTS;
  delete env.MERGE_BACKOFF_MAX_MS;
  if (ATTEMPTS !== null) env.MERGE_ATTEMPTS = String(ATTEMPTS);
  if (cap !== null) env.MERGE_BACKOFF_MAX_MS = String(cap);
  const child = fork(path.join(__dirname, 'merge-contention-app.js'), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`app process exited (${code}) before it listened`)));
  });
  child.removeAllListeners('exit');
  return { child, port };
}

function appStats(app) {
  return new Promise((resolve) => {
    const onMessage = (m) => {
      if (m && m.stats) {
        app.child.off('message', onMessage);
        resolve(m.stats);
      }
    };
    app.child.on('message', onMessage);
    app.child.send('stats');
  });
}

function stopApp(app) {
  if (app.child.exitCode !== null || app.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    app.child.once('exit', resolve);
    app.child.kill('SIGTERM');
  });
}

// One measured run at N clients; cap null: the store's default wait cap.
async function run(daemon, client, N, cap) {
  const apps = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
  try {
    for (let p = 0; p < PROCS; p++) apps.push(await startApp(daemon.unixUrl, cap));
    const init = await request(agent, apps[0].port, 'POST', '/init');
    if (init.status !== 200) throw new Error(`POST /init answered ${init.status}`);
    const cookie = init.headers['set-cookie'][0].split(';')[0];
    const sid = init.body;
    let sent = 0;
    let non200 = 0;
    let netErr = 0;
    const t0 = Date.now();
    const end = t0 + SECONDS * 1000;
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      for (let seq = 1; Date.now() < end; seq++) {
        sent++;
        try {
          const r = await request(agent, apps[i % PROCS].port, 'POST', `/k/${i}?v=${seq}`, cookie);
          if (r.status !== 200) non200++;
        } catch (err) {
          netErr++;
        }
      }
    }));
    const elapsed = (Date.now() - t0) / 1000;
    const stats = await Promise.all(apps.map(appStats));
    const data = await client.get('merge-bench', sid);
    const stored = data === null ? null : JSON.parse(data.toString('utf8'));

    const lat = [].concat(...stats.map((s) => s.lat));
    const att = [].concat(...stats.map((s) => s.att));
    const sum = (k) => stats.reduce((a, s) => a + s[k], 0);
    const acked = {};
    for (const s of stats) for (const [k, v] of Object.entries(s.acked)) if (!(k in acked) || acked[k] < v) acked[k] = v;
    const lost = [];
    for (const [k, v] of Object.entries(acked)) {
      const have = stored ? stored[k] : undefined;
      if (typeof have !== 'number' || have < v) lost.push({ key: k, acked: v, stored: have ?? null });
    }
    const otherCodes = {};
    for (const s of stats) for (const [c, n] of Object.entries(s.otherCodes)) otherCodes[c] = (otherCodes[c] || 0) + n;
    const ok = sum('ok');
    const conflict = sum('conflict');
    const otherErr = sum('otherErr');
    const saves = att.length;
    return {
      N, procs: PROCS, cap: cap ?? 'default', attemptsCap: ATTEMPTS ?? 'default', seconds: SECONDS, elapsed,
      sent, non200, netErr, saves, ok, conflict, otherErr, otherCodes,
      gone: sum('gone'), touches: sum('touches'), creates: sum('creates'),
      failShare: saves ? conflict / saves : null,
      savesPerSec: saves / elapsed,
      attempts: { p50: pct(att, 50), p99: pct(att, 99), max: att.length ? Math.max(...att) : null, mean: saves ? att.reduce((a, b) => a + b, 0) / saves : null },
      latMs: { p50: pct(lat, 50), p99: pct(lat, 99), max: lat.length ? Math.max(...lat) : null },
      keysAcked: Object.keys(acked).length,
      lost,
    };
  } finally {
    await Promise.all(apps.map(stopApp));
    agent.destroy();
  }
}

const f = (x, d) => (x === null ? '-' : x.toFixed(d));

function summarize(rs) {
  const m = (g) => median(rs.map(g));
  return {
    N: rs[0].N, cap: rs[0].cap, runs: rs.length,
    saves: m((r) => r.saves),
    savesPerSec: m((r) => r.savesPerSec),
    failPct: m((r) => (r.failShare === null ? null : 100 * r.failShare)),
    attemptsP50: m((r) => r.attempts.p50),
    attemptsP99: m((r) => r.attempts.p99),
    attemptsMax: m((r) => r.attempts.max),
    latP50Ms: m((r) => r.latMs.p50),
    latP99Ms: m((r) => r.latMs.p99),
    lost: rs.reduce((a, r) => a + r.lost.length, 0),
  };
}

async function main() {
  const daemon = await new Daemon().start();
  const client = new Client({ url: daemon.unixUrl });
  const results = [];
  const caps = COMPARE_CAP === null ? [null] : [null, COMPARE_CAP];
  try {
    for (let round = 1; round <= RUNS; round++) {
      for (const N of NS) {
        // Alternate which cap goes first so drift on a shared machine hits both.
        const order = round % 2 ? caps : [...caps].reverse();
        for (const cap of order) {
          const r = await run(daemon, client, N, cap);
          results.push(r);
          log(`run ${round} N=${N}${COMPARE_CAP === null ? '' : ` cap=${cap ?? 'default'}`}: ${r.saves} saves, ${f(100 * (r.failShare ?? 0), 2)}% failed,` +
            ` attempts p50/p99/max ${r.attempts.p50}/${r.attempts.p99}/${r.attempts.max}, save p50/p99 ${f(r.latMs.p50, 1)}/${f(r.latMs.p99, 1)} ms` +
            (r.lost.length ? `, LOST ${r.lost.length}/${r.keysAcked}` : ''));
          for (const l of r.lost) log(`LOST ${l.key}: acknowledged ${l.acked}, stored ${l.stored}`);
          if (r.otherErr || r.netErr) log(`  other save errors ${JSON.stringify(r.otherCodes)}, network errors ${r.netErr}`);
        }
      }
    }
  } finally {
    client.close();
    await daemon.cleanup();
  }

  const summary = [];
  for (const N of NS) for (const cap of caps) summary.push(summarize(results.filter((r) => r.N === N && r.cap === (cap ?? 'default'))));
  const lost = results.some((r) => r.lost.length > 0);
  const settings = { n: NS, seconds: SECONDS, runs: RUNS, procs: PROCS, attempts: ATTEMPTS ?? 'default', compareCap: COMPARE_CAP, node: process.version };
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ settings, summary, runs: results, lost }, null, 2) + '\n');
  } else {
    console.log(`\nmerged saves of one session, N clients at once (closed loop), ${PROCS} app process${PROCS > 1 ? 'es' : ''},` +
      ` mergeAttempts ${ATTEMPTS ?? 'default'}, ${SECONDS} s x ${RUNS} runs, medians:`);
    const capCol = COMPARE_CAP !== null;
    const head = ['N', ...(capCol ? ['cap ms'] : []), 'saves', 'saves/s', 'failed %', 'att p50', 'att p99', 'att max', 'save p50 ms', 'save p99 ms', 'lost'];
    const rows = summary.map((s) => [String(s.N), ...(capCol ? [s.cap === 'default' ? 'default' : String(s.cap)] : []),
      f(s.saves, 0), f(s.savesPerSec, 0), f(s.failPct, 2), f(s.attemptsP50, 0), f(s.attemptsP99, 0), f(s.attemptsMax, 0),
      f(s.latP50Ms, 1), f(s.latP99Ms, 1), s.lost ? 'LOST ' + s.lost : '0']);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    for (const r of [head, ...rows]) console.log('  ' + r.map((c, i) => c.padStart(widths[i])).join('  '));
  }
  if (lost) {
    console.error('LOST: an acknowledged value is missing from the session');
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
