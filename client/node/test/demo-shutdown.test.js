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
const { spawn } = require('child_process');
const { Daemon, Browser, sleep, REPO_DIR } = require('./helpers');

const DEMO_DIR = path.join(REPO_DIR, 'examples/express-demo');

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
  await sleep(100);
  proc.kill('SIGTERM');
  await sleep(800);
  process.kill(d.pid, 'SIGCONT');
  assert.equal(await add, 303, `the cart add in flight at the SIGTERM; the demo said: ${out}`);
  const t0 = Date.now();
  assert.equal(await exited, 0);
  assert.ok(Date.now() - t0 < 3000, `exited ${Date.now() - t0} ms after its last request`);
});
