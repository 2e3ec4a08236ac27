'use strict';
// review58-unsent covers a connection whose end the client reads in the pass before its
// flush (its requests made in a timer's callback). An app makes its requests in a poll-phase
// callback (an HTTP request's handler): a sessd that dies after that poll phase began leaves
// its end unread until the next one, and the pass's flush writes the requests into a socket
// whose peer is gone. Over a Unix socket that write fails whole (EPIPE): none of it reached
// sessd, so a flash pushed or popped in that pass was not carried out and may go again.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const { Client } = require('..');
const { Daemon, sealedDaemon } = require('./helpers');

const SECRET = 'review59-unsent-poll-secret-0123456789ab';

// Blocks the thread for ms: the daemon's exit reaches the client's socket meanwhile.
function blockFor(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

for (const sealed of [false, true]) {
  test(`requests made in a poll-phase callback as sessd dies, written into its closed Unix socket, are sent again (${sealed ? 'sealed' : 'plain'})`, { timeout: 60000 }, async (t) => {
    const daemon = sealed ? await sealedDaemon(SECRET) : await new Daemon().start();
    t.after(() => daemon.cleanup());
    const client = new Client({ url: daemon.unixUrl, poolSize: 1, restartWaitMs: 20000, ...(sealed ? { auth: SECRET } : {}) });
    t.after(() => client.terminate());
    await client.ready();
    await client.flashPush('unsent', 'popme', 'info', 'before', 600000);
    const conn = client.slots[0].conn;
    const exited = new Promise((resolve) => daemon.proc.once('exit', resolve));
    const settled = new Promise((resolve) => {
      // fs.stat's callback runs in the poll phase, as an HTTP handler does.
      fs.stat(__filename, () => {
        process.kill(daemon.proc.pid, 'SIGKILL');
        blockFor(200);
        resolve(Promise.allSettled([
          client.flashPush('unsent', 'pushed', 'info', 'made as sessd died', 600000),
          client.flashPop('unsent', 'popme', 'info'),
          client.set('unsent', 'saved', Buffer.from('{"a":1}'), 600000),
        ]));
      });
    });
    await exited;
    // Not persistent: the flash pushed before is gone with the daemon; the pop must find none.
    await daemon.start();
    const [push, pop, set] = await settled;
    assert.notEqual(client.slots[0].conn, conn, 'the connection did not break: the test proves nothing');
    assert.equal(set.status, 'fulfilled', `the save: ${set.reason}`);
    assert.equal(push.status, 'fulfilled', `a push never sent failed: ${push.reason}`);
    assert.equal(push.value, 1);
    assert.equal(pop.status, 'fulfilled', `a pop never sent failed: ${pop.reason}`);
    assert.deepEqual(pop.value, []);
    assert.deepEqual(await client.flashPop('unsent', 'pushed', 'info'), ['made as sessd died']);
  });
}
