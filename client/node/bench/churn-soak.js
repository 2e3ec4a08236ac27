#!/usr/bin/env node
'use strict';
// A long run of sessd near its --max-memory with sessions whose sizes change over time: does
// the heap fragment, does RSS climb, does the disk stay bounded, does expiry keep time, does
// the Node client's pool stay small over thousands of reconnects?
//
//   nice -n 10 node --expose-gc bench/churn-soak.js [--minutes 75] [--data-dir]
//       [--fsync everysec] [--max-memory 128M] [--rate 1200] [--sample 5] [--out FILE.json]
//       [--cut-ms 250] [--short-client-ms 250] [--quiet-s 90]
//
// Starts its own sessd (SESSD_BIN, default ../../build/daemon/sessd) with --auth-file, on a
// Unix socket and a loopback port, memory-only unless --data-dir (a fresh directory, --fsync
// POLICY). The load, paced at --rate operations a second over 48 workers:
// - sessions in 4 namespaces of three kinds: carts that grow by 0.2-3 KB a write up to 64 KB
//   and shrink to 300 B at a checkout; blobs rewritten at a new size each time; small ones
//   (100-500 B). Blob and new cart sizes are log-normal around a median that swings between
//   300 B and 16 KB over 16 minutes, so the sizes freed and asked for keep shifting;
// - half the sessions live 2-30 s, half 1-15 min (touched and rewritten with the same ttl), so
//   expiry runs all the time; new sessions are made until sessd answers NO_MEMORY, which
//   keeps the store near --max-memory;
// - GET, SET, TOUCH, TTL, FLASH_PUSH_EXISTING (20 B-2 KB), FLASH_POP, DESTROY;
// - clients: a pool of 4 on the Unix socket (plain secret), a pool of 2 sealed over TCP, a
//   pool of 2 through an in-process relay that cuts one of its connections every --cut-ms
//   (the pool reconnects), and a new sealed or plain client of 1 connection every
//   --short-client-ms that makes 4 requests and closes.
// One request at a time per session, so every answer is checked against a model: a GET that
// answers before the session's ttl can have run out finds the exact bytes of its last
// acknowledged write; one sent after the ttl surely ran out finds nothing; TTL answers lie in
// the window the send and answer times allow; a pop returns the messages pushed, in order.
// A session whose request failed on the transport (it may or may not have been carried out)
// leaves the model.
//
// Every --sample seconds: sessd's RSS (and ratio to STATS bytes), peak RSS, open fds, STATS
// (bytes, sessions, no_memory_total, expired_total, loop stalls), the data directory's bytes
// and files, a probe's GET latency (p50/p99/max over the sample; one GET every 20 ms on a
// connection of its own), the drift of a 3-hour session's TTL against the time passed, the
// trims sessd logged, and this process's heap after a GC and its clients' queues. At the end
// the load stops and the run waits --quiet-s seconds (the short sessions expire; does memory
// come back?); with --data-dir, sessd is then stopped (SIGTERM) and started on its directory,
// and every session is compared with what it was before the stop.
//
// Prints a line per sample and a summary (first / last / max); --out writes every sample and
// the summary as JSON, and keeps the run's directory (sessd.log). Exit status 1 when any check
// failed.

const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { Daemon } = require('../test/helpers');
const { Client } = require('../lib/client');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}

const MINUTES = Number(arg('minutes', 75));
const DATA_DIR = arg('data-dir', false) !== false;
const FSYNC = arg('fsync', 'everysec');
const MAX_MEMORY = arg('max-memory', '128M');
const RATE = Number(arg('rate', 1200));
const SAMPLE_S = Number(arg('sample', 5));
const OUT = arg('out', null);
const CUT_MS = Number(arg('cut-ms', 250));
const SHORT_CLIENT_MS = Number(arg('short-client-ms', 250));
const QUIET_S = Number(arg('quiet-s', 90));
const WORKERS = 48;
const NAMESPACES = ['shop', 'blog', 'api', 'admin'];
const MAX_SIZE = 64 * 1024;
const DRIFT_TTL_MS = 3 * 3600 * 1000;

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const now = () => performance.now();
const rand = (lo, hi) => lo + Math.random() * (hi - lo);
const randInt = (lo, hi) => Math.floor(rand(lo, hi + 1));
const pick = (a) => a[Math.floor(Math.random() * a.length)];

// ---------------------------------------------------------------------------------------
// Counters and checks.
const count = {};
const bump = (k, n = 1) => (count[k] = (count[k] || 0) + n);
const violations = [];
function violation(what, detail) {
  bump('violations');
  if (violations.length < 50) violations.push({ t: Math.round((now() - t0) / 1000), what, detail });
  if (violations.length <= 10) console.log(`VIOLATION ${what}: ${JSON.stringify(detail)}`);
}
let t0 = now();

// The median of blob sizes and new carts swings between 300 B and 16 KB over 16 minutes.
function medianSize() {
  const phase = ((now() - t0) / (16 * 60 * 1000)) * 2 * Math.PI;
  const lo = Math.log(300), hi = Math.log(16 * 1024);
  return Math.exp(lo + ((hi - lo) * (1 - Math.cos(phase))) / 2);
}
function gauss() {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}
function blobSize() {
  return Math.max(100, Math.min(MAX_SIZE, Math.round(medianSize() * Math.exp(1.1 * gauss()))));
}

// A session's bytes: its id, version and size in a header, then filler, so that a GET's
// answer is checked whole without keeping it.
function body(s) {
  const b = Buffer.alloc(s.size, (s.version * 7 + 13) & 0xff);
  const head = `${s.id}:${s.version}:${s.size}|`;
  b.write(head.slice(0, s.size));
  return b;
}
function sameBody(s, got) {
  if (got.length !== s.size) return false;
  return got.equals(body(s));
}

// ---------------------------------------------------------------------------------------
// The model: tracked sessions, one request at a time each.
const live = []; // sessions not busy or busy, in one array (swap-remove by s.index)
let nextId = 0;
function track(s) {
  s.index = live.length;
  live.push(s);
}
function untrack(s) {
  if (s.index < 0) return;
  const last = live.pop();
  if (last !== s) {
    live[s.index] = last;
    last.index = s.index;
  }
  s.index = -1;
}
// The window (local monotonic ms) in which sessd's ttl for the session ends: the ttl counts
// from when sessd handled the request, between its send and its answer.
function setExpiry(s, sentAt, answeredAt, ttlMs) {
  s.expLo = sentAt + ttlMs;
  s.expHi = answeredAt + ttlMs;
}
function surelyAlive(s, answeredAt) {
  return answeredAt < s.expLo;
}
function surelyGone(s, sentAt) {
  return sentAt > s.expHi;
}

function newSession() {
  const r = Math.random();
  const kind = r < 0.4 ? 'cart' : r < 0.7 ? 'blob' : 'small';
  const short = Math.random() < 0.5;
  const s = {
    ns: pick(NAMESPACES),
    id: `c${process.pid}-${(nextId++).toString(36)}-${crypto.randomBytes(6).toString('hex')}`,
    kind,
    ttlMs: short ? randInt(2000, 30000) : randInt(60000, 900000),
    size: kind === 'cart' ? 300 : kind === 'blob' ? blobSize() : randInt(100, 500),
    version: 0,
    flashes: [],
    busy: false,
    index: -1,
  };
  return s;
}
function nextSize(s) {
  if (s.kind === 'blob') return blobSize();
  if (s.kind === 'small') return randInt(100, 500);
  if (Math.random() < 0.1 || s.size >= MAX_SIZE - 100) return 300; // checkout
  return Math.min(MAX_SIZE - 100, s.size + Math.round(medianSize() * rand(0.3, 1.5)));
}

// ---------------------------------------------------------------------------------------
// Transport errors: the request may or may not have been carried out.
function transportError(err) {
  return !(err && err.sessdStatus !== undefined);
}
function failed(s, err, op) {
  if (err && err.code === 'ESESSD_NO_MEMORY') {
    bump('no_memory');
    return 'kept'; // nothing changed
  }
  if (transportError(err)) {
    bump('transport_errors');
    bump('transport_' + (err.code || 'other'));
  } else {
    bump('status_' + (err.code || 'other'));
    violation('unexpected status', { op, code: err.code, msg: err.message });
  }
  untrack(s);
  return 'dropped';
}

async function opCreate(client) {
  const s = newSession();
  s.busy = true;
  const t1 = now();
  try {
    await client.set(s.ns, s.id, body(s), s.ttlMs);
  } catch (err) {
    if (err && err.code === 'ESESSD_NO_MEMORY') bump('no_memory_create');
    else failed(s, err, 'create');
    return;
  }
  setExpiry(s, t1, now(), s.ttlMs);
  s.busy = false;
  bump('created');
  track(s);
}

async function opGet(client, s) {
  const t1 = now();
  let got;
  try {
    got = await client.get(s.ns, s.id);
  } catch (err) {
    failed(s, err, 'get');
    return;
  }
  const t2 = now();
  bump('gets');
  if (got === null) {
    if (surelyAlive(s, t2)) violation('live session not found', { id: s.id, kind: s.kind, leftMs: Math.round(s.expLo - t2) });
    if (!surelyGone(s, t1)) bump('found_gone_in_window');
    untrack(s);
    bump('seen_expired');
    return;
  }
  if (surelyGone(s, t1)) violation('expired session served', { id: s.id, lateMs: Math.round(t1 - s.expHi) });
  if (!sameBody(s, got)) violation('wrong data', { id: s.id, want: s.size, got: got.length, head: got.subarray(0, 40).toString() });
}

async function opSet(client, s) {
  const old = { size: s.size, version: s.version };
  s.size = nextSize(s);
  s.version++;
  const t1 = now();
  try {
    await client.set(s.ns, s.id, body(s), s.ttlMs);
  } catch (err) {
    if (failed(s, err, 'set') === 'kept') Object.assign(s, old);
    return;
  }
  bump('sets');
  bump('set_bytes', s.size);
  if (surelyGone(s, t1)) {
    // A SET recreates a session that had expired: its flashes went with it.
    s.flashes = [];
    bump('set_recreated');
  } else if (!surelyAlive(s, t1)) {
    // Whether its flashes were still there is not known.
    s.flashes = null;
  }
  setExpiry(s, t1, now(), s.ttlMs);
}

async function opTouch(client, s) {
  const t1 = now();
  let ok;
  try {
    ok = await client.touch(s.ns, s.id, s.ttlMs);
  } catch (err) {
    failed(s, err, 'touch');
    return;
  }
  const t2 = now();
  bump('touches');
  if (!ok) {
    if (surelyAlive(s, t2)) violation('touch found no live session', { id: s.id });
    untrack(s);
    return;
  }
  if (surelyGone(s, t1)) violation('touch found an expired session', { id: s.id, lateMs: Math.round(t1 - s.expHi) });
  setExpiry(s, t1, t2, s.ttlMs);
}

async function opTtl(client, s) {
  const t1 = now();
  let ttl;
  try {
    ttl = await client.ttl(s.ns, s.id);
  } catch (err) {
    failed(s, err, 'ttl');
    return;
  }
  const t2 = now();
  bump('ttls');
  if (ttl === null) {
    if (surelyAlive(s, t2)) violation('ttl found no live session', { id: s.id });
    untrack(s);
    return;
  }
  if (surelyGone(s, t1)) violation('ttl of an expired session', { id: s.id, ttl });
  // sessd's end is in [expLo, expHi]; it handled TTL in [t1, t2]: ttl in [expLo - t2, expHi - t1]
  // (1 ms of rounding either way).
  const lo = s.expLo - t2 - 1, hi = s.expHi - t1 + 1;
  if (ttl < lo || ttl > hi) {
    bump('ttl_out_of_window');
    const off = ttl < lo ? ttl - lo : ttl - hi;
    if (Math.abs(off) > Math.abs(count.ttl_worst_off || 0)) count.ttl_worst_off = Math.round(off);
    if (Math.abs(off) > 5) violation('ttl out of its window', { id: s.id, ttl, lo: Math.round(lo), hi: Math.round(hi) });
  }
}

async function opFlashPush(client, s) {
  const msg = 'f'.repeat(randInt(20, 2000)) + ':' + s.version + ':' + Math.random();
  const t1 = now();
  let n;
  try {
    n = await client.flashPushExisting(s.ns, s.id, 'info', msg, 1);
  } catch (err) {
    failed(s, err, 'flash_push');
    return;
  }
  const t2 = now();
  bump('flash_pushes');
  if (n === null) {
    if (surelyAlive(s, t2)) violation('flash push found no live session', { id: s.id });
    untrack(s);
    return;
  }
  if (surelyGone(s, t1)) violation('flash push to an expired session', { id: s.id });
  if (s.flashes !== null) {
    s.flashes.push(msg);
    if (n !== s.flashes.length) {
      violation('flash queue length', { id: s.id, want: s.flashes.length, got: n });
      s.flashes = null;
    }
  }
}

async function opFlashPop(client, s) {
  const t1 = now();
  let got;
  try {
    got = await client.flashPop(s.ns, s.id, 'info');
  } catch (err) {
    failed(s, err, 'flash_pop');
    return;
  }
  const t2 = now();
  bump('flash_pops');
  bump('flashes_popped', got.length);
  if (surelyGone(s, t1) && got.length > 0) violation('flashes of an expired session', { id: s.id });
  if (s.flashes !== null && surelyAlive(s, t2)) {
    if (got.length !== s.flashes.length || got.some((m, i) => m !== s.flashes[i])) {
      violation('flash pop', { id: s.id, want: s.flashes.length, got: got.length });
    }
  }
  s.flashes = surelyAlive(s, t2) || surelyGone(s, t1) ? [] : null;
}

async function opDestroy(client, s) {
  try {
    await client.destroy(s.ns, s.id);
  } catch (err) {
    failed(s, err, 'destroy');
    return;
  }
  bump('destroys');
  untrack(s);
  try {
    const got = await client.get(s.ns, s.id);
    if (got !== null) violation('destroyed session found', { id: s.id });
  } catch (err) {
    transportError(err) ? bump('transport_errors') : violation('unexpected status', { op: 'get after destroy', code: err.code });
  }
}

// One operation on a random session of the model (or a new one).
async function step(client) {
  const r = Math.random();
  if (r < 0.14 || live.length < 50) return opCreate(client);
  let s = null;
  for (let tries = 0; tries < 8 && s === null; tries++) {
    const c = pick(live);
    if (!c.busy) s = c;
  }
  if (s === null) return opCreate(client);
  s.busy = true;
  try {
    if (r < 0.5) await opGet(client, s);
    else if (r < 0.72) await opSet(client, s);
    else if (r < 0.78) await opTouch(client, s);
    else if (r < 0.83) await opTtl(client, s);
    else if (r < 0.91) await opFlashPush(client, s);
    else if (r < 0.97) await opFlashPop(client, s);
    else await opDestroy(client, s);
  } finally {
    s.busy = false;
  }
}

// ---------------------------------------------------------------------------------------
// A relay that cuts one of its connections every CUT_MS, so the pool behind it reconnects.
function startRelay(port) {
  const pairs = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    const pair = { down, up };
    pairs.add(pair);
    const end = () => {
      if (!pairs.delete(pair)) return;
      down.destroy();
      up.destroy();
    };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    down.pipe(up);
    up.pipe(down);
  });
  server.listen(0, '127.0.0.1');
  const timer = setInterval(() => {
    if (pairs.size === 0) return;
    const pair = pick([...pairs]);
    pairs.delete(pair);
    pair.down.destroy();
    pair.up.destroy();
    bump('relay_cuts');
  }, CUT_MS);
  return { server, pairs, port: () => server.address().port, close: () => { clearInterval(timer); server.close(); for (const p of pairs) { p.down.destroy(); p.up.destroy(); } } };
}

// ---------------------------------------------------------------------------------------
function procStatus(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(k + ':\\s+(\\d+)')) || [0, 0])[1]);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), fds: fs.readdirSync(`/proc/${pid}/fd`).length, threads: kb('Threads') };
  } catch {
    return { rssKb: 0, hwmKb: 0, fds: 0, threads: 0 };
  }
}
function dirStats(dir) {
  let bytes = 0, files = 0, snaps = 0, logs = 0;
  try {
    for (const f of fs.readdirSync(dir)) {
      const st = fs.statSync(path.join(dir, f));
      if (!st.isFile()) continue;
      files++;
      bytes += st.size;
      if (/^snap/.test(f)) snaps++;
      if (/^log/.test(f)) logs++;
    }
  } catch {}
  return { bytes, files, snaps, logs };
}
function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
function clientQueues(c) {
  let pending = 0, unflushed = 0, outq = 0, conns = 0;
  for (const slot of c.slots) {
    if (!slot.conn) continue;
    conns++;
    pending += slot.conn.pending.length;
    unflushed += slot.conn.unflushed.length;
    outq += slot.conn.outq.length;
  }
  return { pending, unflushed, outq, conns, waiters: c.readyWaiters.size, listeners: c.eventNames().reduce((n, e) => n + c.listenerCount(e), 0) };
}

// ---------------------------------------------------------------------------------------
async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'churn-soak-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'sessd.log');
  const secretHex = crypto.randomBytes(32).toString('hex');
  const extra = ['--max-memory', String(MAX_MEMORY), '--auth-file', path.join(dir, 'secret')];
  if (DATA_DIR) extra.push('--data-dir', dataDir, '--fsync', FSYNC);
  const daemon = new Daemon({ dir, extraArgs: extra, logFile });
  daemon.writeSecret(secretHex);
  const secret = fs.readFileSync(path.join(dir, 'secret'));
  if (DATA_DIR) fs.mkdirSync(dataDir, { mode: 0o700 });
  await daemon.start();
  // Stopped early (SIGINT, SIGTERM): the daemon goes with this process.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      if (daemon.pid) process.kill(daemon.pid, 'SIGKILL');
      process.exit(130);
    });
  }
  const tcpPort = Number(fs.readFileSync(daemon.readyFile, 'utf8').match(/tcp:\/\/127\.0\.0\.1:(\d+)/)[1]);
  console.log(`sessd pid ${daemon.pid} dir ${dir} max-memory ${MAX_MEMORY} ${DATA_DIR ? 'data-dir fsync ' + FSYNC : 'memory-only'}, ${MINUTES} min at ${RATE} ops/s`);

  const unixUrl = `unix:${daemon.sock}`;
  const tcpUrl = `tcp://127.0.0.1:${tcpPort}`;
  const relay = startRelay(tcpPort);
  await new Promise((r) => relay.server.once('listening', r));
  const mk = (url, poolSize, seal, extraOpts = {}) => new Client({ url, poolSize, auth: secret, seal, timeoutMs: 10000, ...extraOpts });
  const clients = {
    unix: mk(unixUrl, 4, false),
    sealed: mk(tcpUrl, 2, true),
    relay: mk(`tcp://127.0.0.1:${relay.port()}`, 2, false, { reconnectMinMs: 20, reconnectMaxMs: 200 }),
  };
  for (const c of Object.values(clients)) {
    c.on('error', () => {});
    await c.ready();
  }
  const probe = mk(unixUrl, 1, false);
  probe.on('error', () => {});
  await probe.ready();
  const admin = mk(unixUrl, 1, false);
  admin.on('error', () => {});
  await admin.ready();

  // The probe's session and the drift session.
  // Longer than any run: its GETs must always find it.
  await probe.set('probe', 'probe-session', Buffer.alloc(1024, 1), 24 * 3600 * 1000);
  let tD1 = now();
  await admin.set('probe', 'drift', Buffer.from('drift'), DRIFT_TTL_MS);
  let tD2 = now();

  let running = true;
  const endAt = now() + MINUTES * 60 * 1000;
  t0 = now();

  // Pacing: tokens released every 10 ms.
  let tokens = 0;
  const tokenWaiters = [];
  const pacer = setInterval(() => {
    tokens = Math.min(tokens + RATE / 100, RATE / 10);
    while (tokens >= 1 && tokenWaiters.length > 0) {
      tokens--;
      tokenWaiters.shift()();
    }
  }, 10);
  const token = () => (tokens >= 1 ? (tokens--, Promise.resolve()) : new Promise((r) => tokenWaiters.push(r)));

  const pools = [clients.unix, clients.unix, clients.sealed, clients.relay];
  const workers = [];
  for (let w = 0; w < WORKERS; w++) {
    const c = pools[w % pools.length];
    workers.push((async () => {
      while (running) {
        await token();
        if (!running) break;
        try {
          await step(c);
        } catch (err) {
          violation('step threw', { msg: String(err && err.stack) });
        }
      }
    })());
  }

  // Short-lived clients.
  const shortLoop = (async () => {
    let n = 0;
    while (running) {
      await sleep(SHORT_CLIENT_MS);
      const sealed = n++ % 2 === 0;
      const c = sealed ? mk(tcpUrl, 1, true) : mk(n % 4 === 1 ? unixUrl : tcpUrl, 1, false);
      c.on('error', () => {});
      try {
        await c.ready();
        for (let i = 0; i < 4 && running; i++) await step(c);
        bump(sealed ? 'short_clients_sealed' : 'short_clients_plain');
      } catch (err) {
        bump('short_client_errors');
      }
      c.close();
    }
  })();

  // The latency probe.
  let lat = [];
  const probeLoop = (async () => {
    while (running) {
      const t1 = now();
      try {
        const got = await probe.get('probe', 'probe-session');
        if (got === null || got.length !== 1024) violation('probe session lost', {});
      } catch (err) {
        bump('probe_errors');
      }
      lat.push(now() - t1);
      await sleep(20);
    }
  })();

  // Sampling.
  const samples = [];
  const countTrims = () => {
    try {
      return (fs.readFileSync(logFile, 'utf8').match(/gave free memory back[^\n]*/g) || []);
    } catch {
      return [];
    }
  };
  async function sample(phase) {
    const p = procStatus(daemon.pid);
    let st = {};
    try {
      st = await admin.stats();
    } catch (err) {
      bump('stats_errors');
    }
    let drift = null;
    try {
      const a = now();
      const ttl = await admin.ttl('probe', 'drift');
      const b = now();
      // ttl + time since set should be DRIFT_TTL_MS: the window's middle, and its half width.
      const lo = ttl + (a - tD2), hi = ttl + (b - tD1);
      drift = { offMs: Math.round((lo + hi) / 2 - DRIFT_TTL_MS), halfMs: Math.round((hi - lo) / 2) };
    } catch {}
    const sorted = lat.slice().sort((x, y) => x - y);
    lat = [];
    if (global.gc) global.gc();
    const mem = process.memoryUsage();
    const queues = {};
    for (const [k, c] of Object.entries(clients)) queues[k] = clientQueues(c);
    const trims = countTrims();
    const d = DATA_DIR ? dirStats(dataDir) : null;
    const s = {
      t: Math.round((now() - t0) / 1000),
      phase,
      rssMB: +(p.rssKb / 1024).toFixed(1),
      hwmMB: +(p.hwmKb / 1024).toFixed(1),
      bytesMB: +((st.bytes || 0) / 1048576).toFixed(1),
      ratio: st.bytes ? +((p.rssKb * 1024) / st.bytes).toFixed(3) : null,
      sessions: st.sessions,
      fds: p.fds,
      threads: p.threads,
      conns: st.connections,
      connsTotal: st.connections_total,
      noMem: st.no_memory_total,
      expired: st.expired_total,
      stallMaxUs: st.loop_stall_max_us,
      stalls1: st.loop_stalls_over_1ms,
      stalls10: st.loop_stalls_over_10ms,
      clientBytes: st.client_bytes,
      evictions: st.client_evictions_total,
      p50: sorted.length ? +pct(sorted, 0.5).toFixed(2) : null,
      p99: sorted.length ? +pct(sorted, 0.99).toFixed(2) : null,
      pmax: sorted.length ? +sorted[sorted.length - 1].toFixed(2) : null,
      drift,
      trims: trims.length,
      dataMB: d ? +(d.bytes / 1048576).toFixed(1) : null,
      dataFiles: d ? d.files : null,
      snaps: d ? d.snaps : null,
      logs: d ? d.logs : null,
      heapMB: +(mem.heapUsed / 1048576).toFixed(2),
      nodeRssMB: +(mem.rss / 1048576).toFixed(1),
      handles: process._getActiveHandles().length,
      queues,
      relayPairs: relay.pairs.size,
      tracked: live.length,
      medianSize: Math.round(medianSize()),
      ops: (count.gets || 0) + (count.sets || 0) + (count.created || 0) + (count.touches || 0) + (count.ttls || 0) + (count.flash_pushes || 0) + (count.flash_pops || 0) + (count.destroys || 0),
    };
    samples.push(s);
    console.log(`${String(s.t).padStart(5)}s ${phase} rss ${s.rssMB} MB bytes ${s.bytesMB} MB ratio ${s.ratio} sess ${s.sessions} fds ${s.fds} conns ${s.conns}/${s.connsTotal} nomem ${s.noMem} exp ${s.expired} stall ${s.stallMaxUs}us p50 ${s.p50} p99 ${s.p99} max ${s.pmax} drift ${drift && drift.offMs}±${drift && drift.halfMs} trims ${s.trims}` +
      (d ? ` data ${s.dataMB} MB ${s.dataFiles}f (${s.snaps}s/${s.logs}l)` : '') +
      ` | node heap ${s.heapMB} MB rss ${s.nodeRssMB} handles ${s.handles} pending ${queues.unix.pending}/${queues.sealed.pending}/${queues.relay.pending} waiters ${queues.relay.waiters} cuts ${count.relay_cuts || 0} med ${s.medianSize} ops ${s.ops} viol ${count.violations || 0}`);
    return s;
  }

  while (now() < endAt) {
    await sleep(SAMPLE_S * 1000);
    await sample('load');
  }

  // Stop the load; wait for the workers.
  running = false;
  clearInterval(pacer);
  for (const w of tokenWaiters.splice(0)) w();
  await Promise.all(workers);
  await shortLoop;
  await probeLoop;
  relay.close();
  clients.relay.close();
  console.log(`load stopped; quiet for ${QUIET_S} s`);
  running = true;
  const quietProbe = (async () => {
    while (running) {
      const t1 = now();
      try {
        await probe.get('probe', 'probe-session');
      } catch {}
      lat.push(now() - t1);
      await sleep(100);
    }
  })();
  const quietEnd = now() + QUIET_S * 1000;
  while (now() < quietEnd) {
    await sleep(SAMPLE_S * 1000);
    await sample('quiet');
  }
  running = false;
  await quietProbe;

  // The model's tracked sessions: each still live in sessd (as far as time tells).
  const summary = { args: { MINUTES, DATA_DIR, FSYNC, MAX_MEMORY, RATE, CUT_MS, SHORT_CLIENT_MS }, count, violations: [] };
  if (DATA_DIR) summary.restart = await restartAndCompare(daemon, admin, clients, probe);
  for (const c of [...Object.values(clients), probe, admin]) c.close();

  const pick3 = (k) => {
    const v = samples.filter((s) => s.phase === 'load').map((s) => s[k]).filter((x) => typeof x === 'number');
    return v.length ? { first: v[0], last: v[v.length - 1], min: Math.min(...v), max: Math.max(...v) } : null;
  };
  summary.curves = {};
  for (const k of ['rssMB', 'bytesMB', 'ratio', 'sessions', 'fds', 'conns', 'stallMaxUs', 'p50', 'p99', 'pmax', 'trims', 'dataMB', 'dataFiles', 'snaps', 'logs', 'heapMB', 'nodeRssMB', 'handles']) summary.curves[k] = pick3(k);
  const drifts = samples.map((s) => s.drift && s.drift.offMs).filter((x) => typeof x === 'number');
  summary.curves.driftMs = drifts.length ? { first: drifts[0], last: drifts[drifts.length - 1], min: Math.min(...drifts), max: Math.max(...drifts) } : null;
  // A drift reading proves a drift only when 0 lies outside its window (offMs +- halfMs).
  summary.driftOutsideWindow = samples.filter((s) => s.drift && Math.abs(s.drift.offMs) > s.drift.halfMs + 1).length;
  const quiet = samples.filter((s) => s.phase === 'quiet');
  summary.quietEnd = quiet.length ? quiet[quiet.length - 1] : null;
  summary.trimLines = countTrims();
  summary.violations = violations;
  console.log(JSON.stringify({ curves: summary.curves, driftOutsideWindow: summary.driftOutsideWindow, count, restart: summary.restart, trims: summary.trimLines.length, quietEnd: summary.quietEnd && { rssMB: summary.quietEnd.rssMB, bytesMB: summary.quietEnd.bytesMB, ratio: summary.quietEnd.ratio } }, null, 1));
  if (OUT) fs.writeFileSync(OUT, JSON.stringify({ summary, samples }, null, 1));
  await daemon.stop();
  // With --out the directory stays (sessd.log holds the trims and snapshots); else it goes.
  if (!OUT) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(count.violations ? 1 : 0);
}

// Stop sessd (SIGTERM) and start it on its directory: every session as it was, less the time
// it was down.
async function restartAndCompare(daemon, admin, clients, probe) {
  const before = new Map();
  for (const ns of NAMESPACES.concat(['probe'])) {
    for (const id of await admin.ids(ns)) {
      const t1 = now();
      const data = await admin.get(ns, id);
      const ttl = await admin.ttl(ns, id);
      const t2 = now();
      if (data === null || ttl === null) continue; // expired meanwhile, or flashes only
      before.set(ns + '/' + id, { hash: crypto.createHash('sha256').update(data).digest('hex'), endLo: t1 + ttl, endHi: t2 + ttl });
    }
  }
  const t1 = now();
  const proc = daemon.proc;
  await daemon.stop('SIGTERM');
  const exit = { code: proc.exitCode, signal: proc.signalCode, stopMs: Math.round(now() - t1) };
  if (exit.signal !== null || exit.code !== 0) violation('sessd did not stop cleanly on SIGTERM', exit);
  await daemon.start();
  const downMs = now() - t1;
  await admin.ready();
  const res = { before: before.size, after: 0, missing: 0, expiredMeanwhile: 0, extra: 0, dataDiffers: 0, ttlOff: 0, worstTtlOffMs: 0, downMs: Math.round(downMs), exit };
  const seen = new Set();
  for (const ns of NAMESPACES.concat(['probe'])) {
    for (const id of await admin.ids(ns)) {
      const key = ns + '/' + id;
      const t3 = now();
      const data = await admin.get(ns, id);
      const ttl = await admin.ttl(ns, id);
      const t4 = now();
      if (data === null) continue;
      res.after++;
      seen.add(key);
      const b = before.get(key);
      if (!b) {
        res.extra++;
        violation('session back from nowhere after the restart', { key });
        continue;
      }
      if (crypto.createHash('sha256').update(data).digest('hex') !== b.hash) {
        res.dataDiffers++;
        violation('data differs after the restart', { key });
      }
      // Its end, by this answer, in [t3 + ttl, t4 + ttl]; before: [endLo, endHi].
      const off = t3 + ttl > b.endHi + 2 ? t3 + ttl - b.endHi : t4 + ttl < b.endLo - 2 ? t4 + ttl - b.endLo : 0;
      if (off !== 0) {
        res.ttlOff++;
        if (Math.abs(off) > Math.abs(res.worstTtlOffMs)) res.worstTtlOffMs = Math.round(off);
      }
    }
  }
  for (const [key, b] of before) {
    if (seen.has(key)) continue;
    if (b.endHi < now()) res.expiredMeanwhile++;
    else {
      res.missing++;
      violation('session lost across the restart', { key, leftMs: Math.round(b.endLo - now()) });
    }
  }
  console.log('restart: ' + JSON.stringify(res));
  return res;
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
