'use strict';
// A request that meets one outage after another is sent again within restartWaitMs of its
// first SHUTTING_DOWN or break, however many follow: a resend does not start that time again,
// so its wait is bounded (client/node/README.md, "Restarts and outages": at most about twice
// timeoutMs + restartWaitMs), where a window started again at each resend would keep it going
// for as long as the outages do. Here every connection says SHUTTING_DOWN to the request 50 ms
// after its arrival, having been ready past reconnectMaxMs (healthy: its loss is a new outage,
// with a fresh window of the pool's, see Client.lostReady), and the pool reconnects within a
// few ms.

const test = require('node:test');
const assert = require('node:assert/strict');
const { encode } = require('@msgpack/msgpack');
const { Client, codec } = require('..');
const { fakePeer } = require('./helpers');

const { OP, STATUS } = codec;

test('a request that meets SHUTTING_DOWN on every connection fails once restartWaitMs has passed since the first, after several resends', { timeout: 30000 }, async (t) => {
  const peer = { gets: 0, hellos: 0 };
  const reply = (s, id, status, result) => s.write(codec.encodeReply(id, status, Buffer.from(encode(result))));
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === OP.HELLO) {
      peer.hellos++;
      return reply(s, req.request_id, STATUS.OK, { version: 1, max_frame: 1048576, server_id: '0'.repeat(32) });
    }
    if (req.op === OP.GET) peer.gets++;
    return setTimeout(() => {
      reply(s, 0, STATUS.SHUTTING_DOWN, 'stopping');
      s.end();
    }, 50);
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, reconnectMinMs: 5, reconnectMaxMs: 10, restartWaitMs: 400 });
  t.after(() => c.terminate());
  await c.ready();
  await assert.rejects(c.get(null, 'outages'), (err) => {
    assert.equal(err.code, 'ESESSD_DISCONNECTED', err.message);
    assert.equal(err.notCarriedOut, true);
    return true;
  });
  assert.ok(peer.gets >= 3, `sent ${peer.gets} times: the resends met several outages`);
  // Each loss opened a fresh window of the pool's: the request ended by its own.
  assert.ok(peer.hellos >= 3, `${peer.hellos} connections`);
});
