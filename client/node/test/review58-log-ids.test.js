'use strict';
// The helpers note every session id a test sends, and Daemon.stop() fails when sessd's log
// holds one (a full session id never reaches a log). They noted them by wrapping
// codec.encodeRequest; since stop 57 a connection writes its frames with codec.shortFrameSize
// and putShortFrame (or encodeRequestFull), and no id was noted: every daemon's log went
// unchecked. Here an id sent through a Client reaches a daemon's log on purpose (a socket path
// holding it, which sessd logs as it listens): stop() must see it.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const path = require('path');
const { Client } = require('..');
const { Daemon, waitFor } = require('./helpers');

for (const how of ['get', 'set', 'flashPush']) {
  test(`an id sent by ${how}() is looked for in sessd's log`, async (t) => {
    const daemon = await new Daemon().start();
    t.after(() => daemon.cleanup().catch(() => {}));
    const id = `r58${crypto.randomBytes(12).toString('hex')}`;
    const client = new Client({ url: daemon.unixUrl, poolSize: 1 });
    t.after(() => client.terminate());
    if (how === 'get') await client.get('r58', id);
    else if (how === 'set') await client.set('r58', id, Buffer.from('{}'), 60000);
    else await client.flashPush('r58', id, 'info', 'hi', 60000);
    // A second daemon whose log names the id (it listens on a socket whose name is the id).
    const witness = new Daemon();
    witness.extraArgs = ['--listen', `unix:${path.join(witness.dir, id)}`];
    t.after(() => witness.cleanup().catch(() => {}));
    await witness.start();
    // Its stderr may come after its ready file.
    await waitFor(() => witness.stderr.includes(id), 'the witness to log the id');
    await assert.rejects(witness.stop(), /holds a session id or secret/);
  });
}
