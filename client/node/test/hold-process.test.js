'use strict';
// A request that a lost connection left unanswered holds its process up until it settles: a
// script (a migration, a cron job) that awaits it while sessd restarts must get its answer or
// ESESSD_DISCONNECTED, not exit with the request pending and its work half done. The
// reconnecting window's timer is what holds it (client.js, startRestartWait). Each case runs
// in a child process, the only place an early exit shows.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const { Daemon, waitFor, NODE_DIR } = require('./helpers');

// The child: connects, says "ready", and on a line from its stdin sends a GET and closes its
// stdin (which would hold it up otherwise). It prints the GET's outcome, then ends the client.
const CHILD = `
const { Client } = require(process.argv[1]);
const client = new Client({ url: process.argv[2], poolSize: 1, restartWaitMs: Number(process.argv[3]) });
client.ping().then(() => {
  process.stdout.write('ready\\n');
  process.stdin.once('data', () => {
    process.stdin.destroy();
    client.get('hold', 'k').then(
      (v) => process.stdout.write('answered ' + JSON.stringify(v && v.toString()) + '\\n'),
      (err) => process.stdout.write('rejected ' + err.code + '\\n'),
    ).finally(() => client.terminate());
    process.stdout.write('sent\\n');
  });
});
`;

function startChild(url, restartWaitMs) {
  const proc = spawn(process.execPath, ['-e', CHILD, NODE_DIR, url, String(restartWaitMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const child = { proc, out: '', err: '', exit: null };
  proc.stdout.on('data', (d) => { child.out += d; });
  proc.stderr.on('data', (d) => { child.err += d; });
  child.exited = new Promise((resolve) => proc.once('exit', (code, sig) => {
    child.exit = { code, sig };
    resolve();
  }));
  return child;
}

// A GET in flight on a stopped sessd, whose connection is then lost (sessd killed).
async function lostWithRequestInFlight(t, restartWaitMs) {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  const child = startChild(daemon.unixUrl, restartWaitMs);
  t.after(() => child.proc.kill('SIGKILL'));
  await waitFor(() => child.out.includes('ready\n') || (child.exit && assert.fail(`child exited: ${child.err}`)), 'the child to connect');
  await daemon.pause();
  child.proc.stdin.write('go\n');
  await waitFor(() => child.out.includes('sent\n') || null, 'the child to send');
  await daemon.stop('SIGKILL');
  return { daemon, child };
}

test('a request the loss of sessd left unanswered holds its process until sessd is back', async (t) => {
  const { daemon, child } = await lostWithRequestInFlight(t, 60000);
  // Well inside the window: the child must still be there, waiting.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(child.exit, null, `the child exited with its request pending: ${child.out}${child.err}`);
  await daemon.start();
  await child.exited;
  assert.deepEqual(child.exit, { code: 0, sig: null }, child.err);
  assert.match(child.out, /^ready\nsent\nanswered null\n$/);
});

test('a request the loss of sessd left unanswered holds its process until its window ends', async (t) => {
  const { child } = await lostWithRequestInFlight(t, 1000);
  await child.exited;
  assert.deepEqual(child.exit, { code: 0, sig: null }, child.err);
  assert.match(child.out, /^ready\nsent\nrejected ESESSD_DISCONNECTED\n$/);
});
