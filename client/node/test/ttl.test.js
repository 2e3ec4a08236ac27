'use strict';
// Client.ttl(ns, id): TTL (0x15, PROTOCOL.md "Sessions") against the real daemon, and against
// a fake older one that answers it UNKNOWN_OP.

const test = require('node:test');
const assert = require('node:assert/strict');
const { encode } = require('@msgpack/msgpack');
const { Client, SessdError, codec } = require('..');
const { Daemon, fakePeer } = require('./helpers');

const { OP, STATUS } = codec;

let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

test('ttl: the remaining lifetime of live, touched and flash-only sessions; null when gone', async (t) => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 2 });
  t.after(() => c.close());
  assert.equal(codec.OP.TTL, 0x15);
  assert.equal(await c.ttl(null, 'ttl-none'), null);

  await c.set(null, 'ttl-a', 'x', 60000);
  const ms = await c.ttl(null, 'ttl-a');
  assert.equal(typeof ms, 'number');
  assert.ok(ms > 55000 && ms <= 60000, `${ms} ms left of 60000`);
  // Asking moves nothing.
  const again = await c.ttl(null, 'ttl-a');
  assert.ok(again <= ms, `${again} after ${ms}`);
  assert.equal(await c.ttl('ttl-other', 'ttl-a'), null, 'another namespace, another session');

  assert.equal(await c.touch(null, 'ttl-a', 3600000), true);
  const touched = await c.ttl(null, 'ttl-a');
  assert.ok(touched > 3595000 && touched <= 3600000, `touched: ${touched}`);

  // A session of flashes only has no data, but lives and has a ttl.
  await c.flashPush(null, 'ttl-f', 'info', 'hi', 30000);
  assert.equal(await c.get(null, 'ttl-f'), null);
  const flashOnly = await c.ttl(null, 'ttl-f');
  assert.ok(flashOnly > 25000 && flashOnly <= 30000, `flashes only: ${flashOnly}`);

  assert.equal(await c.destroy(null, 'ttl-a'), true);
  assert.equal(await c.ttl(null, 'ttl-a'), null);
  // A Buffer id names the same session as its string.
  assert.ok((await c.ttl(null, Buffer.from('ttl-f'))) > 0);
  await assert.rejects(c.ttl(null, ''), RangeError);
});

test('ttl: expired sessions are gone', async (t) => {
  const c = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => c.close());
  await c.set(null, 'ttl-short', 'x', 50);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(await c.ttl(null, 'ttl-short'), null);
});

test('ttl: an older daemon answers UNKNOWN_OP and keeps the connection; 0 is malformed', async (t) => {
  let ttls = 0;
  const { sockPath } = await fakePeer(t, (s, req) => {
    const reply = (status, result) => s.write(codec.encodeReply(req.request_id, status, Buffer.from(encode(result))));
    if (req.op === OP.HELLO) reply(STATUS.OK, { version: 1, server_id: '0123456789abcdef0123456789abcdef', max_frame: 1048576 });
    else if (req.op === OP.TTL && ttls++ === 0) reply(STATUS.UNKNOWN_OP, 'unknown opcode');
    else if (req.op === OP.TTL) reply(STATUS.OK, 0);
    else if (req.op === OP.PING) reply(STATUS.OK, null);
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1 });
  t.after(() => c.terminate());
  await assert.rejects(c.ttl(null, 'x'), (err) => err instanceof SessdError && err.sessdStatus === STATUS.UNKNOWN_OP);
  await c.ping();
  await assert.rejects(c.ttl(null, 'x'), codec.ProtocolError);
});
