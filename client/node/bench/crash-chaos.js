#!/usr/bin/env node
'use strict';
// Crash chaos with a ledger: kill -9 of sessd (--data-dir) at random moments, again and again,
// under WORKERS client tasks that SET, DESTROY, TOUCH, GET, FLASH_PUSH and FLASH_POP their own
// sessions through one connect-sessd Client (one task per session at a time, so each session's
// history is a sequence). A change answered OK fixes what the session holds; one that failed
// leaves the old and the new state both possible. Every VERIFY_EVERY restarts (and at the end)
// the tasks pause and every session is read and its flashes popped: a session holding what it
// cannot, a flash shown twice, shown after its session's DESTROY was answered, or answered and
// never shown (no pop failed since), is a PROBLEM. So are a restart that fails and a backup that
// exits 0 with a copy --check-data does not pass.
//
//   nice node bench/crash-chaos.js [FSYNC always] [ROUNDS 20] [SNAPSHOT_LOG_BYTES 256K] [key]
//
// FSYNC: sessd's --fsync; SNAPSHOT_LOG_BYTES: its --snapshot-log-bytes (small: many snapshots,
// and kills in them); key: encrypted (--key-file). Exit status 1 when a problem was found.
//
// Environment: WORKERS (48), IDS_PER (12 sessions a task), VERIFY_EVERY (3), BACKUPS=1 (a
// sessd --backup started before half the kills, itself killed half the time), STARTUP_KILL=1
// (before half the restarts, a sessd started on the directory and killed while it loads),
// PRELOAD=N (N sessions of 1 KB loaded first with sessd-bench, in namespace "bulk", so that
// snapshots take seconds and kills land in them), KEEP=1 (keep the directory). SESSD_BIN as
// for the tests. A crash review ran it for 350 kills in the three modes: no problem in sessd;
// it found connect-sessd refusing requests at once while a connection read on after a failed
// write (test/crash.test.js).
const path = require('path');
const fs = require('fs');
const { spawn, spawnSync } = require('child_process');
const { Client } = require('..');
const { Daemon, sleep, sessdBin } = require('../test/helpers');

const MODE = process.argv[2] || 'always';
const ROUNDS = +(process.argv[3] || 20);
const SNAP = process.argv[4] || '256K';
const KEY = process.argv[5] === 'key';
const BENCH_BIN = process.env.SESSD_BENCH_BIN || path.join(path.dirname(sessdBin()), '../bench/sessd-bench');
const WORKERS = +(process.env.WORKERS || 48);
const IDS_PER = +(process.env.IDS_PER || 12);
const VERIFY_EVERY = +(process.env.VERIFY_EVERY || 3);
const BACKUPS = process.env.BACKUPS === '1';
const STARTUP_KILL = process.env.STARTUP_KILL === '1';
const NS = 'chaos';
const TTL = 3600000;

const rnd = (n) => Math.floor(Math.random() * n);
const problems = [];
function problem(s) {
  problems.push(s);
  console.log('PROBLEM', s);
}

// Data ledger: per id, the set of values it may hold (null: absent). Flash ledger per id.
const ids = [];
const maybe = new Map(); // id -> Set of possible values (strings or null)
const flashes = new Map(); // id -> { acked: [msg], maybe: Set, popFailedAfter: Set(msgs uncertain) }
const seenPopped = new Set();
const destroyedMsgs = new Set();
for (let w = 0; w < WORKERS; w++) {
  for (let k = 0; k < IDS_PER; k++) {
    const id = `w${w}-k${k}-${'x'.repeat(20)}`;
    ids.push(id);
    maybe.set(id, new Set([null]));
    flashes.set(id, { pending: new Map(), uncertain: new Set() });
  }
}
const stats = { ok: 0, fail: 0, ops: {} };
let running = true;
let paused = false;
let inflight = 0;
let counter = 0;

function val(id) {
  counter++;
  return `${id}:${counter}:` + 'd'.repeat(rnd(1500));
}

async function worker(w) {
  const mine = ids.slice(w * IDS_PER, (w + 1) * IDS_PER);
  while (running) {
    if (paused) {
      await sleep(5);
      continue;
    }
    const id = mine[rnd(mine.length)];
    const r = rnd(100);
    const f = flashes.get(id);
    const poss = maybe.get(id);
    inflight++;
    let op;
    try {
      if (r < 35) {
        op = 'set';
        const v = val(id);
        try {
          await client.set(NS, id, v, TTL);
          poss.clear();
          poss.add(v);
        } catch (e) {
          poss.add(v);
          throw e;
        }
      } else if (r < 42) {
        op = 'destroy';
        try {
          await client.destroy(NS, id);
          poss.clear();
          poss.add(null);
          // A destroy takes the flashes with it: none of them may show again.
          for (const m of f.pending.keys()) destroyedMsgs.add(m);
          for (const m of f.uncertain) destroyedMsgs.add(m);
          f.pending.clear();
          f.uncertain.clear();
        } catch (e) {
          poss.add(null);
          for (const m of f.pending.keys()) f.uncertain.add(m);
          throw e;
        }
      } else if (r < 50) {
        op = 'touch';
        await client.touch(NS, id, TTL);
      } else if (r < 70) {
        op = 'get';
        const got = await client.get(NS, id);
        const s = got === null ? null : got.toString();
        if (!poss.has(s)) {
          problem(`GET ${id}: got ${s && s.slice(0, 40)} expected one of ${[...poss].map((x) => x && x.slice(0, 40))}`);
        }
        poss.clear();
        poss.add(s);
      } else if (r < 85) {
        op = 'push';
        const m = `m${++counter}`;
        try {
          await client.flashPush(NS, id, 'info', m, TTL);
          f.pending.set(m, true);
        } catch (e) {
          f.uncertain.add(m);
          throw e;
        }
      } else {
        op = 'pop';
        try {
          const msgs = await client.flashPop(NS, id, 'info');
          checkPopped(id, msgs);
        } catch (e) {
          // Every message pending may have been taken by the pop that failed.
          for (const m of f.pending.keys()) f.uncertain.add(m);
          f.pending.clear();
          throw e;
        }
      }
      stats.ok++;
      stats.ops[op] = (stats.ops[op] || 0) + 1;
    } catch (e) {
      stats.fail++;
      if (e.code === 'ESESSD_DISCONNECTED' && (op === 'get' || op === 'set' || op === 'touch' || op === 'destroy')) console.log(`${op} failed: ${e.message} (round of kill ${kills}, ${Date.now() - lastKillAt} ms after it) readyCount ${client.readyCount} window ${client.restartTimer !== null} connected ${client.connected} states ${client.slots.map((s) => s.conn && `${s.conn.state}/${s.conn.announcedReady}/${!!s.conn.writeError}`).join(' ')}`);
      stats.ops[op + ' fail ' + (e.code || e.message)] = (stats.ops[op + ' fail ' + (e.code || e.message)] || 0) + 1;
      await new Promise((r) => setImmediate(r));
    } finally {
      inflight--;
    }
  }
}

function checkPopped(id, msgs) {
  const f = flashes.get(id);
  for (const m of msgs) {
    if (seenPopped.has(m)) problem(`flash ${m} of ${id} shown twice`);
    seenPopped.add(m);
    if (f.pending.has(m)) f.pending.delete(m);
    else if (f.uncertain.has(m)) f.uncertain.delete(m);
    else if (destroyedMsgs.has(m)) problem(`flash ${m} of ${id} shown after its session's DESTROY was acknowledged`);
    else problem(`flash ${m} of ${id} popped but never pushed`);
  }
  // A pop of the type takes every message: an acknowledged one it did not bring is lost.
  for (const m of f.pending.keys()) {
    problem(`flash ${m} of ${id} acknowledged, not in the pop that followed: lost`);
    f.pending.delete(m);
  }
}

let d;
let client;
let kills = 0;
let midSnapshot = 0;
let lastKillAt = 0;
let startupKills = 0;
let backupsDone = 0;
let backupsKilled = 0;
let snapshotsSeen = 0;

async function verifyAll(label) {
  let checked = 0;
  // A restart slower than restartWaitMs (a large directory on a busy machine) ends the pool's
  // wait: it reconnects within reconnectMaxMs of the daemon's start.
  await client.ready();
  for (const id of ids) {
    const got = await client.get(NS, id);
    const s = got === null ? null : got.toString();
    const poss = maybe.get(id);
    if (!poss.has(s)) problem(`${label}: ${id}: got ${s && s.slice(0, 40)} expected one of ${[...poss].map((x) => x && x.slice(0, 40))}`);
    poss.clear();
    poss.add(s);
    checked++;
  }
  // Flashes: pop everything; every acknowledged one must come.
  for (const id of ids) {
    const f = flashes.get(id);
    const msgs = await client.flashPop(NS, id, 'info');
    for (const m of msgs) {
      if (seenPopped.has(m)) problem(`${label}: flash ${m} shown twice`);
      seenPopped.add(m);
      if (f.pending.has(m)) f.pending.delete(m);
      else if (f.uncertain.has(m)) f.uncertain.delete(m);
      else if (destroyedMsgs.has(m)) problem(`${label}: flash ${m} of ${id} shown after its DESTROY was acknowledged`);
      else problem(`${label}: flash ${m} of ${id} popped, never pushed`);
    }
    for (const m of f.pending.keys()) problem(`${label}: flash ${m} of ${id} acknowledged and lost`);
    f.pending.clear();
    f.uncertain.clear();
  }
  return checked;
}

function dataFiles(dir) {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'sessd-chaos-'));
  const data = path.join(dir, 'data');
  const args = ['--data-dir', data, '--fsync', MODE, '--snapshot-log-bytes', SNAP, '--log-level', 'info'];
  if (KEY) {
    fs.writeFileSync(path.join(dir, 'key'), require('crypto').randomBytes(32), { mode: 0o600 });
    args.push('--key-file', path.join(dir, 'key'));
  }
  d = new Daemon({ dir, extraArgs: args, logFile: path.join(dir, 'sessd.log'), readyMs: 60000 });
  await d.start();
  if (process.env.PRELOAD) {
    const r = spawnSync(BENCH_BIN, ['--target', d.unixUrl, '--load', process.env.PRELOAD, '--namespace', 'bulk', '--value-size', '1024'], { encoding: 'utf8' });
    console.log('preload:', (r.stdout || '').trim(), (r.stderr || '').trim().slice(0, 200));
  }
  client = new Client({ url: d.unixUrl, poolSize: 4, reconnectMinMs: 10, reconnectMaxMs: 100, restartWaitMs: 20000, timeoutMs: 20000 });
  await client.ready();
  const ws = [];
  for (let w = 0; w < WORKERS; w++) ws.push(worker(w));
  for (let round = 1; round <= ROUNDS; round++) {
    await sleep(200 + rnd(2500));
    let backup = null;
    if (BACKUPS && rnd(2) === 0) {
      const dest = path.join(dir, `backup-${round}`);
      backup = spawn(sessdBin(), ['--backup', data, dest, ...(KEY ? ['--key-file', path.join(dir, 'key')] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
      backup.err = '';
      backup.done = new Promise((r) => backup.once('exit', (c, sg) => r(c ?? sg)));
      backup.stderr.on('data', (x) => (backup.err += x));
      backup.dest = dest;
      await sleep(rnd(60));
    }
    // Sometimes stop it first so that requests are surely in flight.
    if (rnd(3) === 0) {
      process.kill(d.proc.pid, 'SIGSTOP');
      await sleep(rnd(30));
    }
    const gone = new Promise((r) => d.proc.once('exit', r));
    process.kill(d.proc.pid, 'SIGKILL');
    await gone;
    kills++;
    lastKillAt = Date.now();
    if (dataFiles(data).some((f) => f.startsWith('tmp.snap.'))) midSnapshot++;
    if (backup) {
      if (rnd(2) === 0) {
        backup.kill('SIGKILL');
        backupsKilled++;
      }
      const code = await backup.done;
      if (code === 0) {
        backupsDone++;
        const c = spawnSync(sessdBin(), ['--check-data', backup.dest, ...(KEY ? ['--key-file', path.join(dir, 'key')] : [])], { encoding: 'utf8' });
        if (c.status !== 0) problem(`backup ${backup.dest} exit 0 but check-data ${c.status}: ${c.stdout} ${c.stderr}`);
      } else if (code !== 'SIGKILL') {
        // A backup whose source daemon died is still a valid copy of a directory, or refused.
        if (code === 2 || code === 1) console.log(`backup exit ${code}: ${backup.err.trim().split('\n').slice(-2).join(' | ')}`);
      }
    }
    await sleep(rnd(300));
    if (STARTUP_KILL && rnd(2) === 0) {
      // Kill it during startup.
      const p = spawn(sessdBin(), ['--listen', `unix:${d.sock}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (x) => (err += x));
      const pdone = new Promise((r) => p.once('exit', (c, sg) => r(c ?? sg)));
      await sleep(rnd(400));
      p.kill('SIGKILL');
      const c = await pdone;
      if (c !== 'SIGKILL' && c !== null) problem(`startup before kill exited ${c}: ${err}`);
      startupKills++;
    }
    try {
      await d.start();
    } catch (e) {
      problem(`restart failed after kill ${kills}: ${e.message}`);
      console.log(dataFiles(data));
      const c = spawnSync(sessdBin(), ['--check-data', data, ...(KEY ? ['--key-file', path.join(dir, 'key')] : [])], { encoding: 'utf8' });
      console.log(c.stdout, c.stderr);
      break;
    }
    if (round % VERIFY_EVERY === 0) {
      paused = true;
      while (inflight > 0) await sleep(5);
      const n = await verifyAll(`round ${round}`);
      paused = false;
      const snaps = (fs.readFileSync(path.join(dir, 'sessd.log'), 'utf8').match(/snapshot snap\.\S+ written/g) || []).length;
      snapshotsSeen = snaps;
      console.log(`round ${round}: verified ${n} ids; ok ${stats.ok} fail ${stats.fail}; snapshots written ${snaps}; files ${dataFiles(data).join(' ')}`);
    }
  }
  running = false;
  await Promise.all(ws);
  // Final: kill, restart, verify.
  const gone = new Promise((r) => d.proc.once('exit', r));
  process.kill(d.proc.pid, 'SIGKILL');
  await gone;
  await d.start();
  await verifyAll('final');
  console.log(JSON.stringify({ MODE, SNAP, KEY, kills, midSnapshot, startupKills, backupsDone, backupsKilled, snapshotsSeen, ok: stats.ok, fail: stats.fail, ops: stats.ops }));
  const log = fs.readFileSync(path.join(dir, 'sessd.log'), 'utf8');
  const warns = log.split('\n').filter((l) => /WARN|ERROR|warn|error/.test(l) && !/torn write|holds no record/.test(l));
  console.log('warnings:', warns.slice(0, 20).join('\n'));
  console.log(`problems: ${problems.length}`);
  client.close();
  await d.stop();
  if (!problems.length && !process.env.KEEP) fs.rmSync(dir, { recursive: true, force: true });
  else console.log('kept', dir);
  process.exit(problems.length ? 1 : 0);
}
main().catch((e) => {
  console.error(e);
  process.exit(2);
});
