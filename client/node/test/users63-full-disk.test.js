'use strict';
// users-63's acceptance review: a shop's cart add on a disk that has just filled up.
// sessd(8) and README.md ("Durability"): the write whose log write fails is not acknowledged
// (its connection closes) and stays in memory, readable, logged first once space returns.
// connect-sessd sends such a request again after the break, and the resend is refused with
// IO_ERROR, "nothing changed". The page then tells the user the add was not done, and the
// next page shows the item in the cart: a "nothing changed" must mean nothing changed.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { Client } = require('..');
const { Daemon } = require('./helpers');

test('users63: an IO_ERROR that says "nothing changed" leaves the session as it was (a full disk\'s first refused write)', async (t) => {
  const d = new Daemon({ fileSizeLimit: 128 * 1024 });
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  await d.start();
  t.after(() => d.cleanup());
  const client = new Client({ url: d.unixUrl, poolSize: 1 });
  t.after(() => client.terminate());
  const item = Buffer.alloc(16 * 1024, 7);
  let failed = null;
  for (let i = 0; i < 64 && failed === null; i++) {
    try {
      await client.set('cart', `s${i}`, item, 60000);
    } catch (err) {
      failed = { i, err };
    }
  }
  assert.ok(failed, 'the file-size limit never refused a write');
  const { i, err } = failed;
  const now = await client.get('cart', `s${i}`);
  if (/nothing changed/.test(err.message)) {
    assert.ok(now === null, `set s${i} failed with "${err.code}: ${err.message}", yet the session holds its data`);
  } else {
    assert.match(err.message, /may|unknown|not known/, `a refused write whose session holds the data says so: ${err.message}`);
  }
});
