'use strict';
// The states a stuck, stopped or restarted sessd can leave a client's requests in, each made
// with the real daemon (SIGSTOP, SIGCONT, SIGTERM, SIGKILL of its process) or the fault proxy,
// and checked to settle: every request answers, or fails with a clear error (a 503 whose code
// says why), never waits on with nothing left to wake it. The bound is the test's own timeout
// (README: a store call waits about timeoutMs + restartWaitMs in one outage); no durations are
// asserted. A model-check run (modelrt-54, seed 3 of dense SIGTERMs and stops) once hung seven
// cart adds past its 15 s bound with 16-18 requests pending on a ready connection; these are
// the states that could do that.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { Client } = require('..');
const { Daemon, waitFor, sleep, restartablePort } = require('./helpers');
const { faultProxy, tcpTarget } = require('./faultproxy');

const TIMEOUT_MS = 400;
const OPTS = { poolSize: 2, timeoutMs: TIMEOUT_MS, connectTimeoutMs: TIMEOUT_MS, restartWaitMs: 1500, reconnectMinMs: 10, reconnectMaxMs: 100 };
// The errors a request may fail with in these states: a timeout (sessd stuck), a connection
// closed or broken under it, sessd down past restartWaitMs or stopping, each a 503.
const CLEAR_CODES = new Set(['ETIMEDOUT', 'ESESSD_CLOSED', 'ESESSD_DISCONNECTED', 'ECONNRESET', 'EPIPE', 'ESESSD_SHUTTING_DOWN']);

// mix(c, tag): one request of each kind a page makes, on sessions of their own: a promise of
// their outcomes (Promise.allSettled's, taken at once: a rejection is handled when it comes).
function mix(c, tag) {
  const id = `s-${tag}`;
  return Promise.allSettled([
    c.get('stuck', id),
    c.load('stuck', id),
    c.set('stuck', id, `{"v":"${tag}"}`, 60000),
    c.touch('stuck', id, 60000),
    c.flashPush('stuck', id, 'info', tag, 60000),
    c.flashPop('stuck', `p-${tag}`, 'info'),
    c.destroy('stuck', `d-${tag}`),
    c.ping(),
  ]);
}

// settled(outcomes, what): the outcomes (mix's), once all have come; fails the test on an
// error that does not say what happened (no 503, or a code not among CLEAR_CODES).
async function settled(outcomes, what) {
  const out = await outcomes;
  for (const r of out) {
    if (r.status === 'fulfilled') continue;
    const err = r.reason;
    assert.ok(CLEAR_CODES.has(err.code) && err.statusCode === 503, `${what}: a request failed with ${err.code} (${err.statusCode}): ${err.message}`);
  }
  return out;
}

// works(c): the client serves again (the daemon back, the pool reconnected).
async function works(c, tag) {
  await waitFor(async () => {
    try {
      await c.set('stuck', `after-${tag}`, 'x', 60000);
      return (await c.get('stuck', `after-${tag}`)).toString() === 'x';
    } catch {
      return false;
    }
  }, `the client serving again after ${tag}`, 20000, 50);
}

async function started(t, opts = {}) {
  const d = await new Daemon(opts).start();
  t.after(() => d.cleanup());
  return d;
}

function client(t, url, opts = {}) {
  const c = new Client({ url, ...OPTS, ...opts });
  c.on('disconnect', () => {});
  t.after(() => c.terminate());
  return c;
}

for (const transport of ['unix', 'tcp']) {
  test(`a stop past timeoutMs: requests in flight, made meanwhile and queued behind HELLOs a stopped daemon holds in its backlog all settle (${transport})`, { timeout: 60000 }, async (t) => {
    const d = await started(t);
    const c = client(t, transport === 'unix' ? d.unixUrl : d.tcpUrl);
    await c.ready();
    await d.pause();
    const inFlight = mix(c, `${transport}-1`);
    // Past timeoutMs: the connections are given up, the pool reconnects into the stopped
    // daemon's listen backlog (connect succeeds, HELLO unanswered), requests made now wait.
    await settled(inFlight, 'in flight at the stop');
    const meanwhile = mix(c, `${transport}-2`);
    await settled(meanwhile, 'made while stopped');
    const late = mix(c, `${transport}-3`);
    process.kill(d.pid, 'SIGCONT');
    await settled(late, 'made just before the SIGCONT');
    await works(c, `${transport} stop`);
  });

  test(`SIGTERM while stopped, then SIGCONT, then a new daemon: requests in flight are answered or fail clearly (${transport})`, { timeout: 60000 }, async (t) => {
    const d = await started(t, { extraArgs: [], tcpPort: await restartablePort() });
    const c = client(t, transport === 'unix' ? d.unixUrl : d.tcpUrl, { timeoutMs: 5000, restartWaitMs: 5000 });
    await c.ready();
    await d.pause();
    const inFlight = mix(c, `${transport}-t`);
    const exited = d.stop('SIGTERM');
    await sleep(20);
    process.kill(d.proc.pid, 'SIGCONT');
    await exited;
    await d.start();
    await settled(inFlight, 'in flight at the stop and the SIGTERM');
    await works(c, `${transport} stop+term`);
  });

  test(`SIGKILL while stopped, then a new daemon: requests in flight are answered or fail clearly (${transport})`, { timeout: 60000 }, async (t) => {
    const d = await started(t, { tcpPort: await restartablePort() });
    const c = client(t, transport === 'unix' ? d.unixUrl : d.tcpUrl, { timeoutMs: 5000, restartWaitMs: 5000 });
    await c.ready();
    await d.pause();
    const inFlight = mix(c, `${transport}-k`);
    await d.stop('SIGKILL');
    await d.start();
    await settled(inFlight, 'in flight at the stop and the kill');
    await works(c, `${transport} stop+kill`);
  });
}

test('a stop that ends around timeoutMs: a reconnection racing the timeout leaves nothing pending', { timeout: 90000 }, async (t) => {
  const d = await started(t);
  const c = client(t, d.unixUrl);
  await c.ready();
  for (const ms of [TIMEOUT_MS - 60, TIMEOUT_MS - 10, TIMEOUT_MS, TIMEOUT_MS + 10, TIMEOUT_MS + 60, 2 * TIMEOUT_MS]) {
    await d.pause();
    const reqs = mix(c, `race-${ms}`);
    await sleep(ms);
    const more = mix(c, `race-${ms}-b`);
    process.kill(d.pid, 'SIGCONT');
    await settled(reqs, `a stop of ${ms} ms`);
    await settled(more, `a stop of ${ms} ms, made late`);
    await works(c, `a stop of ${ms} ms`);
    for (const slot of c.slots) if (slot.conn && slot.conn.state === 'ready') assert.equal(slot.conn.pendingCount, 0, 'nothing left pending on a ready connection');
  }
});

test('half a frame reaches sessd, the rest is swallowed (a path that dies mid-frame): the requests settle, the pool recovers', { timeout: 60000 }, async (t) => {
  const d = await started(t);
  const proxy = await faultProxy(t, tcpTarget(d.tcpUrl));
  const c = client(t, proxy.url);
  await c.ready();
  // 7 bytes: past the frame's header, short of its body.
  proxy.set('up', { blackholeAfter: 7 });
  const reqs = mix(c, 'half');
  await settled(reqs, 'behind half a frame');
  proxy.heal();
  proxy.closeAll();
  await works(c, 'half a frame');
  // The same, the path then cut (a reset) mid-frame.
  proxy.set('up', { cutAfter: 7 });
  await settled(mix(c, 'cut'), 'cut mid-frame');
  proxy.heal();
  await works(c, 'a cut mid-frame');
});

test('a daemon stopped after reading half a frame (SIGSTOP between its two halves): the requests settle', { timeout: 60000 }, async (t) => {
  const d = await started(t);
  const proxy = await faultProxy(t, tcpTarget(d.tcpUrl));
  const c = client(t, proxy.url);
  await c.ready();
  proxy.set('up', { stall: true });
  const reqs = mix(c, 'halfstop');
  // The frames wait in the proxy; 7 bytes of them go on, then sessd stops, then the rest.
  proxy.set('up', { blackholeAfter: 7 });
  await sleep(20);
  await d.pause();
  proxy.heal();
  await settled(reqs, 'half a frame read, then stopped');
  process.kill(d.pid, 'SIGCONT');
  proxy.closeAll();
  await works(c, 'half a frame, stopped');
});

test('the Unix socket path taken by a new daemon while the old one is stopped: requests settle, and the pool moves to the new one', { timeout: 60000 }, async (t) => {
  const old = await started(t);
  const c = client(t, old.unixUrl);
  await c.ready();
  await c.set('stuck', 'moved', 'old', 60000);
  await old.pause();
  const reqs = mix(c, 'path');
  // The operator gives up on the stuck daemon: its socket path goes to a new one.
  fs.rmSync(old.sock);
  const fresh = new Daemon({ dir: fs.mkdtempSync(path.join(old.dir, 'new-')) });
  t.after(() => fresh.cleanup());
  fresh.sock = old.sock;
  await fresh.start();
  await settled(reqs, 'on the stopped daemon whose path moved');
  await works(c, 'the path moved');
  assert.equal(await c.get('stuck', 'moved'), null, 'the new daemon serves (it has not the old one\'s session)');
  process.kill(old.pid, 'SIGCONT');
});
