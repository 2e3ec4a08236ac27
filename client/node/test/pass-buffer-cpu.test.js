'use strict';
// A connection encodes each pass's frames into one buffer and keeps it for the next pass
// (Connection.reserve). It may reuse it only once the socket has taken every byte: while a
// write waits in the socket's queue (sessd stopped, its socket buffers full), that write still
// reads the buffer, and a later pass must not overwrite it. Here sessd is stopped, many passes
// of saves fill the path, and once it resumes every session must hold its own bytes.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('..');
const { Daemon } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  await daemon.cleanup();
});

// Passes go on until 16 have been made with a write queued (at most MAX_PASSES: 64 MiB).
const MAX_PASSES = 4096;
const PER_PASS = 16;

// dataOf(pass, i): a save's bytes, 1 KiB, different for every session (a pass's 16 frames
// are 17 KiB: the buffer they grow is one that is kept).
function dataOf(pass, i) {
  return Buffer.alloc(1024, `${pass}.${i};`);
}

for (const transport of ['unix', 'tcp']) {
  test(`pass buffer: saves written while sessd is stopped reach it as they were made (${transport})`, { timeout: 60000 }, async (t) => {
    const url = transport === 'unix' ? daemon.unixUrl : daemon.tcpUrl;
    const ns = `passbuf-${transport}`;
    const client = new Client({ url, poolSize: 1, timeoutMs: 0 });
    t.after(() => client.terminate());
    await client.ready();
    await daemon.pause();
    const saves = [];
    let queued = 0;
    let passes = 0;
    try {
      for (; passes < MAX_PASSES && queued < 16; passes++) {
        for (let i = 0; i < PER_PASS; i++) {
          const save = client.set(ns, `s${passes}-${i}`, dataOf(passes, i), 600000);
          save.catch(() => {}); // awaited below
          saves.push(save);
        }
        // The pass's end: its frames leave in one write.
        await new Promise((resolve) => setImmediate(resolve));
        if (client.slots[0].conn.socket.writableLength > 0) queued++;
      }
    } finally {
      daemon.proc.kill('SIGCONT');
    }
    // The test means nothing unless some pass's write had to wait in the socket's queue.
    assert.ok(queued > 0, 'no write was left queued: the socket buffers took all');
    await Promise.all(saves);
    for (let pass = 0; pass < passes; pass++) {
      for (let i = 0; i < PER_PASS; i++) {
        const got = await client.get(ns, `s${pass}-${i}`);
        assert.ok(got && got.equals(dataOf(pass, i)), `session s${pass}-${i} holds other bytes`);
      }
    }
  });
}

// Behind a queued write, a pass's frames go as a copy of their own size, not as the pass's
// buffer: a slow or stopped sessd must not make each pass of one small request hold 16 KiB
// until the requests are answered (2,000 such passes: 32 MiB).
test('pass buffer: small passes queued behind a stopped sessd hold their own bytes, not a pass buffer each (unix)', { timeout: 60000 }, async (t) => {
  const ns = 'passbuf-small';
  const client = new Client({ url: daemon.unixUrl, poolSize: 1, timeoutMs: 0 });
  t.after(() => client.terminate());
  await client.ready();
  await daemon.pause();
  const requests = [];
  const keep = (p) => {
    p.catch(() => {}); // awaited below
    requests.push(p);
  };
  let before = null;
  try {
    // Fill the path: saves until a write waits in the socket's queue.
    for (let pass = 0; pass < MAX_PASSES && client.slots[0].conn.socket.writableLength === 0; pass++) {
      for (let i = 0; i < PER_PASS; i++) keep(client.set(ns, `fill${pass}-${i}`, dataOf(pass, i), 600000));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(client.slots[0].conn.socket.writableLength > 0, 'no write was left queued');
    before = process.memoryUsage().arrayBuffers;
    for (let pass = 0; pass < 2000; pass++) {
      keep(client.get(ns, `small-${pass}`));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 4 * 1024 * 1024, `2,000 queued passes of one GET hold ${(grown / 1048576).toFixed(1)} MiB of buffers`);
  } finally {
    daemon.proc.kill('SIGCONT');
  }
  await Promise.all(requests);
});
