'use strict';
// A party on the path between connect-sessd and sessd holds one sealed record (a login's SET),
// resets the client's side of the connection and keeps sessd's side open (PROTOCOL.md, "What
// sealing does not protect against"; scripts/mitm-proxy.py hold). The pool sends the SET again
// on a new connection, the user logs out (DESTROY), and the held record is let through at
// last. Before RETIRE, sessd carried it out and the logged-out session was back; now the pool
// retires the broken connection before its resend, and the session stays destroyed.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const { Client } = require('..');
const { sealedDaemon, waitFor } = require('./helpers');

let daemon;
const SECRET = 'retire-test-secret-0123456789abcd';

test.before(async () => {
  daemon = await sealedDaemon(SECRET);
});

test.after(async () => {
  await daemon.cleanup();
});

// holdingProxy(t, target): a relay on 127.0.0.1 whose client-to-sessd direction is cut into
// its length-prefixed units (the HELLO frame, then sealed records). holdNext() arms it: the
// next unit is kept, the client's side reset at once, sessd's side left open. release() sends
// the kept unit on sessd's side and resolves with what sessd did: 'reply' (bytes came back: it
// carried the request out) or 'closed' (the connection was closed, before or after).
async function holdingProxy(t, target) {
  const proxy = { armed: false, held: null, upstream: null, upClosed: false, accepted: 0 };
  const sockets = new Set();
  const server = net.createServer((down) => {
    proxy.accepted++;
    const up = net.connect(target);
    sockets.add(down);
    sockets.add(up);
    let pending = Buffer.alloc(0);
    let holding = false;
    up.on('data', (chunk) => {
      if (holding) proxy.upData = true;
      else if (!down.destroyed) down.write(chunk);
    });
    up.on('error', () => {});
    down.on('error', () => {});
    up.on('close', () => {
      if (holding) proxy.upClosed = true;
      if (!holding) down.destroy();
    });
    down.on('close', () => {
      if (!holding) up.destroy();
    });
    down.on('data', (chunk) => {
      if (holding) return;
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const n = 4 + pending.readUInt32BE(0);
        const unit = pending.subarray(0, n);
        pending = pending.subarray(n);
        if (proxy.armed) {
          proxy.armed = false;
          holding = true;
          proxy.held = Buffer.from(unit);
          proxy.upstream = up;
          // What TCP keepalives would see: sessd's side stays up; the client's is reset.
          down.resetAndDestroy();
          return;
        }
        up.write(unit);
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `tcp://127.0.0.1:${server.address().port}`;
  proxy.holdNext = () => {
    proxy.armed = true;
  };
  proxy.release = async () => {
    const up = proxy.upstream;
    if (!up.destroyed && !proxy.upClosed) up.write(proxy.held);
    await waitFor(() => proxy.upData || proxy.upClosed || up.destroyed, 'sessd to answer or close the held connection', 5000);
    return proxy.upData ? 'reply' : 'closed';
  };
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return proxy;
}

test('retire: a SET held on the path and let through after a logout does not bring the session back', async (t) => {
  const [host, port] = daemon.tcpUrl.replace('tcp://', '').split(':');
  const proxy = await holdingProxy(t, { host, port: Number(port) });
  const c = new Client({ url: proxy.url, poolSize: 1, auth: SECRET, reconnectMinMs: 20, restartWaitMs: 3000 });
  t.after(() => c.terminate());
  await c.ready();
  // The pool's first PING (a sealed connection's first record) is out and answered.
  await c.ping();
  const before = await c.stats();

  proxy.holdNext();
  // The login's save: its record is held, the connection reset; the pool sends it again.
  await c.set('retire', 'alice', "alice's login", 60000);
  assert.ok(proxy.held, 'the proxy held no record');
  assert.equal(proxy.accepted, 2, 'the resend went on a second connection');
  // The user logs out.
  assert.equal(await c.destroy('retire', 'alice'), true);

  const outcome = await proxy.release();
  assert.equal(await c.get('retire', 'alice'), null, `the held SET was carried out after the logout (sessd: ${outcome})`);
  assert.equal(outcome, 'closed', 'sessd answered a record of a retired connection');
  const after = await c.stats();
  assert.equal(after.retired_total - before.retired_total, 1, 'the broken connection was not retired once');
});
