'use strict';
// Long runs of the model-based check (test/model.js): seeded random Express traffic from many
// browsers against the real sessd, with faults, checked against a model of what each browser
// was promised. Hand-run; the Node suite runs one short fixed seed (test/model.test.js).
//
//   node bench/model-check.js [--seeds 1-20] [--browsers 12] [--steps 60] [--faults on|off|both]
//                             [--no-persist] [--starve] [--migrate N] [--verbose]
//                             [--fault-every 3-60] [--down 5-60] [--kinds kill,cut]
//                             [--stop 50-1200] [--early] [--rolling]
// --early: the early save's actions too (connect-sessd's presave: a push not awaited, then a
// redirect, with each kind of session change, a save() not awaited, a destroy or regenerate
// after it, several tabs at once, a first visit); --rolling: the TCP app with rolling: true.
// --migrate N: N browsers start with a session in the app's old store (migrateFrom).
// --fault-every LO-HI ms between faults, --down LO-HI ms sessd stays down after a kill,
// --stop LO-HI ms a SIGSTOP lasts (default 50-1200, below timeoutMs; past its 3000 the requests
// on the stopped daemon time out), --kinds the fault kinds in turn (kill, term, cut, stop, and
// stopterm: a SIGSTOP, a SIGTERM while stopped, the SIGCONT, then a new daemon). The dense
// stop setting: --faults on --fault-every 200-900 --down 20-600 --stop 500-4500
// --kinds term,stop,stopterm,kill,cut. The dense migrate setting (migrateFrom's move locks under
// kills every few ms): --migrate 16 --browsers 16 --steps 6 --faults on --fault-every 3-60
// --down 5-60 --kinds kill,cut.
// --starve stops sessd 30 ms of every 50 (a machine loaded many times over its cores).
// SESSD_BIN picks the daemon (an ASan build's: SESSD_BIN=../../build-asan/daemon/sessd).
// A failing seed is printed with its violations; replay it with --seeds N.

const { runModel } = require('../test/model');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
}
const [lo, hi] = arg('seeds', '1-10').split('-').map(Number);
const faultModes = { on: [true], off: [false], both: [false, true] }[arg('faults', 'both')];
const browsers = Number(arg('browsers', 12));
const steps = Number(arg('steps', 60));
const persist = !process.argv.includes('--no-persist');
const verbose = process.argv.includes('--verbose');
const starve = process.argv.includes('--starve');
const migrate = Number(arg('migrate', 0));
const early = process.argv.includes('--early');
const rolling = process.argv.includes('--rolling');
const range = (name) => (arg(name, null) === null ? undefined : arg(name).split('-').map(Number));
const dense = { faultEveryMs: range('fault-every'), downMs: range('down'), stopMs: range('stop'), faultKinds: arg('kinds', null)?.split(',') };
for (const k of Object.keys(dense)) if (dense[k] === undefined) delete dense[k];

(async () => {
  let failed = 0;
  let requests = 0;
  const t0 = Date.now();
  for (let seed = lo; seed <= (hi || lo); seed++) {
    for (const faults of faultModes) {
      const started = Date.now();
      const { violations, stats } = await runModel({ seed, browsers, steps, faults, persist, starve, migrate, early, rolling, ...dense, log: verbose ? console.log : () => {} });
      requests += stats.requests;
      const line = `seed ${seed} faults ${faults ? 'on ' : 'off'}: ${stats.requests} requests, ${stats.addsAcked} adds, ${stats.earlyAcked || 0} early saves (${stats.earlyExpiryChecks || 0} expiries checked, lag at most ${stats.earlyExpiryMaxLagMs ?? '-'} ms), ${stats.flashesShown} flashes shown, faults ${JSON.stringify(stats.faults)}, late save errors ${stats.lateErrors}, stored ${stats.storedAtEnd} (${stats.storedUnknown || 0} under ids no answer named, ${stats.flashOnlyAtEnd || 0} flashes only), ${((Date.now() - started) / 1000).toFixed(1)} s`;
      if (violations.length) {
        failed++;
        console.log(`FAIL ${line}`);
        for (const v of violations.slice(0, 20)) console.log(`  ${v}`);
        console.log(`  statuses ${JSON.stringify(stats.byStatus)}`);
        console.log(`  errors ${JSON.stringify(stats.errors.slice(0, 10))}`);
      } else {
        console.log(`ok   ${line}`);
        if (stats.earlyKinds) console.log(`  early kinds answered ${JSON.stringify(stats.earlyKinds)}, first visits ${stats.byStatus['GET /hello 303'] || 0}`);
        if (verbose) console.log(`  statuses ${JSON.stringify(stats.byStatus)} errors ${JSON.stringify(stats.errors.slice(0, 10))}`);
      }
    }
  }
  console.log(`${failed} failing runs; ${requests} requests in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  process.exit(failed ? 1 : 0);
})();
