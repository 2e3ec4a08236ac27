'use strict';
// A sealed pool sends a change again after a break only once it has retired the broken
// connection (RETIRE, see Client.beforeChange), and the rule that a change that breaks a
// connection made since its first break is not sent a third time (it may be what crashes
// sessd: test/crash.test.js has it for a plain pool) must hold there too. resend() made its
// record of the first break only after that wait, so the connection made during it, which the
// RETIRE and the resend went on, counted as older than the break: the change broke it and was
// sent a third time, and its restartWaitMs counted from the RETIRE's answer, not the break.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const { Client } = require('..');
const { sealedDaemon } = require('./helpers');

const SECRET = 'resend58-sealed-secret-0123456789';
// The poison change's data: its record is the only one this large (HELLO, PING and RETIRE are
// under 200 bytes).
const POISON_BYTES = 2000;

// poisonRelay(t, target): a relay on 127.0.0.1 that cuts sessd's connections' client-to-sessd
// bytes into their length-prefixed units (the HELLO frame, then sealed records) and, on a unit
// of POISON_BYTES or more, drops the connection before sessd reads it: a daemon that crashes on
// that request. relay.poisoned counts those units.
async function poisonRelay(t, target) {
  const relay = { poisoned: 0, accepted: 0 };
  const sockets = new Set();
  const server = net.createServer((down) => {
    relay.accepted++;
    const up = net.connect(target);
    sockets.add(down).add(up);
    const drop = () => {
      if (!down.destroyed) down.resetAndDestroy();
      up.destroy();
    };
    up.on('data', (chunk) => !down.destroyed && down.write(chunk));
    up.on('error', drop).on('close', drop);
    down.on('error', drop).on('close', drop);
    let unread = Buffer.alloc(0);
    down.on('data', (chunk) => {
      unread = Buffer.concat([unread, chunk]);
      while (unread.length >= 4 && unread.length >= 4 + unread.readUInt32BE(0)) {
        const n = 4 + unread.readUInt32BE(0);
        const unit = unread.subarray(0, n);
        unread = unread.subarray(n);
        if (n >= POISON_BYTES) {
          relay.poisoned++;
          drop();
          return;
        }
        up.write(unit);
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  relay.url = `tcp://127.0.0.1:${server.address().port}`;
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return relay;
}

test('sealed: a change that breaks the connection made since its first break is not sent a third time', async (t) => {
  const daemon = await sealedDaemon(SECRET);
  t.after(() => daemon.cleanup());
  const [host, port] = daemon.tcpUrl.replace('tcp://', '').split(':');
  const relay = await poisonRelay(t, { host, port: Number(port) });
  const c = new Client({ url: relay.url, poolSize: 1, auth: SECRET, reconnectMinMs: 10, reconnectMaxMs: 20 });
  t.after(() => c.terminate());
  await c.ready();
  await c.ping();

  await assert.rejects(c.set('resend58', 'poison', 'x'.repeat(POISON_BYTES), 60000), (err) => {
    assert.equal(err.code, 'ECONNRESET', err.message);
    assert.match(err.message, /third time/);
    return true;
  });
  assert.equal(relay.poisoned, 2, `the change was sent ${relay.poisoned} times: once, and again once after the first break`);
  // The pool is fine for the next request.
  assert.equal(await c.get('resend58', 'poison'), null);
});
