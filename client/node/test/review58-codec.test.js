'use strict';
// The request encoder against an encoder that is not ours (@msgpack/msgpack writes the
// shortest forms too), byte for byte, for every opcode the client sends, with each argument at
// MessagePack's length and integer edges; then the same edges sent to the daemon through a
// pass's buffer, several frames a pass, and request ids across their wrap at 2^32.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Encoder } = require('@msgpack/msgpack');
const codec = require('../lib/codec');
const { Client } = require('..');
const { Daemon } = require('./helpers');

const { OP } = codec;
const independent = new Encoder();

// frameOf(op, id, args): the frame an independent encoder makes of [op, id, ...args].
function frameOf(op, id, args) {
  const body = Buffer.from(independent.encode([op, id, ...args]));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

// The argument edges: str and bin lengths at each form's end, integers at each uint's.
const strs = (max) => [1, 31, 32, 255, 256, 65535, 65536].filter((n) => n <= max).flatMap((n) => ['x'.repeat(n), 'é'.repeat(Math.max(1, n >> 1))]);
const bins = [0, 1, 31, 32, 255, 256, 65535, 65536, 70000].map((n) => Buffer.alloc(n, 0x5a));
const uints = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, codec.MAX_TTL_MS, Number.MAX_SAFE_INTEGER];
const ids = [1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xfffffffe, 0xffffffff];
const tag = Buffer.alloc(16, 0xab);

test('every request the client sends is what an independent MessagePack encoder makes of it', () => {
  const shapes = [
    [OP.PING, () => [[]]],
    [OP.HELLO, () => strs(64).filter((s) => Buffer.byteLength(s) <= 64).map((s) => [1, s, null])],
    [OP.RETIRE, () => [[Buffer.alloc(32, 1)]]],
    [OP.GET, () => [...strs(128).map((s) => ['ns', s]), ...strs(64).map((s) => [s, 'sid']), [null, Buffer.alloc(128, 2)]]],
    [OP.LOAD, () => strs(128).map((s) => [null, s])],
    [OP.TTL, () => strs(128).map((s) => ['n', s])],
    [OP.DESTROY, () => strs(128).map((s) => ['n', s])],
    [OP.SET, () => [...bins.map((b) => ['ns', 'sid', b, 60000]), ...uints.map((u) => ['ns', 'sid', bins[2], u])]],
    [OP.SET_IF, () => bins.map((b) => ['ns', 'sid', b, 60000, tag])],
    [OP.TOUCH, () => uints.map((u) => ['ns', 'sid', u])],
    [OP.TOUCH_IF, () => uints.map((u) => ['ns', 'sid', u, tag])],
    [OP.FLASH_PUSH, () => [...strs(1 << 17).map((m) => ['ns', 'sid', 'info', m, 1000]), ...bins.map((b) => ['ns', 'sid', 't'.repeat(64), b, 1000])]],
    [OP.FLASH_PUSH_EXISTING, () => strs(64).map((t) => ['ns', 'sid', t, 'm', 0x10000])],
    [OP.FLASH_POP, () => [['ns', 'sid', null], ...strs(64).map((t) => ['ns', 'sid', t])]],
    [OP.DESTROY_IF_FLASH, () => strs(1 << 17).map((m) => ['ns', 'sid', 'info', m])],
    [OP.COUNT, () => [['ns'], [null]]],
    [OP.LIST, () => uints.map((u) => ['ns', u, u])],
    [OP.CLEAR, () => [['ns']]],
    [OP.STATS, () => [[null], ['ns']]],
    [OP.NAMESPACES, () => uints.map((u) => [u, 1000])],
  ];
  let compared = 0;
  for (const [op, argLists] of shapes) {
    for (const args of argLists()) {
      for (const id of ids) {
        const want = frameOf(op, id, args);
        const what = `op 0x${op.toString(16)} id ${id} args ${args.map((a) => (a === null ? 'nil' : typeof a === 'number' ? a : `${a.constructor.name}(${a.length})`)).join(', ')}`;
        assert.ok(codec.encodeRequest(op, id, args).equals(want), `encodeRequest: ${what}`);
        assert.ok(codec.encodeRequestFull(op, id, args).equals(want), `encodeRequestFull: ${what}`);
        const size = codec.shortFrameSize(op, id, args);
        assert.equal(size, want.length, `shortFrameSize: ${what}`);
        const buf = Buffer.alloc(size + 8, 0xee);
        codec.putShortFrame(buf, 3, size, op, id, args);
        assert.ok(buf.subarray(3, 3 + size).equals(want), `putShortFrame: ${what}`);
        assert.ok(buf.subarray(0, 3).equals(Buffer.alloc(3, 0xee)) && buf.subarray(3 + size).equals(Buffer.alloc(5, 0xee)), `putShortFrame wrote outside its frame: ${what}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 1500, `${compared} compared`);
});

// The same edges against the daemon, many frames a pass (one buffer): each reply must say
// what its request asked.
test('requests at every length edge, many a pass, are carried out as asked by sessd', { timeout: 120000 }, async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  const client = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => client.terminate());
  await client.ready();
  const checks = [];
  const nss = strs(64).filter((s) => Buffer.byteLength(s) <= 64);
  const sids = [...strs(128).filter((s) => Buffer.byteLength(s) <= 128), Buffer.alloc(128, 0x41), Buffer.from([0xff, 0, 1])];
  for (const [n, ns] of nss.entries()) {
    for (const [i, sid] of sids.entries()) {
      const data = bins[(n + i) % bins.length];
      const ttl = uints[1 + ((n + i) % 10)]; // 1 ms .. MAX_TTL_MS
      const long = ttl >= 60000;
      checks.push(client.set(ns, sid, data, long ? ttl : 600000));
      checks.push(client.get(ns, sid).then((got) => assert.ok(got.equals(data), `ns ${Buffer.byteLength(ns)} B, id ${Buffer.byteLength(sid)} B: read ${got.length} bytes of ${data.length}`)));
      checks.push(client.ttl(ns, sid).then((left) => assert.ok(left > 0 && left <= (long ? ttl : 600000), `ttl ${left} after a set of ${long ? ttl : 600000}`)));
      const msg = 'm'.repeat([0, 31, 32, 255, 256, 65535][(n + i) % 6]);
      const type = 'y'.repeat([1, 31, 32, 64][i % 4]);
      checks.push(client.flashPush(ns, sid, type, msg, 600000).then((len) => assert.equal(len, 1)));
      checks.push(client.flashPop(ns, sid, type).then((got) => assert.deepEqual(got, [msg])));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(checks);
});

test('request ids that wrap past 2^32 - 1 to 1 stay matched to their replies', async (t) => {
  const daemon = await new Daemon().start();
  t.after(() => daemon.cleanup());
  const client = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => client.terminate());
  await client.ready();
  const conn = client.slots[0].conn;
  conn.nextId = 0xffffffff - 5;
  const checks = [];
  for (let i = 0; i < 12; i++) {
    const data = Buffer.from(`wrap-${i}`);
    checks.push(client.set('wrap', `w${i}`, data, 60000));
    checks.push(client.get('wrap', `w${i}`).then((got) => assert.ok(got.equals(data))));
  }
  await Promise.all(checks);
  assert.ok(conn.nextId > 0 && conn.nextId < 100, `ids went on at ${conn.nextId}`);
});
