#!/usr/bin/env node
'use strict';
// A fleet: several app processes (each its own connect-sessd store and Express app) on one
// sessd, half over its Unix socket and half over TCP, behind a load driver that sends each
// browser's requests to a random process (a load balancer without sticky sessions). The
// driver keeps a ledger of what each browser was answered and checks it against the pages:
//
// - every cart add answered 303 is in the cart, every counter increment answered 200 counted
//   exactly once (concurrent requests of one session on different processes, mergeKey);
// - every flash pushed by a request answered 303 is shown exactly once, on whichever process
//   serves a later page, and no page shows another user's name or flash;
// - a logout (destroy, or regenerate) on one process, while a slow request of the session is
//   in flight on another, leaves the old cookie logged out and nothing under the old id in
//   sessd;
// - a second app (another namespace and prefix, the same cookie secret) on the same daemon
//   sees none of the first app's sessions or flashes.
//
// Chaos (--chaos): a SIGTERM restart of sessd, a kill -9 of sessd (with --data-dir), a kill -9
// of two app processes, one on TCP and one on the Unix socket (then sessd's connection count
// must come back to what the live processes hold: the report's sessd.stats.connections
// against sessd.poolsAlive, and the driver's own 2). --max-connections N runs the daemon with
// that limit; --raise-at restarts it with a higher one, --exit-at ends some app processes.
// sessd tells app processes apart over its Unix socket, hosts and then the processes of a host
// (by the identity their HELLO states) over TCP: --transport unix puts every app process on
// the socket, tcp every one on TCP (default mixed: half on each, where the TCP ones share one
// host's part next to each process on the socket).
//
//   nice -n 10 node bench/fleet.js [--procs 6] [--browsers 24] [--seconds 20] [--chaos]
//                                  [--max-connections N [--raise-at F --raise-to N]]
//                                  [--exit-at F --exit-count N] [--sessd-args '...']
//                                  [--sessd-log FILE] [--transport unix|tcp|mixed]
//
// Exit status 1 when a check failed. SESSD_BIN as for the tests.

const { fork } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  // --sessd-args takes options of the daemon's own: its value starts with --.
  return v === undefined || (v.startsWith('--') && name !== 'sessd-args') ? true : v;
}

const APP = path.join(__dirname, '..', 'test', 'fixtures', 'fleet-app.js');

// The daemon, to end with the driver however it ends (its app processes end with their IPC
// channel).
let daemon = null;
process.on('exit', () => {
  if (daemon && daemon.pid) process.kill(daemon.pid, 'SIGKILL');
});

driver().catch((err) => {
  console.error(err);
  process.exit(2);
});

// ---------------------------------------------------------------------------------------
// The driver.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(port, method, p, cookie) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, agent, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        let json = null;
        try {
          json = JSON.parse(body);
        } catch {
          // a redirect's text
        }
        const sc = (res.headers['set-cookie'] || []).map((c) => c.split(';')[0]).find((c) => c.startsWith('connect.sid='));
        resolve({ status: res.statusCode, json, cookie: sc || null, flashLost: res.headers['x-flash-lost'] === '1' });
      });
      res.on('error', () => resolve({ status: 'reset', json: null, cookie: null }));
    });
    req.on('error', (err) => resolve({ status: err.code || 'error', json: null, cookie: null }));
    req.end();
  });
}

async function driver() {
  const { Daemon, sleep, waitFor } = require('../test/helpers');
  const { Client } = require('..');
  const PROCS = Number(arg('procs', 6));
  const OTHER = Number(arg('other-procs', 2));
  const BROWSERS = Number(arg('browsers', 24));
  const SECONDS = Number(arg('seconds', 20));
  // Every app process over the Unix socket, every one over TCP, or half and half.
  const TRANSPORT = arg('transport', 'mixed');
  if (!['unix', 'tcp', 'mixed'].includes(TRANSPORT)) throw new Error(`--transport unix|tcp|mixed, not ${TRANSPORT}`);
  const CHAOS = arg('chaos', false) === true;
  const MAXCONN = arg('max-connections', null);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-fleet-data-'));
  const extra = ['--data-dir', dataDir];
  if (MAXCONN) extra.push('--max-connections', String(MAXCONN));
  // --sessd-args '...': more options for the daemon (--max-client-memory 2M, say).
  const more = arg('sessd-args', null);
  if (typeof more === 'string') extra.push(...more.split(/\s+/).filter(Boolean));
  // --sessd-log FILE: the daemon's stderr (a sanitizer's reports too), appended per start.
  const logFile = arg('sessd-log', null);
  const d = new Daemon({ extraArgs: extra, logFile: typeof logFile === 'string' ? logFile : null });
  daemon = d;
  await d.start();
  d.tcpPort = Number(new URL(d.tcpUrl).port);
  const admin = new Client({ url: d.unixUrl, restartWaitMs: 10000 });

  const status = {};
  const count = (phase, what) => {
    status[phase] = status[phase] || {};
    status[phase][what] = (status[phase][what] || 0) + 1;
  };
  const failures = [];
  const fail = (msg) => {
    msg = `[${phase}] ${msg}`;
    if (failures.length < 50) console.error('FAIL', msg);
    failures.push(msg);
  };
  let phase = 'steady';
  const slowWaiters = new Map();
  const workers = [];
  function spawnWorker(i, ns, prefix) {
    const w = fork(APP, [], {
      env: { ...process.env, FLEET_URL: TRANSPORT === 'unix' || (TRANSPORT === 'mixed' && i % 2 === 0) ? d.unixUrl : d.tcpUrl, FLEET_NS: ns, FLEET_PREFIX: prefix },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const rec = { w, port: null, ns, i, alive: true };
    w.on('message', (m) => {
      if (m.port) rec.port = m.port;
      if (m.slowRead) {
        const r = slowWaiters.get(m.slowRead);
        if (r) r(m);
      }
      if (m.counts) rec.counts = m.counts;
    });
    // A send that crosses the process's death (killed by --chaos) is no error of the run.
    w.on('error', () => {});
    w.on('exit', () => {
      rec.alive = false;
    });
    return rec;
  }
  for (let i = 0; i < PROCS; i++) workers.push(spawnWorker(i, 'shopA', 'a:'));
  const others = [];
  // The same prefix as app A: only the namespace keeps the two apart.
  for (let i = 0; i < OTHER; i++) others.push(spawnWorker(i, 'shopB', 'a:'));
  await waitFor(() => [...workers, ...others].every((r) => r.port), 'the app processes', 30000);
  const live = () => workers.filter((r) => r.alive && r.port);
  const pickPort = () => {
    const l = live();
    return l[Math.floor(Math.random() * l.length)].port;
  };

  const totals = { requests: 0, welcomesLost: 0, logins: 0, adds: 0, incs: 0, flashesPushed: 0, flashesShown: 0, logouts: 0, crossApp: 0, pages: 0 };
  async function req(method, p, cookie, port = pickPort()) {
    totals.requests++;
    const r = await request(port, method, p, cookie);
    count(phase, `${method} ${p.split('?')[0]} ${r.status}`);
    if (!(r.status >= 200 && r.status < 400)) {
      const w = [...workers, ...others].find((x) => x.port === port);
      count(phase, `by worker ${w ? w.ns + '#' + w.i : port}: ${r.status}`);
    }
    return r;
  }

  // The ids logged out (answered 200): none may come back, through restarts and crashes of
  // sessd after the logout included (checked at the end).
  const loggedOut = [];
  let stopping = false;
  async function browser(b) {
    for (let k = 0; !stopping; k++) {
      const u = `user${b}`;
      const tag = `${b}-${k}`;
      const expected = new Map(); // flash text -> times it must show (0 or 1)
      const shown = new Map();
      const maybe = new Set(); // pushed by a request answered other than 303: at most once
      let pageFailed = false;
      const showPage = (r) => {
        if (r.status !== 200 || !r.json) {
          pageFailed = true;
          return;
        }
        totals.pages++;
        if (r.json.user !== null && r.json.user !== u) fail(`${u} saw the page of ${r.json.user}`);
        for (const msgs of Object.values(r.json.flash || {})) {
          for (const m of msgs) {
            totals.flashesShown++;
            if (!m.startsWith(`${tag}:`) && !m.startsWith(`slow-${tag}`)) fail(`${u} (${tag}) was shown another's flash ${m}`);
            shown.set(m, (shown.get(m) || 0) + 1);
          }
        }
      };
      // 1. Log in on one process, show the welcome on another.
      const welcome = `${tag}:welcome`;
      let r = await req('POST', `/login?u=${u}&f=${encodeURIComponent(welcome)}`, null);
      if (r.status !== 303 || !r.cookie) {
        await sleep(50);
        continue;
      }
      totals.logins++;
      // The login stands when its welcome cannot be stored (in flight in a crash of sessd):
      // the app says so in a header, and the message may then show once or not at all.
      if (r.flashLost) {
        totals.welcomesLost++;
        maybe.add(welcome);
      } else {
        totals.flashesPushed++;
        expected.set(welcome, 1);
      }
      const cookie = r.cookie;
      // The cookie on the other app while the welcome is queued: no session, and its page
      // pops nothing of ours (the welcome must still show below, once).
      if (others.length) {
        totals.crossApp++;
        const o = others[k % others.length];
        const x = await req('GET', '/page', cookie, o.port);
        if (x.status === 200 && (x.json.user !== null || Object.keys(x.json.flash).length)) fail(`app B saw app A's session: ${JSON.stringify(x.json)}`);
      }
      showPage(await req('GET', '/page', cookie));
      // 2. A burst: adds and increments at once, on random processes, with two pages among them.
      const added = [];
      let incs = 0;
      const burst = [];
      for (let j = 0; j < 6; j++) {
        if (j % 3 === 2) {
          burst.push(req('POST', '/inc', cookie).then((x) => {
            if (x.status === 200) incs++;
          }));
        } else {
          const item = `${tag}:item${j}`;
          const f = `${tag}:added${j}`;
          burst.push(req('POST', `/add?item=${encodeURIComponent(item)}&f=${encodeURIComponent(f)}`, cookie).then((x) => {
            if (x.status === 303) {
              added.push(item);
              expected.set(f, 1);
              totals.flashesPushed++;
            } else maybe.add(f);
          }));
        }
      }
      burst.push(req('GET', '/page', cookie).then(showPage));
      burst.push(req('GET', '/page', cookie).then(showPage));
      await Promise.all(burst);
      totals.adds += added.length;
      totals.incs += incs;
      r = await req('GET', '/page', cookie);
      showPage(r);
      if (r.status === 200) {
        if (r.json.user !== u) fail(`${u} logged out after the burst: ${JSON.stringify(r.json)}`);
        for (const it of added) if (!r.json.cart.includes(it)) fail(`${u}: add ${it} answered 303 is not in the cart`);
        if (r.json.views < incs) fail(`${u}: ${incs} increments answered 200, counter ${r.json.views}`);
        if (r.json.views > 2) fail(`${u}: counter ${r.json.views} counts more than the 2 increments sent`);
        if (new Set(r.json.cart).size !== r.json.cart.length) fail(`${u}: duplicate in cart ${r.json.cart}`);
      }
      // One more page: flashes pushed by the burst's adds and not yet shown show now.
      showPage(await req('GET', '/page', cookie));
      // 3. A slow request on one process, a logout on another while it is in flight.
      const token = `${tag}`;
      const read = new Promise((resolve) => slowWaiters.set(token, resolve));
      const slowPort = pickPort();
      const slow = req('POST', `/slow?token=${token}`, cookie, slowPort);
      const readOrDone = await Promise.race([read, slow.then(() => null)]);
      slowWaiters.delete(token);
      const how = k % 2 ? 'regenerate' : 'destroy';
      let outPort = pickPort();
      for (let t = 0; t < 5 && outPort === slowPort && live().length > 1; t++) outPort = pickPort();
      const out = await req('POST', `/logout?how=${how}`, cookie, outPort);
      const holder = workers.find((x) => x.port === slowPort);
      if (holder && holder.alive && holder.w.connected) holder.w.send({ release: token }, () => {});
      const sr = await slow;
      if (sr.status === 200) maybe.add(`slow-${tag}`);
      if (out.status === 200) {
        totals.logouts++;
        const after = await req('GET', '/page', cookie);
        showPage(after);
        if (after.status === 200 && after.json.user !== null) fail(`${u}: logged in again after the logout (${how}, slow request ${readOrDone ? 'read first' : 'done first'})`);
        if (after.status === 200 && after.json.cart.length) fail(`${u}: cart back after logout`);
        const sid = decodeURIComponent(cookie.split('=')[1]).slice(2).split('.')[0];
        let left;
        try {
          left = await admin.load('shopA', 'a:' + sid);
        } catch (err) {
          left = { error: err.code };
        }
        loggedOut.push(sid);
        if (left !== null && !left.error) fail(`${u}: the old id holds ${JSON.stringify({ data: String(left.data).slice(0, 80), flashes: left.flashes })} after logout (${how})`);
      }
      // Ledger of this session's flashes.
      for (const [f, n] of shown) {
        if (n > 1) fail(`${u}: flash ${f} shown ${n} times`);
        if (!expected.has(f) && !maybe.has(f)) fail(`${u}: flash ${f} shown though never pushed`);
      }
      // A flash is shown on a page of this session or not at all once the session ended:
      // a logout drops unread flashes (the old id's), so only those shown count as lost if
      // the session had two full pages after the burst to show them.
      for (const [f] of expected) {
        if (!shown.has(f) && out.status === 200 && !pageFailed) fail(`${u}: flash ${f} (answered 303) never shown before the logout`);
      }
    }
  }

  const runs = [];
  const t0 = Date.now();
  for (let b = 0; b < BROWSERS; b++) runs.push(browser(b));
  const chaosLog = [];
  if (CHAOS) {
    const at = (s) => sleep(Math.max(0, t0 + s * 1000 - Date.now()));
    await at(SECONDS * 0.2);
    phase = 'sigterm';
    chaosLog.push('SIGTERM restart');
    await d.stop('SIGTERM');
    await sleep(300);
    await d.start();
    await at(SECONDS * 0.4);
    phase = 'steady2';
    await at(SECONDS * 0.5);
    phase = 'kill9';
    chaosLog.push('kill -9 of sessd, back 1 s later');
    await d.stop('SIGKILL');
    await sleep(1000);
    await d.start();
    await at(SECONDS * 0.7);
    phase = 'worker-kill';
    // One on TCP, one on the Unix socket: sessd must let go of both their connections.
    const victims = [workers[1], workers[2]];
    for (const victim of victims) {
      chaosLog.push(`kill -9 of app process ${victim.w.pid} (${victim.i % 2 ? 'TCP' : 'Unix socket'})`);
      victim.w.kill('SIGKILL');
    }
    await waitFor(() => victims.every((v) => !v.alive), 'the victims to exit');
    await at(SECONDS * 0.8);
    phase = 'steady3';
  }
  const RAISE_AT = arg('raise-at', null);
  if (RAISE_AT !== null && MAXCONN) {
    // The limit raised: sessd restarted (SIGTERM) with --max-connections --raise-to.
    await sleep(Math.max(0, t0 + SECONDS * 1000 * Number(RAISE_AT) - Date.now()));
    phase = 'after-raise';
    const to = String(arg('raise-to', 1000));
    chaosLog.push(`SIGTERM restart with --max-connections ${to}`);
    d.extraArgs = d.extraArgs.map((a, i) => (d.extraArgs[i - 1] === '--max-connections' ? to : a));
    await d.stop('SIGTERM');
    await d.start();
  }
  const EXIT_AT = arg('exit-at', null);
  if (EXIT_AT !== null) {
    // Processes that exit (a scale-down): the slots their pools held at --max-connections go
    // to the pools still waiting for one.
    await sleep(Math.max(0, t0 + SECONDS * 1000 * Number(EXIT_AT) - Date.now()));
    phase = 'after-exit';
    const n = Number(arg('exit-count', 2));
    for (const r of workers.slice(0, n)) {
      chaosLog.push(`SIGTERM of app process ${r.w.pid}`);
      r.w.kill('SIGTERM');
    }
    await waitFor(() => workers.slice(0, n).every((r) => !r.alive), 'the exits');
  }
  await sleep(Math.max(0, t0 + SECONDS * 1000 - Date.now()));
  stopping = true;
  await Promise.all(runs);
  // What sessd holds for its connections now, against what the live processes' pools hold.
  for (const r of [...workers, ...others].filter((x) => x.alive)) r.w.send('counts', () => {});
  await sleep(300);
  let stats = null;
  try {
    stats = await admin.stats();
  } catch (err) {
    stats = { error: err.message };
  }
  // What sessd still holds of app A: the sessions of the browsers' last round only, each with
  // a user (a logged-out or flash-only record left behind would be a leak).
  const leftover = { withUser: 0, withoutUser: 0, flashOnly: 0, samples: [] };
  for (let cursor = 0; ;) {
    const page = await admin.list('shopA', cursor, 1000);
    for (const e of page.entries) {
      const id = e.id;
      const l = await admin.load('shopA', id);
      if (!l) continue;
      if (l.data === null || l.data === undefined || l.data.length === 0) leftover.flashOnly++;
      else if (/"user":"/.test(String(l.data))) leftover.withUser++;
      else {
        leftover.withoutUser++;
        if (leftover.samples.length < 3) leftover.samples.push({ data: String(l.data).slice(0, 200), flashes: l.flashes });
      }
    }
    cursor = page.cursor;
    if (cursor === 0) break;
  }
  let resurrected = 0;
  for (const sid of loggedOut) {
    if ((await admin.load('shopA', 'a:' + sid)) !== null) resurrected++;
  }
  if (resurrected) fail(`${resurrected} of ${loggedOut.length} logged-out ids are back at the end`);
  totals.loggedOutCheckedAtEnd = loggedOut.length;
  const rss = (() => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${d.pid}/status`, 'utf8'))[1]);
    } catch {
      return null;
    }
  })();
  const report = {
    procs: PROCS,
    otherProcs: OTHER,
    browsers: BROWSERS,
    seconds: SECONDS,
    transport: TRANSPORT,
    chaos: chaosLog,
    totals,
    failures: failures.length,
    status,
    workers: [...workers, ...others].map((r) => ({ pid: r.w.pid, ns: r.ns, alive: r.alive, counts: r.counts })),
    sessd: { rssKb: rss, stats, leftover, poolsAlive: [...workers, ...others].filter((x) => x.alive).length * 2 },
  };
  console.log(JSON.stringify(report, null, 1));
  await admin.close();
  for (const r of [...workers, ...others]) if (r.alive) r.w.kill('SIGTERM');
  await d.cleanup();
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.exit(failures.length ? 1 : 0);
}
