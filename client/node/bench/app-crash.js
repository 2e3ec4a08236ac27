'use strict';
// The model-based check (test/model.js) with the app as a deployment runs it: N worker
// processes (test/fixtures/model-worker.js, each its own connect-sessd pool; even ones on
// sessd's Unix socket, odd ones over TCP through the fault proxy) on one sessd, browsers
// spread over the live ones as a balancer does, and the app's own crashes and restarts on top
// of sessd's faults (kill -9, SIGTERM, SIGSTOP, connections cut):
//   kill     a worker killed -9 with requests in flight (OOM killer, a crash); restarted
//   term     a graceful restart: no new requests, SIGTERM, server.close(), store.close()
//   stop     SIGSTOP for 3.5-6 s; its browsers give up, then it resumes and goes on
//   mass     every worker killed -9 at once and restarted together (their pools reconnect
//            at once)
//   rolling  every worker restarted by 'term', one after another
// The oracle is the model's (an acknowledged cart add stays, a flash shown at most once, no
// logout undone, no browser sees another's data, no 500, no 503 that no fault of sessd's
// explains (the app's own crashes and restarts excuse none), no hang), with what README
// promises for a request that never got its answer: it may or may not have applied. At the
// end: every stored record one the model explains and the app can read, sessd's connection
// count back to the live pools (STATS), no full session id in sessd's log or the workers'
// stderr. Hand-run (about 10-20 s a seed):
//
//   nice node bench/app-crash.js [--seeds 1-10] [--workers 3] [--browsers 10] [--steps 40]
//                                [--worker-faults kill,term,stop,mass,rolling] [--no-daemon-faults]
//                                [--wstop-ms 3500-6000] [--cluster [--sched-none]] [--express-session DIR,-]
//                                [--early]
//
// --early: the early save's actions too (model-check.js's --early).
//
// --cluster: the workers are node:cluster workers of this process (the primary) sharing one
// port, as `cluster.fork()` apps run: the browsers cannot pick a worker (the kernel and the
// primary do), a killed worker is forked again, a graceful restart closes its server (the
// primary hands its connections to the others), a stopped one keeps the requests it was given
// until it resumes. Express 4: node --require ./test/express4-preload.js bench/app-crash.js
// (the workers inherit it).
//
// A failing seed is printed with its violations; replay it with --seeds N and the same options.

const { runModel } = require('../test/model');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
}
const [lo, hi] = arg('seeds', '1-10').split('-').map(Number);
const workers = Number(arg('workers', 3));
const browsers = Number(arg('browsers', 10));
const steps = Number(arg('steps', 40));
const kinds = arg('worker-faults', null);
const daemonFaults = !process.argv.includes('--no-daemon-faults');
const wstopMs = arg('wstop-ms', '3500-6000').split('-').map(Number);
const clustered = process.argv.includes('--cluster');
const early = process.argv.includes('--early');
// --sched-none: cluster.SCHED_NONE (the workers accept on the shared socket) instead of Node's
// round-robin primary, which loses a connection now and then at a graceful restart (the
// model counts those, 'lost by the cluster primary'; with --sched-none they fail the run).
const clusterSched = process.argv.includes('--sched-none') ? 'none' : 'rr';
// --express-session DIR,DIR: worker i loads express-session from the (i mod n)th directory
// ('-' for client/node's own): a fleet part-way through an upgrade. Such a directory:
// npm install --prefix /tmp/es1173 express-session@1.17.3, then /tmp/es1173/node_modules/express-session.
const expressSession = arg('express-session', null)?.split(',').map((d) => (d === '-' ? null : require('path').resolve(d)));

(async () => {
  let failed = 0;
  let requests = 0;
  const t0 = Date.now();
  for (let seed = lo; seed <= (hi || lo); seed++) {
    const started = Date.now();
    let result;
    try {
      result = await runModel({
        seed, browsers, steps, faults: true, workers,
        workerFaultKinds: kinds ? kinds.split(',') : null,
        wstopMs,
        daemonFaults,
        cluster: clustered,
        clusterSched,
        workerExpressSession: expressSession,
        early,
      });
    } catch (err) {
      // The run could not go on (sessd would not start again, a worker would not start): its
      // daemon and workers are left to this process's exit.
      console.log(`FAIL seed ${seed}: the run threw: ${err.stack}`);
      process.exit(1);
    }
    const { violations, stats } = result;
    requests += stats.requests;
    const line = `seed ${seed}: ${stats.requests} requests, ${stats.addsAcked} adds, ${stats.flashesShown} flashes shown, sessd faults ${JSON.stringify(stats.faults)}, worker faults ${JSON.stringify(stats.workerFaults)}, cut by them ${stats.cutByWorkerFault}, late save errors ${stats.lateErrors}, stored ${stats.storedAtEnd} (${stats.storedUnknown || 0} unknown, ${stats.flashOnlyAtEnd || 0} flashes only), sessd connections ${stats.sessdStats && stats.sessdStats.connections}${stats.byWorker ? `, answers by worker ${JSON.stringify(stats.byWorker)}` : ''}${stats.lostByClusterPrimary ? `, lost by the cluster primary ${stats.lostByClusterPrimary}` : ''}${expressSession ? `, express-session ${stats.expressSession.join('/')}` : ''}, ${((Date.now() - started) / 1000).toFixed(1)} s`;
    if (violations.length) {
      failed++;
      console.log(`FAIL ${line}`);
      for (const v of violations.slice(0, 20)) console.log(`  ${v.slice(0, 3000)}`);
      console.log(`  statuses ${JSON.stringify(stats.byStatus)}`);
      console.log(`  errors ${JSON.stringify(stats.errors.slice(0, 10))}`);
      if (stats.flashOnly) console.log(`  flashes only: ${stats.flashOnly.join("; ")}`);
      if (stats.workerLog) console.log(`  worker stderr: ${stats.workerLog.slice(0, 1500)}`);
    } else {
      console.log(`ok   ${line}`);
      if (stats.flashOnly) console.log(`  flashes only: ${stats.flashOnly.join("; ")}`);
      if (stats.unknownRecords) console.log(`  under ids no answer named: ${stats.unknownRecords.join('; ')}`);
    }
  }
  console.log(`${failed} failing runs; ${requests} requests in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(failed ? 1 : 0);
})();
