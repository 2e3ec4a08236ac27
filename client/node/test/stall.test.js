'use strict';
// A daemon that stalls past timeoutMs (SIGSTOP here; a paused VM, a swap storm in production):
// the pool gives up on the requests it sent and closes their connection. A FLASH_POP among
// them must not run when the daemon wakes: its reply would reach no one, and its messages
// would be lost (a fleet review: 8 flashes confirmed to users lost after a 12 s stall).

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('..');
const { Daemon, waitFor, settledThisTurn } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  await daemon.cleanup();
});

// queuedThroughStall(t, ns, ready, giveUp): a flash is queued for ns's visitor; ready() (may be
// null) runs, then sessd stops and giveUp(what ready gave) must leave, sessd resumed, the
// flash queued still.
async function queuedThroughStall(t, ns, ready, giveUp) {
  const checker = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => checker.terminate());
  await checker.ready();
  await checker.flashPush(ns, 'visitor', 'info', 'Payment received', 600000);
  const made = ready ? await ready() : null;
  await daemon.pause();
  try {
    await giveUp(made);
  } finally {
    daemon.proc.kill('SIGCONT');
  }
  // Once the daemon has freed the connection that gave up, it has handled what it sent.
  await waitFor(async () => (await checker.stats()).connections === 1, 'the departed connections freed');
  assert.deepEqual(await checker.flashPop(ns, 'visitor', 'info'), ['Payment received']);
}

for (const transport of ['unix', 'tcp']) {
  test(`stall: a flash pop that timed out on a stopped daemon leaves its messages queued (${transport})`, (t) => {
    const url = transport === 'unix' ? daemon.unixUrl : daemon.tcpUrl;
    const ns = `stall-${transport}`;
    return queuedThroughStall(t, ns, async () => {
      const c = new Client({ url, poolSize: 1, timeoutMs: 300 });
      await c.ready();
      return c;
    }, async (c) => {
      await assert.rejects(c.flashPop(ns, 'visitor', 'info'), (err) => err.code === 'ETIMEDOUT');
      // No reconnection behind the daemon's back: only the checker's connection stays.
      c.terminate();
    });
  });
}

// The README's timeoutMs: a request fails with ETIMEDOUT on a fresh connection too, whose
// HELLO a stuck daemon never answers (connectTimeoutMs longer here): the deadline checked is
// the request's, past the HELLO, which has none, and the error is the request's own.
test('stall: a request behind a HELLO a stopped daemon never answers fails with its own ETIMEDOUT', (t) => {
  const ns = 'stall-hello-own';
  return queuedThroughStall(t, ns, null, async () => {
    const c = new Client({ url: daemon.unixUrl, poolSize: 1, timeoutMs: 300, connectTimeoutMs: 60000 });
    t.after(() => c.terminate());
    await assert.rejects(c.flashPop(ns, 'visitor', 'info'), (err) => err.code === 'ETIMEDOUT' && /FLASH_POP request timed out/.test(err.message));
    c.terminate();
  });
});

// A pool that starts while sessd is stopped sends its first requests behind the HELLO, on
// the connection that is still connecting. With the default timeouts (connectTimeoutMs equal
// to timeoutMs) the HELLO's deadline comes first: it gave the connection up with a close
// (a FIN), which a stalled daemon that wakes cannot tell from a client that stopped sending,
// and it ran the FLASH_POP behind the HELLO, whose messages then reached no one.
test('stall: a flash pop queued behind a HELLO that timed out leaves its messages queued (tcp)', (t) => {
  const ns = 'stall-hello';
  return queuedThroughStall(t, ns, null, async () => {
    const c = new Client({ url: daemon.tcpUrl, poolSize: 1, timeoutMs: 300, connectTimeoutMs: 300 });
    c.on('disconnect', () => {});
    await assert.rejects(c.flashPop(ns, 'visitor', 'info'), (err) => err.statusCode === 503);
    c.terminate();
  });
});

// An app that shuts down at once (client.terminate(), say on its own SIGTERM) while sessd is
// stuck gives up the requests in flight, as a timeout does: they fail, and a FLASH_POP among
// them must not run when sessd wakes. terminate() closed with a FIN, and it ran.
test('stall: a flash pop in flight when the client is terminated leaves its messages queued (tcp)', (t) => {
  const ns = 'stall-terminate';
  return queuedThroughStall(t, ns, async () => {
    const c = new Client({ url: daemon.tcpUrl, poolSize: 1 });
    await c.ready();
    return c;
  }, async (c) => {
    const pop = c.flashPop(ns, 'visitor', 'info');
    // Flushed once the event loop has turned: then the pop is in sessd's socket.
    await new Promise((resolve) => setImmediate(resolve));
    c.terminate();
    await assert.rejects(pop, (err) => err.code === 'ESESSD_CLOSED');
  });
});

// A readiness probe that calls client.ready() after the app closed its store (shutting down
// while sessd is down): a closed client no longer reconnects, so the wait must end with
// ESESSD_CLOSED, as the README says, not hang for ever as it did without a timeout.
test('stall: ready() on a closed client rejects at once, with or without a timeout', async () => {
  const c = new Client({ url: 'unix:/nonexistent/sessd.sock', poolSize: 1, reconnectMaxMs: 100 });
  c.close();
  // "At once": before the event loop's next turn (settledThisTurn), which a loaded machine
  // does not change, where "within 2000 ms" was a guess at how busy it is.
  const waits = [c.ready(), c.ready({ timeoutMs: 60000 })];
  assert.ok(await settledThisTurn(waits), 'ready() on a closed client waited');
  for (const wait of waits) await assert.rejects(wait, (err) => err.code === 'ESESSD_CLOSED');
});
