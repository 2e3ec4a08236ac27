'use strict';
// Which pool connection a request goes to (Client.passConnection). Node writes a connection's
// frames of one pass in one writev and reads its replies in one read: a pass's requests spread
// over the pool by a hash of the session id took a write and a read per connection (3.1
// writev per pass of 32 requests with the default two, where node-redis's one connection made
// 1: bench/README.md, stop 49b). Now they go together, and a session's requests still keep to
// the connection that has its earlier ones pending, so that they are answered in order.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('..');
const { OP } = require('../lib/codec');
const { Daemon, waitFor } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  await daemon.cleanup();
});

// readyPool(t): a client of two connections, both ready.
async function readyPool(t) {
  const client = new Client({ url: daemon.unixUrl, poolSize: 2 });
  t.after(() => client.close());
  await waitFor(() => client.slots.every((s) => s.conn && s.conn.state === 'ready'), 'both pool connections ready');
  return client;
}

const pendings = (client) => client.slots.map((s) => s.conn.pendingCount);
const passEnd = () => new Promise((resolve) => setImmediate(resolve));

test("a pass's requests of many sessions leave on one connection", async (t) => {
  const client = await readyPool(t);
  const ids = Array.from({ length: 32 }, (_, i) => `pass-${i}`.padEnd(32, 'x'));
  await Promise.all(ids.map((id) => client.set('pc', id, Buffer.from(id), 60000)));
  const gets = ids.map((id) => client.get('pc', id));
  // Hashed, about half went to each connection (32 and 0 by chance: 2 in 2^31).
  assert.deepEqual(pendings(client).sort((a, b) => a - b), [0, 32]);
  const got = await Promise.all(gets);
  got.forEach((data, i) => assert.equal(Buffer.from(data).toString(), ids[i]));
});

test("a session's requests keep to the connection that has its earlier ones pending", async (t) => {
  const client = await readyPool(t);
  await daemon.pause();
  let resumed = false;
  t.after(() => resumed || process.kill(daemon.pid, 'SIGCONT'));
  // The session's first save on the pool's second connection (the pool would have chosen its
  // first), as passConnection sends a session's requests while the first was transferring.
  const first = client.slots[1].conn.request(OP.SET, ['pc', 'order-s', Buffer.from('first'), 60000], 'order-s');
  await passEnd();
  // Another session goes to the pool's first connection, which then takes the pass's
  // requests; but not the session whose save is pending on the second.
  const other = client.get('pc', 'order-t');
  const second = client.set('pc', 'order-s', Buffer.from('second'), 60000);
  assert.deepEqual(pendings(client), [1, 2], "the session's second save on its first's connection");
  process.kill(daemon.pid, 'SIGCONT');
  resumed = true;
  await Promise.all([first, other, second]);
  assert.equal(Buffer.from(await client.get('pc', 'order-s')).toString(), 'second');
});

test("a large save does not take the pass's other requests behind it", async (t) => {
  const client = await readyPool(t);
  const big = client.set('pc', 'big-s', Buffer.alloc(100 * 1024, 0x61), 60000);
  const gets = [1, 2, 3, 4].map((i) => client.get('pc', `small-${i}`));
  assert.deepEqual(pendings(client).sort((a, b) => a - b), [1, 4]);
  await Promise.all([big, ...gets]);
});
