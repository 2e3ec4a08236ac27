'use strict';
// A connection's frames leave at the end of the event loop's pass (connection.js reserve,
// flush). A connection that breaks in the pass (sessd crashed, the path dropped) after a
// request was made, before the pass's end, never sent that request: it was not carried out,
// and the pool may send it again as it sends a request a SHUTTING_DOWN left (FLASH_PUSH and
// FLASH_POP included). It failed as one broken under it ("may or may not have been carried
// out"): a flash pushed in that pass was lost, a page 503.
//
// Here a relay in front of sessd drops the connection, the kernel has its end ready for the
// client to read, and in the same pass (a timer's callback, before the poll phase that reads
// the end) the app makes its requests.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { Client } = require('..');
const { Daemon, sealedDaemon, waitFor } = require('./helpers');

const SECRET = 'review58-unsent-secret-0123456789abcdef';

// A relay in front of sockPath whose connections drop() ends: on a Unix socket, closed (the
// client reads their end); on loopback TCP, reset (the client's read fails ECONNRESET).
async function droppingRelay(t, sockPath, transport) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r58-drop-'));
  const pairs = new Set();
  const server = net.createServer((down) => {
    const up = net.connect(sockPath);
    const pair = { down, up };
    pairs.add(pair);
    down.pipe(up);
    up.pipe(down);
    const end = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on('close', end);
      s.on('error', () => {});
    }
  });
  const p = path.join(dir, 'relay.sock');
  if (transport === 'tcp') await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  else await new Promise((resolve) => server.listen(p, resolve));
  t.after(() => {
    for (const { down, up } of pairs) {
      down.destroy();
      up.destroy();
    }
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: transport === 'tcp' ? `tcp://127.0.0.1:${server.address().port}` : `unix:${p}`,
    pairs,
    drop() {
      for (const { down, up } of pairs) {
        if (transport === 'tcp') down.resetAndDestroy();
        else down.destroy();
        up.destroy();
      }
    },
  };
}

// Blocks the thread for ms (the end of the dropped connection reaches the client's socket).
function blockFor(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

for (const [sealed, transport] of [[false, 'unix'], [true, 'unix'], [false, 'tcp'], [true, 'tcp']]) {
  test(`requests made in the pass a connection breaks, before its end, are sent again (${sealed ? 'sealed' : 'plain'}, ${transport})`, { timeout: 60000 }, async (t) => {
    const daemon = sealed ? await sealedDaemon(SECRET) : await new Daemon().start();
    t.after(() => daemon.cleanup());
    const relay = await droppingRelay(t, daemon.sock, transport);
    const client = new Client({ url: relay.url, poolSize: 1, restartWaitMs: 20000, ...(sealed ? { auth: SECRET } : {}) });
    t.after(() => client.terminate());
    await client.ready();
    await client.flashPush('unsent', 'popme', 'info', 'before', 600000);
    const conn = client.slots[0].conn;
    const made = await new Promise((resolve) => {
      setTimeout(() => {
        relay.drop();
        blockFor(200);
        resolve({
          push: client.flashPush('unsent', 'pushed', 'info', 'made in the break\'s pass', 600000),
          pop: client.flashPop('unsent', 'popme', 'info'),
          set: client.set('unsent', 'saved', Buffer.from('{"a":1}'), 600000),
        });
      }, 5);
    });
    const [push, pop, set] = await Promise.allSettled([made.push, made.pop, made.set]);
    assert.notEqual(client.slots[0].conn, conn, 'the connection did not break: the test proves nothing');
    assert.equal(set.status, 'fulfilled', `the save: ${set.reason}`);
    assert.equal(push.status, 'fulfilled', `a push never sent failed: ${push.reason}`);
    assert.equal(push.value, 1);
    assert.equal(pop.status, 'fulfilled', `a pop never sent failed: ${pop.reason}`);
    assert.deepEqual(pop.value, ['before']);
    assert.deepEqual(await client.flashPop('unsent', 'pushed', 'info'), ['made in the break\'s pass']);
    assert.deepEqual(await client.flashPop('unsent', 'popme', 'info'), []);
  });
}
