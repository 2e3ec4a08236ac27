'use strict';
// The example shop's SIGTERM (a deploy's rolling restart, as systemd, PM2 or Kubernetes
// send it) lets the requests in flight end: one waiting on a stalled sessd (stopped here for
// 0.9 s, as a restart of it or a stall would) gets its answer, and the process exits by itself
// once it has. The demo exited 500 ms after the signal whatever was in flight: the cart add
// was cut, the browser got a connection reset for a change that might have been made.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { Daemon, Browser, sleep, waitFor, loopLag, REPO_DIR } = require('./helpers');

const DEMO_DIR = path.join(REPO_DIR, 'examples/express-demo');

// unreadBy(sock): the bytes waiting in the queues of the connections accepted on the Unix
// socket sock (ss -x, Recv-Q), unread by the process behind it.
function unreadBy(sock) {
  return execFileSync('ss', ['-xn'], { encoding: 'utf8' }).split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols[4] === sock)
    .reduce((bytes, cols) => bytes + Number(cols[2]), 0);
}

test('the demo\'s SIGTERM lets a request waiting on a stalled sessd end, then exits', { timeout: 30000 }, async (t) => {
  if (!fs.existsSync(path.join(DEMO_DIR, 'node_modules/connect-sessd'))) {
    throw new Error(`the example's dependencies are not installed: run npm ci in ${DEMO_DIR}`);
  }
  const d = new Daemon();
  await d.start();
  t.after(() => d.cleanup());
  const proc = spawn(process.execPath, ['server.js'], { cwd: DEMO_DIR, env: { ...process.env, PORT: '0', SESSD_URL: d.unixUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
  let out = '';
  proc.stderr.on('data', (x) => {
    out += x;
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
  const base = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (x) => {
      out += x;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    exited.then((code) => reject(new Error(`the demo exited (${code}): ${out}`)));
  });
  const br = new Browser(base);
  assert.equal((await br.post('/login', { username: 'Ann' })).status, 303);

  await d.pause();
  const add = br.post('/cart', { item: '2 lemons' }).then((r) => r.status, (err) => err.code || err.message);
  // In flight: the demo has the request and waits on sessd, its request to sessd unread there.
  // A fixed 100 ms was a guess that a loaded machine need not meet: a SIGTERM before the demo
  // had accepted the connection refused it, which is not what this is about.
  await waitFor(() => unreadBy(d.sock) > 0, 'the demo\'s request to the stopped sessd');
  proc.kill('SIGTERM');
  await sleep(800);
  process.kill(d.pid, 'SIGCONT');
  assert.equal(await add, 303, `the cart add in flight at the SIGTERM; the demo said: ${out}`);
  const t0 = Date.now();
  const lag = loopLag();
  assert.equal(await exited, 0);
  // Soon after: not at a keep-alive's timeout (5 s). Plus how long this process waited for a
  // CPU meanwhile (loopLag: a loaded machine's lateness; the demo's own is not known once it
  // has exited).
  const { totalMs } = lag.stop();
  assert.ok(Date.now() - t0 < 3000 + totalMs, `exited ${Date.now() - t0} ms after its last request (${totalMs} ms waiting for a CPU)`);
});
