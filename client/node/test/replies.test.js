'use strict';
// Replies the client must not take on trust: fake peers answer what sessd never would
// (PROTOCOL.md is the contract), and each answer must end as a ProtocolError (or the
// package's usual error), never as a success, a TypeError or a request that waits for ever.

const test = require('node:test');
const assert = require('node:assert/strict');
const { encode, Decoder } = require('@msgpack/msgpack');
const { Client, codec } = require('..');
const { Connection, SessdError } = require('../lib/connection');
const { fakePeer, once } = require('./helpers');

const { OP, STATUS } = codec;

// MessagePack bytes: mp(value) in @msgpack/msgpack's (shortest) forms; the rest by hand for
// what it never writes.
const mp = (v) => Buffer.from(encode(v));
const hex = (h) => Buffer.from(h.replace(/ /g, ''), 'hex');
const str8 = (s) => Buffer.concat([Buffer.from([0xd9, Buffer.byteLength(s)]), Buffer.from(s)]);
// fixmap(k1, v1, k2, v2, ...): a map of already encoded keys and values, duplicates allowed.
const fixmap = (...kv) => Buffer.concat([Buffer.from([0x80 | (kv.length / 2)]), ...kv]);

const isProtocolError = (err) => err.name === 'ProtocolError' && err.code === 'ESESSD_PROTOCOL';

// A peer that answers HELLO with hellos[name] ([status, result bytes]), and records the
// opcodes of the other requests it gets, per name: client_name up to its first NUL (the
// process identity follows it, PROTOCOL.md "HELLO").
async function helloPeer(t, hellos, onOther = () => {}) {
  const seen = new Map();
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === OP.HELLO) {
      s.name = req.client_name.split('\0')[0];
      seen.set(s.name, []);
      const [status, result] = hellos[s.name];
      s.write(codec.encodeReply(req.request_id, status, result));
      return;
    }
    seen.get(s.name).push(req.op);
    onOther(s, req);
  });
  return { url: `unix:${sockPath}`, seen };
}

test('hello: a reply that is not a HELLO map of version 1 fails the connection', async (t) => {
  const BAD = {
    nil: [0, hex('c0')],
    'an array': [0, mp([1, 4096])],
    'a str': [0, mp('sessd')],
    'version 2': [0, mp({ version: 2, max_frame: 1048576 })],
    'version nil': [0, fixmap(mp('version'), hex('c0'))],
    'version as a str': [0, mp({ version: '1' })],
    'max_frame under 4096': [0, mp({ version: 1, max_frame: 4095 })],
    'max_frame 0': [0, mp({ max_frame: 0 })],
    'max_frame negative': [0, mp({ max_frame: -1 })],
    'max_frame a float': [0, fixmap(mp('max_frame'), hex('cb 40b0000000000000'))], // 4096.0
    'max_frame a str': [0, mp({ max_frame: '1048576' })],
    'max_frame nil': [0, fixmap(mp('max_frame'), hex('c0'))],
    'max_frame twice': [0, fixmap(mp('max_frame'), mp(1048576), str8('max_frame'), mp(4096))],
    'NOT_FOUND (not an outcome of HELLO)': [STATUS.NOT_FOUND, hex('c0')],
  };
  const { url, seen } = await helloPeer(t, BAD);
  await Promise.all(Object.keys(BAD).map(async (name) => {
    const conn = new Connection({ url, clientName: name });
    t.after(() => conn.close());
    const closed = once(conn, 'close', 2000);
    // Queued behind the HELLO: a small request, and one over 4096 bytes that waits for
    // max_frame. Neither may wait for ever.
    const ping = conn.request(OP.PING, []);
    const large = conn.request(OP.SET, [null, 'x', Buffer.alloc(5000), 60000]);
    const err = await closed.catch((e) => assert.fail(`${name}: ${e.message}`));
    assert.ok(isProtocolError(err), `${name}: ${err && err.stack}`);
    await assert.rejects(ping, (e) => e.code === 'ESESSD_CLOSED', name);
    await assert.rejects(large, (e) => e.code === 'ESESSD_CLOSED', name);
    assert.deepEqual(seen.get(name).filter((op) => op === OP.SET), [], `${name}: the large request was not sent`);
  }));
});

test('hello: max_frame absent means 4096, and over 2^31 counts as 2^31', async (t) => {
  const GOOD = {
    'empty map': [0, hex('80'), 4096],
    'max_frame 4096': [0, mp({ max_frame: 4096 }), 4096],
    'version 1, 1 MiB, unknown keys': [0, mp({ version: 1, max_frame: 1048576, later: [1, { a: 2 }] }), 1048576],
    'max_frame 2^40': [0, mp({ version: 1, max_frame: 2 ** 40 }), 2 ** 31],
    'max_frame 2^64-1': [0, fixmap(mp('max_frame'), hex('cf ffffffffffffffff')), 2 ** 31],
  };
  const { url, seen } = await helloPeer(t, GOOD);
  for (const [name, [, , want]] of Object.entries(GOOD)) {
    const conn = new Connection({ url, clientName: name });
    t.after(() => conn.close());
    const held = conn.request(OP.SET, [null, 'x', Buffer.alloc(5000), 60000]);
    held.catch(() => {});
    await once(conn, 'ready', 2000);
    assert.equal(conn.maxFrame, want, name);
    if (want === 4096) {
      // The usual local refusal, for the request held until HELLO and for one made after.
      const tooLarge = (err) => err instanceof SessdError && err.statusName === 'TOO_LARGE';
      await assert.rejects(held, tooLarge, name);
      await assert.rejects(conn.request(OP.SET, [null, 'x', Buffer.alloc(5000), 60000]), tooLarge, name);
      assert.deepEqual(seen.get(name), [], `${name}: nothing over 4096 bytes was sent`);
    }
  }
});

test('hello: frames that arrive with the HELLO reply are read against its max_frame', async (t) => {
  // The HELLO reply (max_frame 4096) and a 5000-byte reply to the PING queued behind it
  // come in one write, so one chunk.
  let helloReply = null;
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === OP.HELLO) {
      helloReply = codec.encodeReply(req.request_id, 0, mp({ version: 1, max_frame: 4096 }));
      return;
    }
    s.write(Buffer.concat([helloReply, codec.encodeReply(req.request_id, 0, mp(Buffer.alloc(4990)))]));
  });
  const conn = new Connection({ url: `unix:${sockPath}` });
  t.after(() => conn.close());
  await assert.rejects(conn.request(OP.PING, []), (err) => isProtocolError(err) && err.statusName === 'TOO_LARGE');
});

// A peer that answers HELLO with {} and every other request with replies[id] ([status,
// result bytes]; none when there is no entry); each case gets a client of its own, since a
// malformed reply closes the connection.
async function casePeer(t, replies, clientOpts = {}) {
  const { sockPath } = await fakePeer(t, (s, req) => {
    if (req.op === OP.HELLO) {
      s.write(codec.encodeReply(req.request_id, 0, hex('80')));
      return;
    }
    if (!replies[req.id]) return;
    const [status, result] = replies[req.id];
    s.write(codec.encodeReply(req.request_id, status, result));
  });
  return async (fn) => {
    const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, reconnectMinMs: 10000, reconnectMaxMs: 10000, ...clientOpts });
    try {
      await c.ready();
      return await fn(c);
    } finally {
      c.terminate();
    }
  };
}

test('FLASH_POP: a map that names a flash type twice is a ProtocolError', async (t) => {
  const DUPS = {
    same: fixmap(mp('info'), mp(['a']), mp('info'), mp(['b'])),
    'str8 and fixstr': fixmap(mp('info'), mp(['a']), str8('info'), mp(['b'])),
    'among others': fixmap(mp('info'), mp(['a']), mp('error'), mp(['e']), mp('info'), mp([])),
  };
  const withClient = await casePeer(t, Object.fromEntries(Object.entries(DUPS).map(([k, v]) => [k, [0, v]])));
  for (const id of Object.keys(DUPS)) {
    await withClient((c) => assert.rejects(c.flashPop(null, id, null), isProtocolError, id));
  }
});

test('FLASH_POP: results other than arrays of str or bin are ProtocolErrors', async (t) => {
  const TYPED = {
    'typed: a map': mp({ info: ['a'] }),
    'typed: nil': hex('c0'),
    'typed: a str': mp('a'),
    'typed: an int message': mp(['a', 1]),
    'typed: a nil message': mp([null]),
    'typed: an array message': mp([['a']]),
    'typed: a map message': mp([{}]),
  };
  const ALL = {
    'all: an array': mp(['a']),
    'all: nil': hex('c0'),
    'all: a str value': mp({ info: 'a' }),
    'all: an int message': mp({ info: [1] }),
    'all: an array message': mp({ info: [['a']] }),
    'all: an int type': fixmap(mp(1), mp(['a'])),
    'all: a bin type': fixmap(mp(Buffer.from('info')), mp(['a'])),
    'all: an empty type': fixmap(mp(''), mp(['a'])),
    'all: a 65-byte type': fixmap(mp('t'.repeat(65)), mp(['a'])),
  };
  const replies = {};
  for (const [k, v] of Object.entries({ ...TYPED, ...ALL })) replies[k] = [0, v];
  const withClient = await casePeer(t, replies);
  for (const id of Object.keys(TYPED)) {
    await withClient((c) => assert.rejects(c.flashPop(null, id, 'info'), isProtocolError, id));
  }
  for (const id of Object.keys(ALL)) {
    await withClient((c) => assert.rejects(c.flashPop(null, id, null), isProtocolError, id));
  }
});

test('replies: NOT_FOUND where the operation cannot answer it is a ProtocolError', async (t) => {
  const nf = [STATUS.NOT_FOUND, hex('c0')];
  const withClient = await casePeer(t, { absent: nf, set: nf, push: nf });
  // Where PROTOCOL.md lists NOT_FOUND, it is an answer.
  await withClient(async (c) => {
    assert.equal(await c.get(null, 'absent'), null);
    assert.equal(await c.touch(null, 'absent', 1000), false);
    assert.equal(await c.destroy(null, 'absent'), false);
    assert.deepEqual(await c.flashPop(null, 'absent', 'info'), []);
    assert.deepEqual(await c.flashPop(null, 'absent', null), {});
    assert.equal(await c.flashPushExisting(null, 'absent', 'info', 'm', 1000), null);
  });
  // A SET answered NOT_FOUND was not stored: it must not look like a success.
  await withClient((c) => assert.rejects(c.set(null, 'set', 'data', 1000), isProtocolError));
  await withClient((c) => assert.rejects(c.flashPush(null, 'push', 'info', 'm', 1000), isProtocolError));
});

test('replies: a GET result that is not bin is a ProtocolError', async (t) => {
  const BAD = { str: mp('data'), int: mp(5), nil: hex('c0'), array: mp([Buffer.from('data')]) };
  const withClient = await casePeer(t, Object.fromEntries(Object.entries(BAD).map(([k, v]) => [k, [0, v]])));
  for (const id of Object.keys(BAD)) {
    await withClient((c) => assert.rejects(c.get(null, id), isProtocolError, id));
  }
});

test('replies: a status that closes the connection closes it at once', async (t) => {
  // PROTOCOL.md "Errors that close": after BAD_REQUEST (and the others) the server answers
  // nothing more on the connection. This peer does not close it either: the client must not
  // leave the requests behind it waiting, or send new ones there.
  const msg = mp('bad');
  const withClient = await casePeer(t, { bad: [STATUS.BAD_REQUEST, msg], limit: [STATUS.LIMIT, msg] }, { timeoutMs: 3000 });
  await withClient(async (c) => {
    const bad = c.get(null, 'bad');
    const behind = c.get(null, 'unanswered');
    await assert.rejects(bad, (err) => err instanceof SessdError && err.code === 'ESESSD_BAD_REQUEST');
    // Rejected with the connection, not by the timeout, which fails a request ETIMEDOUT.
    await assert.rejects(behind, (err) => err.code === 'ESESSD_CLOSED');
  });
  // A status that leaves the connection open leaves it open.
  await withClient(async (c) => {
    await assert.rejects(c.get(null, 'limit'), (err) => err.code === 'ESESSD_LIMIT');
    assert.equal(c.slots[0].conn.state, 'ready');
  });
});

// decodedBytes(fn): the bytes the package hands @msgpack/msgpack's decoder to build values from
// while fn runs (every decode, whatever its entry point, sets its buffer with
// Decoder#setBuffer), and what fn returned. A refusal "before it is decoded" hands it none: the
// work is counted, not timed (a shared machine's clock says nothing of it). Sync or async fn.
async function decodedBytes(fn) {
  const setBuffer = Decoder.prototype.setBuffer;
  let bytes = 0;
  Decoder.prototype.setBuffer = function counted(buffer) {
    bytes += buffer.byteLength;
    return setBuffer.call(this, buffer);
  };
  try {
    const value = await fn();
    return { bytes, value };
  } finally {
    Decoder.prototype.setBuffer = setBuffer;
  }
}

// An array32 of n empty maps: a million of them is a 1 MiB result that a decoder makes into a
// million objects (64 MB of heap, seconds of a blocked event loop).
const emptyMaps = (n) => {
  const head = Buffer.from([0xdd, 0, 0, 0, 0]);
  head.writeUInt32BE(n, 1);
  return Buffer.concat([head, Buffer.alloc(n, 0x80)]);
};

// Before, a HELLO result was decoded whole once its known keys were checked: a million empty
// maps under a key the client does not know took a second and 64 MB of heap to decode, and then
// the connection went on as if the server were sound.
test('hello: a HELLO result of more values than a HELLO holds is refused before it is decoded', async (t) => {
  const sound = [mp('version'), mp(1), mp('max_frame'), mp(1048576)];
  const junk = fixmap(...sound, mp('later'), emptyMaps(1048576 - 64));
  const refused = await decodedBytes(() => assert.throws(() => codec.decodeReplyBody(Buffer.concat([hex('93 01 00'), junk]), OP.HELLO, 1 << 20),
    (err) => isProtocolError(err) && /HELLO result holds more than 256 values/.test(err.message)));
  assert.equal(refused.bytes, 0, 'the HELLO result was refused before the decoder was handed a byte of it');
  // The count is weighed before the elements are walked: an array32 that declares more
  // elements than a HELLO holds, of 1 byte each.
  const many = fixmap(...sound, mp('later'), Buffer.concat([hex('dd 00 0f ff ff'), Buffer.alloc(0xfffff, 0xc0)]));
  assert.throws(() => codec.decodeReplyBody(Buffer.concat([hex('93 01 00'), many]), OP.HELLO, 1 << 20), isProtocolError);
  // Up to 256 values, unknown keys and nested ones among them, it decodes (the map, its two
  // keys and values, a key and an array of 249: 256).
  const most = fixmap(...sound, mp('later'), mp(Array(249).fill(0)));
  const decoded = await decodedBytes(() => codec.decodeReplyBody(Buffer.concat([hex('93 01 00'), most]), OP.HELLO, 1 << 20));
  assert.equal(decoded.value.result.later.length, 249);
  // The count sees the package's decodes: this one handed the decoder the result.
  assert.ok(decoded.bytes >= most.length, `${decoded.bytes} bytes decoded`);
  const over = fixmap(...sound, mp('later'), mp(Array(250).fill(0)));
  assert.throws(() => codec.decodeReplyBody(Buffer.concat([hex('93 01 00'), over]), OP.HELLO, 1 << 20), isProtocolError);
  // From a peer: the connection fails with the ProtocolError, and a request queued behind the
  // HELLO with it.
  const { url } = await helloPeer(t, { junk: [0, junk] });
  const conn = new Connection({ url, clientName: 'junk' });
  t.after(() => conn.close());
  const closed = once(conn, 'close', 5000);
  const ping = conn.request(OP.PING, []);
  const err = await closed;
  assert.ok(isProtocolError(err) && /more than 256 values/.test(err.message), err && err.stack);
  await assert.rejects(ping, (e) => e.code === 'ESESSD_CLOSED');
});

test('replies: a large result of the wrong type is refused before it is decoded', async (t) => {
  const junk = emptyMaps(256 * 1024);
  const inPage = Buffer.concat([hex('92 00 91 92 c4 01 61'), junk]); // [0, [[bin, junk]]]
  const inLoad = Buffer.concat([hex('92 c4 01 61'), junk]); // [bin, junk]
  const cases = [
    ...['GET', 'SET', 'TOUCH', 'DESTROY', 'SET_IF', 'TOUCH_IF', 'PING', 'TTL', 'COUNT', 'CLEAR', 'FLASH_PUSH',
      'FLASH_PUSH_EXISTING', 'DESTROY_IF_FLASH', 'LOAD', 'LIST', 'NAMESPACES', 'STATS'].map((name) => [name, junk]),
    ['LIST', inPage], ['NAMESPACES', inPage], ['LOAD', inLoad],
    ['STATS', Buffer.concat([hex('81 a1 61'), junk])],
  ];
  const refused = (name, result) => {
    const r = codec.decodeReplyBody(Buffer.concat([hex('93 02 00'), result]), OP[name], 1 << 20);
    assert.equal(r.result, undefined, name);
    assert.ok(r.resultError && isProtocolError(r.resultError), name);
    assert.equal(r.resultError.message, `the server's ${name} result has the wrong shape`);
  };
  // Decoded, these took 0.5 s each (a plain build on an idle machine); refused on their type
  // bytes they take a scan, and the decoder never sees them.
  for (const [name, result] of cases) {
    assert.equal((await decodedBytes(() => refused(name, result))).bytes, 0, `${name} refused before it is decoded`);
  }
  // A page of more entries than any LIST answers, and a STATS of more counters than sessd has.
  const page = Buffer.concat([hex('92 00 dc 03 e9'), ...Array(1001).fill(hex('92 c4 00 00'))]);
  refused('LIST', page);
  // The right shapes still decode.
  const ok = (name, result) => {
    const r = codec.decodeReplyBody(Buffer.concat([hex('93 02 00'), result]), OP[name], 1 << 20);
    assert.equal(r.resultError, undefined, name);
    return r.result;
  };
  assert.deepEqual(ok('LIST', mp([7, [[Buffer.from('a'), 5]]])), [7, [[Buffer.from('a'), 5]]]);
  assert.deepEqual(ok('STATS', mp({ sessions: 3 })), { sessions: 3 });
  assert.deepEqual(Buffer.from(ok('GET', mp(Buffer.from('data')))), Buffer.from('data'));
  assert.equal(ok('TTL', mp(1000)), 1000);
});

test('replies: a GET answered with a 1 MiB result of the wrong type fails that call only', async (t) => {
  const results = { junk: emptyMaps(1048576 - 64), good: mp(Buffer.from('data')) };
  const { sockPath } = await fakePeer(t, (s, req) => {
    // sessd's default max_frame, so that the reply is read and decoded, not refused for its size.
    if (req.op === OP.HELLO) s.write(codec.encodeReply(req.request_id, 0, mp({ version: 1, max_frame: 1048576 })));
    else s.write(codec.encodeReply(req.request_id, 0, results[req.id]));
  });
  const c = new Client({ url: `unix:${sockPath}`, poolSize: 1, timeoutMs: 10000, reconnectMinMs: 10000, reconnectMaxMs: 10000 });
  t.after(() => c.terminate());
  await c.ready();
  const junk = await decodedBytes(() => assert.rejects(c.get(null, 'junk'), (err) => isProtocolError(err) && /GET result/.test(err.message)));
  // Refused on its type byte: none of its megabyte went to the decoder.
  assert.equal(junk.bytes, 0, 'the GET result was refused before it is decoded');
  // On the same connection: the reply was well formed, the stream is still in step.
  const conn = c.slots[0].conn;
  assert.deepEqual(await c.get(null, 'good'), Buffer.from('data'));
  assert.equal(c.slots[0].conn, conn);
});
