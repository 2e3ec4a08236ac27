'use strict';
// What sessd sees of an app's mass restart: PROCS app processes (each a connect-sessd Client,
// poolSize 2, on sessd's Unix socket or over TCP) writing their own sessions as fast as they
// are answered, all killed -9 at once (a deploy gone wrong, the OOM killer, a host's reboot of
// the service) and all started again at once, ROUNDS times. Checked each round:
// - the new processes are all served: each connects and has WRITES writes answered within
//   15 s, none refused (a flood of reconnecting pools after the mass restart);
// - every write a killed process had answered is in sessd (read back by the checker);
// - sessd's `connections` (STATS) comes back, after the kill, to what the live pools hold
//   (the killed processes' connections closed by the kernel, none left counted), and after
//   the start to that plus 2 a process; its RSS is printed each round (a leak per killed
//   connection would grow it; every 4th write is 200 KB, so kills land within frames too);
// - sessd's `sessions` counts what was written (a write cut by the kill may or may not
//   count); no full session id in sessd's log, no report from an ASan+UBSan sessd.
// With --max-connections N sessd runs at that limit (the new processes then share slots).
//
//   nice node bench/mass-restart.js [--procs 16] [--rounds 10] [--writes 50] [--transport unix|tcp|mixed]
//                                   [--max-connections N]
//
// Exit status 1 when a check failed. SESSD_BIN as for the tests.

const { fork } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

if (process.env.MASS_CHILD) {
  // A child: connect, then write its sessions (ids from MASS_CHILD) until killed, telling the
  // parent each write answered OK before the next.
  const { Client } = require('..');
  const client = new Client({ url: process.env.MASS_URL, poolSize: 2, reconnectMinMs: 20, reconnectMaxMs: 500 });
  client.on('error', () => {});
  const id = process.env.MASS_CHILD;
  (async () => {
    const t0 = Date.now();
    await client.ready({ timeoutMs: 15000 });
    process.send({ ready: Date.now() - t0 });
    for (let n = 0; ; n++) {
      const sid = `${id}-${n % 20}-0123456789abcdef`;
      // Two at once, on both connections of the pool.
      // Every 4th write large (200 KB), so that kills land in the middle of a frame too.
      const pad = n % 4 === 3 ? ',"pad":"' + 'x'.repeat(200000) + '"' : '';
      await Promise.all([client.set('mass', sid, Buffer.from(`{"n":${n}${pad}}`), 600000), client.get('mass', sid)]);
      process.send({ acked: sid, n });
    }
  })().catch((err) => {
    process.send({ error: `${err.code} ${err.message}` });
    setTimeout(() => process.exit(2), 100);
  });
  return;
}

const { Client } = require('..');
const { Daemon, sleep, waitFor } = require('../test/helpers');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
}
const PROCS = Number(arg('procs', 16));
const ROUNDS = Number(arg('rounds', 10));
const WRITES = Number(arg('writes', 50));
const TRANSPORT = arg('transport', 'mixed');
const MAXCONN = arg('max-connections', null);

(async () => {
  const problems = [];
  const problem = (m) => {
    problems.push(m);
    console.log(`PROBLEM ${m}`);
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-mass-'));
  const d = new Daemon({ dir, logFile: path.join(dir, 'sessd.log'), extraArgs: MAXCONN ? ['--max-connections', MAXCONN] : [] });
  await d.start();
  const checker = new Client({ url: d.unixUrl, poolSize: 1 });
  checker.on('error', () => {});
  await checker.ready({ timeoutMs: 5000 });
  const acked = new Map(); // sid -> last n answered
  const stats = async () => checker.stats(null);
  const t0 = Date.now();
  let procs = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const started = Date.now();
    procs = Array.from({ length: PROCS }, (_, i) => {
      const url = TRANSPORT === 'unix' || (TRANSPORT === 'mixed' && i % 2 === 0) ? d.unixUrl : d.tcpUrl;
      const p = fork(__filename, [], { env: { ...process.env, MASS_CHILD: `p${i}`, MASS_URL: url }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const st = { p, ready: null, writes: 0, error: null, exited: new Promise((r) => p.once('exit', r)) };
      p.on('message', (m) => {
        if (m.ready !== undefined) st.ready = m.ready;
        if (m.acked) {
          st.writes++;
          acked.set(m.acked, m.n);
        }
        if (m.error) st.error = m.error;
      });
      return st;
    });
    try {
      await waitFor(() => procs.every((s) => s.writes >= WRITES || s.error), `every process ${WRITES} writes answered`, 15000);
    } catch {
      // counted below
    }
    const slow = procs.filter((s) => s.writes < WRITES);
    if (slow.length) problem(`round ${round}: ${slow.length} of ${PROCS} processes not served in 15 s: ${slow.map((s) => `${s.writes} writes, ready ${s.ready}, ${s.error || ''}`).slice(0, 5).join('; ')}`);
    const up = await stats();
    const readyMs = procs.map((s) => s.ready ?? Infinity);
    // Kill them all at once, mid-write.
    for (const s of procs) s.p.kill('SIGKILL');
    await Promise.all(procs.map((s) => s.exited));
    let after = null;
    try {
      await waitFor(async () => {
        after = await stats();
        return after.connections === 1;
      }, 'sessd connections back to the checker\'s 1', 3000);
    } catch {
      problem(`round ${round}: 3 s after every process was killed sessd counts ${after && after.connections} connections (the checker holds 1)`);
    }
    const rss = (fs.readFileSync(`/proc/${d.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/) || [])[1];
    console.log(`round ${round}: sessd RSS ${rss} kB, ${PROCS} processes ready in max ${Math.max(...readyMs)} ms, ${procs.reduce((n, s) => n + s.writes, 0)} writes; sessd connections up ${up.connections}, after the kill ${after && after.connections}, refused_total ${up.connections_refused_total}, displaced_total ${up.connections_displaced_total}; ${Date.now() - started} ms`);
  }
  // Every answered write is in sessd, at least as new as answered.
  let missing = 0;
  for (const [sid, n] of acked) {
    const v = await checker.get('mass', sid);
    if (!v || JSON.parse(v).n < n) missing++;
  }
  if (missing) problem(`${missing} of ${acked.size} answered writes missing or older in sessd`);
  const end = await stats();
  // A write in flight at a kill may have been made without its answer reaching us.
  if (end.sessions < acked.size || end.sessions > PROCS * 20) problem(`sessd counts ${end.sessions} sessions; ${acked.size} were written (answered), at most ${PROCS * 20} sent`);
  checker.close();
  await d.stop();
  const logged = fs.readFileSync(path.join(dir, 'sessd.log'), 'utf8');
  // An ASan+UBSan build's reports (SESSD_BIN=../../build-asan/daemon/sessd): a leak per
  // killed connection shows at its exit.
  const said = logged + d.stderr;
  const sanitizer = /ERROR: \w+Sanitizer|runtime error:/.exec(said);
  if (sanitizer) problem(`sessd's sanitizers: ${said.slice(sanitizer.index, sanitizer.index + 2000)}`);
  for (const sid of acked.keys()) {
    if (logged.includes(sid)) {
      problem(`sessd's log holds the full id ${sid.slice(0, 6)}...`);
      break;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`${ROUNDS} rounds of ${PROCS} processes killed and restarted at once; ${acked.size} sessions; ${problems.length} problems; ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(problems.length ? 1 : 0);
})();
