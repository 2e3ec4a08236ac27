'use strict';
// The Node codec against protocol/vectors.json (PROTOCOL.md "Test vectors"): every valid
// vector decodes to its fields, every canonical one encodes to its exact bytes, and every
// invalid one is rejected with the status a server answers.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const codec = require('../lib/codec');
const { dataTag } = require('../lib/client');

const VECTORS = path.resolve(__dirname, '../../../protocol/vectors.json');
const vectors = JSON.parse(fs.readFileSync(VECTORS, 'utf8'));

// JSON writes integers above 2^53 as decimal strings.
function int(v) {
  if (typeof v === 'string') return codec.normalizeInt(BigInt(v));
  return v;
}

function bytesOf(fields, key) {
  if (fields[key + '_hex'] !== undefined) return Buffer.from(fields[key + '_hex'], 'hex');
  return fields[key];
}

// The argument list of a request, in wire order, from a vector's fields.
function argsOf(r) {
  switch (r.op) {
    case codec.OP.HELLO: return null; // auth is raw bytes; built below
    case codec.OP.RETIRE: return [Buffer.from(r.key_hex, 'hex')];
    case codec.OP.PING: return r.ping_payload ? [Buffer.from(r.data_hex, 'hex')] : [];
    case codec.OP.GET: case codec.OP.DESTROY: case codec.OP.TTL: case codec.OP.LOAD: return [r.ns, bytesOf(r, 'id')];
    case codec.OP.SET: return [r.ns, bytesOf(r, 'id'), Buffer.from(r.data_hex, 'hex'), int(r.ttl_ms)];
    case codec.OP.SET_IF: return [r.ns, bytesOf(r, 'id'), Buffer.from(r.data_hex, 'hex'), int(r.ttl_ms), Buffer.from(r.expect_hex, 'hex')];
    case codec.OP.TOUCH: return [r.ns, bytesOf(r, 'id'), int(r.ttl_ms)];
    case codec.OP.TOUCH_IF: return [r.ns, bytesOf(r, 'id'), int(r.ttl_ms), Buffer.from(r.expect_hex, 'hex')];
    case codec.OP.FLASH_PUSH: case codec.OP.FLASH_PUSH_EXISTING: return [r.ns, bytesOf(r, 'id'), r.type, bytesOf(r, 'msg'), int(r.ttl_ms)];
    case codec.OP.FLASH_POP: return [r.ns, bytesOf(r, 'id'), r.type];
    case codec.OP.DESTROY_IF_FLASH: return [r.ns, bytesOf(r, 'id'), r.type, bytesOf(r, 'msg')];
    case codec.OP.COUNT: case codec.OP.CLEAR: case codec.OP.STATS: return [r.ns];
    case codec.OP.LIST: return [r.ns, int(r.cursor), int(r.limit)];
    case codec.OP.NAMESPACES: return [int(r.cursor), int(r.limit)];
    default: throw new Error('vector with unknown op ' + r.op);
  }
}

function normalizeFields(fields) {
  const out = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = ['request_id', 'cursor', 'ttl_ms', 'limit', 'op', 'version', 'status'].includes(k) ? int(v) : v;
  }
  return out;
}

test('vectors.json has SET_IF and TOUCH_IF vectors, each naming the data its expect is the tag of', () => {
  for (const op of [codec.OP.SET_IF, codec.OP.TOUCH_IF]) {
    const conditional = vectors.filter((v) => v.kind === 'request' && !v.error && v.request.op === op);
    assert.ok(conditional.length > 0, `op ${op}`);
    for (const v of conditional) assert.equal(typeof v.expect_tag_of_hex, 'string', v.name);
  }
});

test('vectors.json is present and not empty', () => {
  assert.ok(Array.isArray(vectors), 'vectors.json must be an array');
  assert.ok(vectors.length > 0, 'vectors.json is empty: the protocol vectors have not been written yet');
  const kinds = new Set(vectors.map((v) => `${v.kind}/${v.error ? 'invalid' : 'valid'}`));
  for (const k of ['request/valid', 'request/invalid', 'reply/valid', 'reply/invalid']) {
    assert.ok(kinds.has(k), `vectors.json has no ${k} vector`);
  }
});

for (const v of vectors) {
  test(`vector: ${v.kind}: ${v.name}`, () => {
    const frame = Buffer.from(v.hex, 'hex');
    const maxFrame = v.max_frame ?? codec.DEFAULT_MAX_FRAME;
    if (v.error) {
      const decode = v.kind === 'request' ? codec.decodeRequest : codec.decodeReply;
      assert.throws(() => decode(frame, maxFrame), (err) => {
        assert.equal(err.name, 'ProtocolError', `unexpected ${err.stack}`);
        assert.equal(err.statusName, v.error);
        if (v.error === 'UNKNOWN_OP') assert.deepEqual(err.requestId, int(v.request_id));
        return true;
      });
      return;
    }
    if (v.kind === 'request') {
      const want = normalizeFields(v.request);
      assert.deepEqual(codec.decodeRequest(frame, maxFrame), want);
      // SET_IF vectors name the data their expect is the tag of.
      if (v.expect_tag_of_hex !== undefined) assert.equal(dataTag(Buffer.from(v.expect_tag_of_hex, 'hex')).toString('hex'), want.expect_hex);
      if (v.canonical !== false) {
        let encoded;
        if (want.op === codec.OP.HELLO) {
          // The encoder writes nil for auth; a raw auth value is spliced in to compare.
          const pre = codec.encodeRequest(want.op, want.request_id, [want.version, want.client_name]);
          const body = Buffer.concat([pre.subarray(4), Buffer.from(want.auth_hex, 'hex')]);
          body[0] += 1; // the fixarray grows by the auth element
          encoded = Buffer.concat([Buffer.alloc(4), body]);
          encoded.writeUInt32BE(body.length, 0);
          if (want.auth_hex === 'c0') {
            assert.equal(codec.encodeRequest(want.op, want.request_id, [want.version, want.client_name, null]).toString('hex'), v.hex);
          }
        } else {
          encoded = codec.encodeRequest(want.op, want.request_id, argsOf(want));
        }
        assert.equal(encoded.toString('hex'), v.hex);
      } else {
        // Not the shortest form: encoding the fields must still decode to the same fields.
        const args = want.op === codec.OP.HELLO ? [want.version, want.client_name, null] : argsOf(want);
        assert.deepEqual(codec.decodeRequest(codec.encodeRequest(want.op, want.request_id, args)), want);
      }
      return;
    }
    const r = v.reply;
    const got = codec.decodeReply(frame, maxFrame);
    assert.deepEqual(got.requestId, int(r.request_id));
    assert.equal(got.status, r.status);
    assert.equal(Buffer.from(got.resultBytes).toString('hex'), r.result_hex);
    if (r.message !== undefined) assert.equal(got.result, r.message);
    if (v.canonical !== false) {
      assert.equal(codec.encodeReply(int(r.request_id), r.status, Buffer.from(r.result_hex, 'hex')).toString('hex'), v.hex);
    }
  });
}

test('flash messages: strings stay str, other values round-trip through bin', () => {
  assert.equal(codec.encodeFlashMessage('hi'), 'hi');
  const obj = { a: [1, 'two', null], b: true };
  const wire = codec.encodeFlashMessage(obj);
  assert.ok(wire instanceof Uint8Array);
  assert.deepEqual(codec.decodeFlashMessage(wire), obj);
  assert.equal(codec.decodeFlashMessage(codec.encodeFlashMessage(42)), 42);
  // A bin another client pushed raw, not MessagePack (0xc1 is no type; 0x01 0x02 has a byte
  // after its value): its bytes come back unchanged as a Buffer (index.d.ts).
  for (const raw of [[0xc1], [0x01, 0x02], [0x92, 0x01]]) {
    const got = codec.decodeFlashMessage(new Uint8Array(raw));
    assert.ok(Buffer.isBuffer(got), `${raw}: ${got}`);
    assert.deepEqual([...got], raw);
  }
});

test('encoder refuses values it cannot write', () => {
  assert.throws(() => codec.encodeRequest(codec.OP.PING, -1, []), RangeError);
  assert.throws(() => codec.encodeRequest(codec.OP.GET, 1, [null, {}]), TypeError);
  assert.throws(() => codec.encodeRequest(codec.OP.GET, 1.5, []), RangeError);
});

// encodeShort (a request of strings, safe integers, bytes and nil, written straight into a
// buffer sized exactly) against Writer's encoding of the same request, byte for byte, at every
// length and integer boundary of MessagePack's forms, with strings that are not ASCII.
test('the exact-size encoder writes what Writer writes', () => {
  const strs = ['', 'a', 'ops', 'é', '日本', '\u{1f600}', '\ud800', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(16), 'x'.repeat(255), 'x'.repeat(256),
    'é'.repeat(128), 'x'.repeat(65535), 'x'.repeat(65536), 'sid-1-'.padEnd(32, 'x') + 'é'];
  const ints = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER, 3600000, codec.MAX_TTL_MS];
  const bins = [0, 1, 16, 255, 256, 65535, 65536].map((n) => Buffer.alloc(n, 0x61));
  let compared = 0;
  const same = (op, id, args) => {
    const got = codec.encodeRequest(op, id, args);
    assert.ok(got.equals(codec.encodeRequestFull(op, id, args)), `${op} ${id} ${args.map((a) => (typeof a === 'string' ? a.length : a)).join(',')}`);
    compared++;
  };
  for (const id of [1, 0x7f, 0x80, 0xffff, 0x10000, 0xffffffff]) {
    for (const s of strs) same(codec.OP.GET, id, ['ns', s]);
    for (const n of ints) same(codec.OP.TOUCH, id, [null, 'sid', n]);
    for (const b of bins) same(codec.OP.SET_IF, id, ['ns', 'sid', b, 60000, Buffer.alloc(16, 7)]);
    same(codec.OP.FLASH_PUSH, id, ['ns', 'sid', 'info', new Uint8Array([1, 2, 3]), 1000]);
    same(codec.OP.PING, id, []);
  }
  // More arguments than encodeShort takes (14: an array of 16, 0xdc) go to Writer.
  same(codec.OP.GET, 5, Array.from({ length: 14 }, (_, i) => 'a'.repeat(i)));
  assert.ok(compared > 200, `${compared} compared`);
  // What it leaves to Writer is encoded and refused as before.
  assert.ok(codec.encodeRequest(codec.OP.TOUCH, 1, [null, 'sid', 5n]).equals(codec.encodeRequestFull(codec.OP.TOUCH, 1, [null, 'sid', 5n])));
  assert.throws(() => codec.encodeRequest(codec.OP.TOUCH, 1, [null, 'sid', -1]), /not a non-negative safe integer/);
  assert.throws(() => codec.encodeRequest(codec.OP.TOUCH, 1, [null, 'sid', 2 ** 53]), RangeError);
  assert.throws(() => codec.encodeRequest(codec.OP.TOUCH, 1, [null, 'sid', undefined, {}]), TypeError);
});

// A connection measures each frame (shortFrameSize) and writes it at its offset in the pass's
// buffer (putShortFrame), one after the other: the bytes are encodeRequest's, back to back, for
// strings that are and are not ASCII (the lengths shortFrameSize noted are the ones written).
test('frames written back to back into one buffer are the frames encodeRequest makes', () => {
  const requests = [
    [codec.OP.LOAD, 1, ['ops', 'sid-1-'.padEnd(32, 'x')]],
    [codec.OP.TOUCH_IF, 2, ['ops', 'sid-é-'.padEnd(32, 'x'), 3600000, Buffer.alloc(16, 3)]],
    [codec.OP.SET_IF, 0x80, ['日本', 'x'.repeat(40), Buffer.alloc(300, 0x61), 60000, Buffer.alloc(16, 7)]],
    [codec.OP.GET, 0xffffffff, [null, '\u{1f600}']],
    [codec.OP.PING, 5, []],
  ];
  const buf = Buffer.alloc(4096, 0xee);
  let at = 0;
  for (const [op, id, args] of requests) {
    const size = codec.shortFrameSize(op, id, args);
    assert.ok(size > 0);
    codec.putShortFrame(buf, at, size, op, id, args);
    at += size;
  }
  assert.ok(buf.subarray(0, at).equals(Buffer.concat(requests.map(([op, id, args]) => codec.encodeRequest(op, id, args)))));
  assert.equal(buf[at], 0xee, 'a frame wrote past its size');
  // What encodeShort leaves to Writer is measured as -1.
  assert.equal(codec.shortFrameSize(codec.OP.TOUCH, 1, [null, 'sid', 5n]), -1);
  assert.equal(codec.shortFrameSize(codec.OP.TOUCH, 1, [null, 'sid', -1]), -1);
});

// A reply body [1, 0, result] for decodeReplyBody.
function okBody(resultHex) {
  return Buffer.from('9301' + '00' + resultHex, 'hex');
}

test('FLASH_POP result: types that differ in bytes but not as JS strings keep every message', () => {
  // sessd does not check UTF-8: the types 0xff and 0xfe are two queues, and both decode to
  // U+FFFD. Their messages are joined in the order the server sent them.
  const r = codec.decodeReplyBody(okBody('82' + 'a1ff' + '91a178' + 'a1fe' + '92a179a17a'), codec.OP.FLASH_POP);
  assert.deepEqual(r.result, { '\ufffd': ['x', 'y', 'z'] });
});

test('FLASH_POP result: str messages are strings, bin messages bytes', () => {
  const r = codec.decodeReplyBody(okBody('81' + 'a4696e666f' + '93a0c40105a161'), codec.OP.FLASH_POP);
  assert.deepEqual(Object.keys(r.result), ['info']);
  assert.equal(r.result.info[0], '');
  assert.ok(r.result.info[1] instanceof Uint8Array);
  assert.deepEqual([...r.result.info[1]], [5]);
  assert.equal(r.result.info[2], 'a');
  const typed = codec.decodeReplyBody(okBody('92a161c40105'), codec.OP.FLASH_POP);
  assert.equal(typed.result[0], 'a');
  assert.deepEqual([...typed.result[1]], [5]);
  // Without an opcode (tools, vectors) the result is decoded as any value.
  assert.deepEqual(codec.decodeReplyBody(okBody('81a4696e666f90')).result, { info: [] });
});

test('FLASH_POP result: no more messages than max_frame allows, nor more than 64 types', () => {
  // 400 empty messages fit in 4096 bytes of reply, but a session under max_frame 4096 holds at
  // most 4096 / 12 = 341 (each counts 6 bytes or more against max_frame / 2).
  const many = (n) => 'dc' + n.toString(16).padStart(4, '0') + 'a0'.repeat(n);
  assert.throws(() => codec.decodeReplyBody(okBody(many(400)), codec.OP.FLASH_POP, 4096), codec.ProtocolError);
  assert.equal(codec.decodeReplyBody(okBody(many(341)), codec.OP.FLASH_POP, 4096).result.length, 341);
  assert.equal(codec.decodeReplyBody(okBody(many(400)), codec.OP.FLASH_POP, 8192).result.length, 400);
  // The bound counts every type's messages together.
  const twoTypes = '82' + 'a161' + many(200) + 'a162' + many(200);
  assert.throws(() => codec.decodeReplyBody(okBody(twoTypes), codec.OP.FLASH_POP, 4096), codec.ProtocolError);
  let types = 'de0041';
  for (let i = 0; i < 65; i++) types += 'a2' + Buffer.from(String(i).padStart(2, '0')).toString('hex') + '90';
  assert.throws(() => codec.decodeReplyBody(okBody(types), codec.OP.FLASH_POP, 1 << 20), codec.ProtocolError);
});

// What sessd may send and the shared vectors do not hold: containers in their 16- and 32-bit
// forms (a FLASH_POP of more than 65,535 messages comes as an array 32, which this writes
// small), and integers at the edges of each encoding, here as request ids.
test('replies: array and map 16/32 headers, and integers at each encoding\'s edges', () => {
  const strs = '92a161a162';
  for (const hex of ['dc0002a161a162', 'dd00000002a161a162']) {
    assert.deepEqual(codec.decodeReplyBody(okBody(hex), codec.OP.FLASH_POP).result, ['a', 'b'], hex);
  }
  for (const hex of ['de0001a4696e666f' + strs, 'df00000001a4696e666f' + strs]) {
    assert.deepEqual(codec.decodeReplyBody(okBody(hex), codec.OP.FLASH_POP).result, { info: ['a', 'b'] }, hex);
  }
  const ids = [[0x7f, '7f'], [0x80, 'cc80'], [0xff, 'ccff'], [0x100, 'cd0100'], [0xffff, 'cdffff'], [0x10000, 'ce00010000'], [0xffffffff, 'ceffffffff']];
  for (const [id, hex] of ids) {
    assert.equal(codec.decodeReplyBody(Buffer.from('93' + hex + '00c0', 'hex')).requestId, id, hex);
  }
});

// decodeReplyBody reads the common replies (an OK of nil or a uint, a NOT_FOUND, LOAD's
// [bin, uint]) on their bytes, without the full decoder: every such reply, every one a
// byte from it (cut short, one byte more, a type changed), and each opcode's other shapes
// must come out as the full decoder has them, or fail as it fails.
test('replies: the quick path answers as the full decoder does, or leaves the reply to it', () => {
  const { Encoder } = require('@msgpack/msgpack');
  const enc = new Encoder({ useBigInt64: true });
  const uints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2n ** 63n];
  const data = [Buffer.alloc(0), Buffer.from('{"cookie":{}}'), Buffer.alloc(255, 0x61), Buffer.alloc(256, 0x62)];
  const results = [null, -1, 'text', true, {}, [], ...uints, ...data];
  for (const d of data) for (const n of [0, 3, 300, 70000, 2n ** 63n, -1]) results.push([d, n]);
  results.push([data[1].toString(), 0], [data[1]], [data[1], 0, 0], [0, data[1]]);
  // An id of each width: fixint, uint 8, 16, 32, 64.
  const ids = [5, 200, 70000, 2n ** 40n];
  const ops = [codec.OP.SET, codec.OP.SET_IF, codec.OP.TOUCH, codec.OP.TOUCH_IF, codec.OP.DESTROY, codec.OP.TTL,
    codec.OP.FLASH_PUSH, codec.OP.FLASH_PUSH_EXISTING, codec.OP.COUNT, codec.OP.CLEAR, codec.OP.LOAD, codec.OP.GET,
    codec.OP.PING, codec.OP.STATS, codec.OP.DESTROY_IF_FLASH];
  const outcome = (f) => {
    try {
      const r = f();
      // The fields a reply has (a quick one keeps its body for resultBytes, made when asked).
      return { requestId: r.requestId, status: r.status, result: r.result instanceof Uint8Array ? Buffer.from(r.result).toString('hex') : Array.isArray(r.result)
        ? r.result.map((x) => (x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x)) : r.result,
      resultBytes: Buffer.from(r.resultBytes).toString('hex'), resultError: r.resultError && r.resultError.message };
    } catch (err) {
      return { threw: err.constructor.name, message: err.message };
    }
  };
  let quick = 0;
  let compared = 0;
  const same = (body, op) => {
    compared++;
    const got = outcome(() => codec.decodeReplyBody(body, op, 1 << 20));
    const want = outcome(() => codec.decodeReplyBodyFull(body, op, 1 << 20));
    assert.deepEqual(got, want, `op 0x${op.toString(16)}, reply ${body.length > 64 ? body.subarray(0, 64).toString('hex') + '...' : body.toString('hex')}`);
  };
  for (const op of ops) {
    for (const status of [codec.STATUS.OK, codec.STATUS.NOT_FOUND, codec.STATUS.CONFLICT]) {
      // An error status carries a str: one other result is enough there.
      for (const result of status === codec.STATUS.CONFLICT ? ['conflict', null] : results) {
        for (const id of ids) {
          const body = Buffer.from(enc.encode([id, status, result]));
          same(body, op);
          const r = outcome(() => codec.decodeReplyBody(body, op, 1 << 20));
          if (!r.threw && !r.resultError) quick++;
          // Each cut short, and one byte more, for the small ones.
          if (body.length < 40 && id === 5 && status !== codec.STATUS.CONFLICT && [codec.OP.SET_IF, codec.OP.TTL, codec.OP.LOAD].includes(op)) {
            for (let n = 0; n < body.length; n++) same(body.subarray(0, n), op);
            same(Buffer.concat([body, Buffer.from([0xc0])]), op);
            // A byte changed: each position, to a few type bytes.
            for (let i = 0; i < Math.min(body.length, 8); i++) {
              for (const b of [0x01, 0x92, 0x93, 0xc0, 0xc4, 0xcc, 0xcf, 0xff]) {
                const changed = Buffer.from(body);
                changed[i] = b;
                same(changed, op);
              }
            }
          }
        }
      }
    }
  }
  // A bin 32 (data of 64 KiB or more).
  same(Buffer.from(enc.encode([5, codec.STATUS.OK, [Buffer.alloc(65536, 0x63), 2]])), codec.OP.LOAD);
  assert.ok(quick > 100 && compared > 5000, `${quick} replies decoded, ${compared} compared`);
});
