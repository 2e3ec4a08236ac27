'use strict';
// The sessd wire protocol, version 1 (protocol/PROTOCOL.md): frames, requests and replies.
// Pure functions, no I/O. Requests are written by a small shortest-form encoder (the
// protocol's vectors require exact bytes); values are read with @msgpack/msgpack after a
// structural scan that enforces the spec's decoding rules (counts against bytes left, no
// 0xc1, nesting at most 16 levels, the body consumed exactly).

const { Encoder, Decoder } = require('@msgpack/msgpack');

const PROTOCOL_VERSION = 1;
const HEADER_BYTES = 4;
const DEFAULT_MAX_FRAME = 1048576;
// The smallest max_frame a server may have (PROTOCOL.md "Limits"), and its limit until HELLO.
const MIN_MAX_FRAME = 4096;
const MAX_DEPTH = 16;
const MAX_TTL_MS = 316224000000;
// SET_IF's and TOUCH_IF's expect: the first TAG_BYTES bytes of BLAKE2b-512 of the session's data (dataTag).
const TAG_BYTES = 16;

const OP = Object.freeze({
  HELLO: 0x01,
  PING: 0x02,
  RETIRE: 0x03,
  GET: 0x10,
  SET: 0x11,
  TOUCH: 0x12,
  DESTROY: 0x13,
  SET_IF: 0x14,
  TTL: 0x15,
  LOAD: 0x16,
  TOUCH_IF: 0x17,
  FLASH_PUSH: 0x20,
  FLASH_POP: 0x21,
  FLASH_PUSH_EXISTING: 0x22,
  DESTROY_IF_FLASH: 0x23,
  COUNT: 0x30,
  LIST: 0x31,
  CLEAR: 0x32,
  STATS: 0x33,
  NAMESPACES: 0x34,
});

const STATUS = Object.freeze({
  OK: 0,
  NOT_FOUND: 1,
  BAD_REQUEST: 2,
  TOO_LARGE: 3,
  NO_MEMORY: 4,
  UNKNOWN_OP: 5,
  BAD_VERSION: 6,
  NOT_READY: 7,
  IO_ERROR: 8,
  AUTH_FAILED: 9,
  INTERNAL: 10,
  SHUTTING_DOWN: 11,
  LIMIT: 12,
  BUSY: 13,
  CONFLICT: 14,
  FORBIDDEN: 15,
});
const OP_NAME = Object.freeze(Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k])));
const STATUS_NAME = Object.freeze(Object.fromEntries(Object.entries(STATUS).map(([k, v]) => [v, k])));
// After these the server closes the connection (PROTOCOL.md, "Errors that close"; and
// SHUTTING_DOWN, a stopping server's last reply).
const CLOSING_STATUSES = new Set([
  STATUS.BAD_REQUEST, STATUS.TOO_LARGE, STATUS.NOT_READY, STATUS.BAD_VERSION, STATUS.AUTH_FAILED,
  STATUS.BUSY, STATUS.SHUTTING_DOWN,
]);

// The opcodes whose outcomes include NOT_FOUND (PROTOCOL.md "Operations"). Any other known
// opcode answered NOT_FOUND is a malformed reply: a SET so answered stored nothing, and must
// not pass for a success.
const NOT_FOUND_OPS = new Set([OP.GET, OP.TOUCH, OP.DESTROY, OP.TTL, OP.LOAD, OP.SET_IF, OP.TOUCH_IF, OP.FLASH_POP, OP.FLASH_PUSH_EXISTING, OP.DESTROY_IF_FLASH]);

// Argument kinds of each opcode, in order; used by the strict request decoder.
const ARGS = Object.freeze({
  [OP.HELLO]: ['version', 'client_name', 'auth'],
  [OP.PING]: [],
  [OP.RETIRE]: ['key'],
  [OP.GET]: ['ns', 'id'],
  [OP.SET]: ['ns', 'id', 'data', 'ttl'],
  [OP.TOUCH]: ['ns', 'id', 'ttl'],
  [OP.DESTROY]: ['ns', 'id'],
  [OP.SET_IF]: ['ns', 'id', 'data', 'ttl', 'expect'],
  [OP.TTL]: ['ns', 'id'],
  [OP.LOAD]: ['ns', 'id'],
  [OP.TOUCH_IF]: ['ns', 'id', 'ttl', 'expect'],
  [OP.FLASH_PUSH]: ['ns', 'id', 'type', 'msg', 'ttl'],
  [OP.FLASH_POP]: ['ns', 'id', 'type_or_nil'],
  [OP.FLASH_PUSH_EXISTING]: ['ns', 'id', 'type', 'msg', 'ttl'],
  [OP.DESTROY_IF_FLASH]: ['ns', 'id', 'type', 'msg'],
  [OP.COUNT]: ['ns'],
  [OP.LIST]: ['ns', 'cursor', 'limit'],
  [OP.CLEAR]: ['ns'],
  [OP.STATS]: ['ns_or_nil'],
  [OP.NAMESPACES]: ['cursor', 'limit'],
});

class ProtocolError extends Error {
  // status: the status a server would answer for this input (BAD_REQUEST, TOO_LARGE, ...).
  constructor(message, status = STATUS.BAD_REQUEST) {
    super(message);
    this.name = 'ProtocolError';
    this.sessdStatus = status;
    this.code = 'ESESSD_PROTOCOL';
    this.statusName = STATUS_NAME[status];
    // For an app's error handler, as SessdError has them: a server that breaks the protocol
    // is a fault, not an outage.
    this.statusCode = 500;
    this.status = 500;
    this.expose = false;
  }
}

// ---------------------------------------------------------------------------------------
// Encoding: shortest forms, straight into a growable buffer.

// RawValue(bytes): a request argument that is already MessagePack (a sealed HELLO's auth map,
// which the argument types below cannot express), written as it is.
class RawValue {
  constructor(bytes) {
    this.bytes = bytes;
  }
}

class Writer {
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
    this.pos = 0;
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v) {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  nil() {
    this.u8(0xc0);
  }

  uint(v) {
    if (typeof v === 'bigint') {
      if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError('uint out of range: ' + v);
      if (v <= BigInt(Number.MAX_SAFE_INTEGER)) return this.uint(Number(v));
      this.ensure(9);
      this.buf[this.pos] = 0xcf;
      this.buf.writeBigUInt64BE(v, this.pos + 1);
      this.pos += 9;
      return undefined;
    }
    if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) {
      throw new RangeError('not a non-negative safe integer: ' + v);
    }
    this.ensure(9);
    const b = this.buf;
    if (v < 0x80) {
      b[this.pos++] = v;
    } else if (v < 0x100) {
      b[this.pos++] = 0xcc;
      b[this.pos++] = v;
    } else if (v < 0x10000) {
      b[this.pos] = 0xcd;
      b.writeUInt16BE(v, this.pos + 1);
      this.pos += 3;
    } else if (v < 0x100000000) {
      b[this.pos] = 0xce;
      b.writeUInt32BE(v, this.pos + 1);
      this.pos += 5;
    } else {
      b[this.pos] = 0xcf;
      b.writeBigUInt64BE(BigInt(v), this.pos + 1);
      this.pos += 9;
    }
    return undefined;
  }

  str(s) {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(5 + n);
    const b = this.buf;
    if (n < 32) {
      b[this.pos++] = 0xa0 | n;
    } else if (n < 0x100) {
      b[this.pos++] = 0xd9;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos] = 0xda;
      b.writeUInt16BE(n, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = 0xdb;
      b.writeUInt32BE(n, this.pos + 1);
      this.pos += 5;
    }
    this.pos += b.write(s, this.pos, n, 'utf8');
  }

  bin(bytes) {
    const n = bytes.length;
    this.ensure(5 + n);
    const b = this.buf;
    if (n < 0x100) {
      b[this.pos++] = 0xc4;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos] = 0xc5;
      b.writeUInt16BE(n, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = 0xc6;
      b.writeUInt32BE(n, this.pos + 1);
      this.pos += 5;
    }
    b.set(bytes, this.pos);
    this.pos += n;
  }

  arrayHeader(n) {
    this.ensure(5);
    if (n < 16) {
      this.buf[this.pos++] = 0x90 | n;
    } else if (n < 0x10000) {
      this.buf[this.pos] = 0xdc;
      this.buf.writeUInt16BE(n, this.pos + 1);
      this.pos += 3;
    } else {
      this.buf[this.pos] = 0xdd;
      this.buf.writeUInt32BE(n, this.pos + 1);
      this.pos += 5;
    }
  }

  // Writes one argument value: null -> nil, integer -> uint, string -> str, bytes -> bin,
  // RawValue -> its bytes.
  value(v) {
    if (v === null || v === undefined) this.nil();
    else if (v instanceof RawValue) {
      this.ensure(v.bytes.length);
      this.buf.set(v.bytes, this.pos);
      this.pos += v.bytes.length;
    }
    else if (typeof v === 'string') this.str(v);
    else if (typeof v === 'number' || typeof v === 'bigint') this.uint(v);
    else if (v instanceof Uint8Array) this.bin(v);
    else throw new TypeError('cannot encode a request argument of type ' + typeof v);
  }
}

// encodeRequest(op, requestId, args): the whole frame (header included) of the request
// [op, requestId, ...args] as a new Buffer the caller owns. Arguments are null, integers,
// strings or Uint8Arrays; they are written as given (the caller checks ranges).
// A page's requests (strings, safe integers, bytes, nil) are sized exactly and written
// straight into a buffer of that size (encodeShort); anything else goes through Writer,
// in a buffer sized first (requestSize): grown from a guess, a save's frame was allocated
// and copied up to three times.
function encodeRequest(op, requestId, args) {
  const frame = encodeShort(op, requestId, args);
  return frame !== null ? frame : encodeRequestFull(op, requestId, args);
}

// encodeRequestFull(op, requestId, args): encodeRequest through Writer for every request.
// Exported for the test that holds encodeShort to it.
function encodeRequestFull(op, requestId, args) {
  const w = new Writer(requestSize(op, requestId, args));
  w.pos = HEADER_BYTES;
  w.arrayHeader(2 + args.length);
  w.uint(op);
  w.uint(requestId);
  for (const a of args) w.value(a);
  w.buf.writeUInt32BE(w.pos - HEADER_BYTES, 0);
  return w.buf.subarray(0, w.pos);
}

// The byte lengths of encodeShort's string arguments, by position: it takes requests of up to
// 8 arguments (a fixarray; the protocol's have at most 5).
const strLengths = [0, 0, 0, 0, 0, 0, 0, 0];

// asciiLength(s): s.length when every character of s is ASCII (its UTF-8 is one byte a
// character), else -1. Session ids and namespaces are: Buffer.byteLength and the UTF-8 write,
// calls into C++, cost a page's LOAD and TOUCH_IF 0.3-0.5 us each for a 32-character id.
function asciiLength(s) {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return -1;
  return n;
}

// encodeShort(op, requestId, args): encodeRequest's frame when there are at most 8 arguments
// and each is null, a string, a safe non-negative integer or a Uint8Array, sized exactly (no
// Writer, no slack, no subarray: a page view's two frames were a Writer, a pool slice and a
// view of it each, and every length worked out twice); null for anything else (encodeRequest
// writes it with Writer, and throws what Writer throws for a bad argument).
function encodeShort(op, requestId, args) {
  const size = shortFrameSize(op, requestId, args);
  if (size < 0) return null;
  const b = Buffer.allocUnsafe(size);
  putShortFrame(b, 0, size, op, requestId, args);
  return b;
}

// shortFrameSize(op, requestId, args): the byte length of encodeShort's frame (header
// included), or -1 when encodeShort would give null. It notes the byte lengths of the string
// arguments for putShortFrame, which must come next, before any other call of it: the
// connection writes a pass's frames straight into one buffer, sized a frame at a time.
function shortFrameSize(op, requestId, args) {
  const count = args.length;
  if (count > strLengths.length || !(requestId >= 0 && requestId <= 0xffffffff && Number.isInteger(requestId))) return -1;
  let size = HEADER_BYTES + 1 + uintSize(op) + uintSize(requestId);
  for (let i = 0; i < count; i++) {
    const v = args[i];
    if (typeof v === 'string') {
      let len = asciiLength(v);
      if (len < 0) len = -1 - Buffer.byteLength(v, 'utf8');
      strLengths[i] = len;
      const bytes = len < 0 ? -1 - len : len;
      size += lengthHeaderSize(bytes, 32) + bytes;
    } else if (typeof v === 'number') {
      if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v))) return -1;
      size += uintSize(v);
    } else if (v === null) {
      size += 1;
    } else if (v instanceof Uint8Array) {
      size += lengthHeaderSize(v.length, 0) + v.length;
    } else {
      return -1;
    }
  }
  return size;
}

// putShortFrame(b, at, size, op, requestId, args): writes the frame the last shortFrameSize
// measured (size bytes) into b at offset at.
function putShortFrame(b, at, size, op, requestId, args) {
  const count = args.length;
  b.writeUInt32BE(size - HEADER_BYTES, at);
  let pos = at + HEADER_BYTES;
  b[pos++] = 0x90 | (count + 2);
  pos = putUint(b, pos, op);
  pos = putUint(b, pos, requestId);
  for (let i = 0; i < count; i++) {
    const v = args[i];
    if (typeof v === 'string') {
      const len = strLengths[i];
      const n = len < 0 ? -1 - len : len;
      pos = putLengthHeader(b, pos, n, 0xa0, 32, 0xd9);
      if (len < 0) pos += b.utf8Write(v, pos, n);
      else for (let j = 0; j < n; j++) b[pos++] = v.charCodeAt(j);
    } else if (typeof v === 'number') {
      pos = putUint(b, pos, v);
    } else if (v === null) {
      b[pos++] = 0xc0;
    } else {
      pos = putLengthHeader(b, pos, v.length, 0, 0, 0xc4);
      b.set(v, pos);
      pos += v.length;
    }
  }
}

// putUint(b, pos, v): writes the safe non-negative integer v at pos in its shortest form (as
// Writer.uint does); returns the position after it.
function putUint(b, pos, v) {
  if (v < 0x80) {
    b[pos] = v;
    return pos + 1;
  }
  if (v < 0x100) {
    b[pos] = 0xcc;
    b[pos + 1] = v;
    return pos + 2;
  }
  if (v < 0x10000) {
    b[pos] = 0xcd;
    b.writeUInt16BE(v, pos + 1);
    return pos + 3;
  }
  if (v < 0x100000000) {
    b[pos] = 0xce;
    b.writeUInt32BE(v, pos + 1);
    return pos + 5;
  }
  b[pos] = 0xcf;
  b.writeBigUInt64BE(BigInt(v), pos + 1);
  return pos + 9;
}

// putLengthHeader(b, pos, n, fix, fixMax, first): a str's header (fix 0xa0 below fixMax 32,
// then first 0xd9, 0xda, 0xdb) or a bin's (no fix form: first 0xc4, 0xc5, 0xc6) for n bytes;
// returns the position after it.
function putLengthHeader(b, pos, n, fix, fixMax, first) {
  if (n < fixMax) {
    b[pos] = fix | n;
    return pos + 1;
  }
  if (n < 0x100) {
    b[pos] = first;
    b[pos + 1] = n;
    return pos + 2;
  }
  if (n < 0x10000) {
    b[pos] = first + 1;
    b.writeUInt16BE(n, pos + 1);
    return pos + 3;
  }
  b[pos] = first + 2;
  b.writeUInt32BE(n, pos + 1);
  return pos + 5;
}

// uintSize(v), strSize(s), binSize(n), arrayHeaderSize(n): the bytes Writer writes for them.
function uintSize(v) {
  if (typeof v !== 'number') return 9;
  return v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : v < 0x100000000 ? 5 : 9;
}

function lengthHeaderSize(n, fix) {
  return n < fix ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

// requestSize(op, requestId, args): room for encodeRequest's frame (its bytes and 8 more), or
// an upper bound for an argument it will refuse (Writer.value throws then, as before).
function requestSize(op, requestId, args) {
  let n = HEADER_BYTES + (args.length + 2 < 16 ? 1 : args.length + 2 < 0x10000 ? 3 : 5) + uintSize(op) + uintSize(requestId);
  for (const v of args) {
    if (v === null || v === undefined) n += 1;
    else if (v instanceof RawValue) n += v.bytes.length;
    else if (typeof v === 'string') {
      const len = Buffer.byteLength(v, 'utf8');
      n += lengthHeaderSize(len, 32) + len;
    } else if (typeof v === 'number' || typeof v === 'bigint') n += uintSize(v);
    else if (v instanceof Uint8Array) n += lengthHeaderSize(v.length, 0) + v.length;
  }
  // Writer.uint asks room for 9 bytes whatever it writes: without the slack a frame ending in
  // a small integer (TOUCH's ttl) would be grown, allocated and copied once more.
  return n + 8;
}

// encodeReply(requestId, status, resultBytes): a whole reply frame; resultBytes is the
// result's own MessagePack encoding (a Buffer). Used by tests and tools, not the client.
function encodeReply(requestId, status, resultBytes) {
  const w = new Writer(16 + resultBytes.length);
  w.pos = HEADER_BYTES;
  w.arrayHeader(3);
  w.uint(requestId);
  w.uint(status);
  w.ensure(resultBytes.length);
  w.buf.set(resultBytes, w.pos);
  w.pos += resultBytes.length;
  w.buf.writeUInt32BE(w.pos - HEADER_BYTES, 0);
  return w.buf.subarray(0, w.pos);
}

// ---------------------------------------------------------------------------------------
// Structural scan: checks one value's bounds without building it.

// scanValue(buf, pos, end, depth): the offset just past the value starting at pos.
// Throws ProtocolError(BAD_REQUEST) for 0xc1, truncation, counts the bytes left cannot
// hold, or nesting deeper than MAX_DEPTH. Iterative, so hostile input cannot overflow the
// JS stack.
function scanValue(buf, pos, end) {
  // Each stack entry counts the values still owed by an open array or map.
  const owed = [1];
  while (owed.length > 0) {
    if (owed[owed.length - 1] === 0) {
      owed.pop();
      continue;
    }
    owed[owed.length - 1]--;
    if (pos >= end) throw new ProtocolError('frame ends inside a value');
    const t = buf[pos++];
    let len = -1; // bytes of payload to skip
    let count = -1; // child values for a container
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) len = 0;
    else if ((t & 0xf0) === 0x80) count = (t & 0x0f) * 2;
    else if ((t & 0xf0) === 0x90) count = t & 0x0f;
    else if ((t & 0xe0) === 0xa0) len = t & 0x1f;
    else {
      switch (t) {
        case 0xc1:
          throw new ProtocolError('reserved byte 0xc1');
        case 0xc4: case 0xd9: len = need(buf, pos, end, 1) && buf[pos]; pos += 1; break;
        case 0xc5: case 0xda: len = need(buf, pos, end, 2) && buf.readUInt16BE(pos); pos += 2; break;
        case 0xc6: case 0xdb: len = need(buf, pos, end, 4) && buf.readUInt32BE(pos); pos += 4; break;
        case 0xc7: len = need(buf, pos, end, 2) && buf[pos] + 1; pos += 1; break;
        case 0xc8: len = need(buf, pos, end, 3) && buf.readUInt16BE(pos) + 1; pos += 2; break;
        case 0xc9: len = need(buf, pos, end, 5) && buf.readUInt32BE(pos) + 1; pos += 4; break;
        case 0xca: len = 4; break;
        case 0xcb: len = 8; break;
        case 0xcc: case 0xd0: len = 1; break;
        case 0xcd: case 0xd1: len = 2; break;
        case 0xce: case 0xd2: len = 4; break;
        case 0xcf: case 0xd3: len = 8; break;
        case 0xd4: len = 2; break;
        case 0xd5: len = 3; break;
        case 0xd6: len = 5; break;
        case 0xd7: len = 9; break;
        case 0xd8: len = 17; break;
        case 0xdc: count = need(buf, pos, end, 2) && buf.readUInt16BE(pos); pos += 2; break;
        case 0xdd: count = need(buf, pos, end, 4) && buf.readUInt32BE(pos); pos += 4; break;
        case 0xde: count = need(buf, pos, end, 2) && buf.readUInt16BE(pos) * 2; pos += 2; break;
        case 0xdf: count = need(buf, pos, end, 4) && buf.readUInt32BE(pos) * 2; pos += 4; break;
        default:
          throw new ProtocolError('unknown type byte 0x' + t.toString(16));
      }
    }
    if (len >= 0) {
      if (len > end - pos) throw new ProtocolError('declared length exceeds the frame');
      pos += len;
    } else {
      // Every child takes at least one byte: a count beyond the bytes left is a lie.
      if (count > end - pos) throw new ProtocolError('declared count exceeds the frame');
      if (owed.length > MAX_DEPTH) throw new ProtocolError('nesting deeper than ' + MAX_DEPTH);
      owed.push(count);
    }
  }
  return pos;
}

function need(buf, pos, end, n) {
  if (end - pos < n) throw new ProtocolError('frame ends inside a header');
  return true;
}

// ---------------------------------------------------------------------------------------
// Decoding.

const decoder = new Decoder({ useBigInt64: true });
const encoder = new Encoder();
const flashDecoder = new Decoder();

function decodeValue(bytes) {
  try {
    return decoder.decode(bytes);
  } catch (err) {
    throw new ProtocolError('malformed MessagePack: ' + err.message);
  }
}

// Converts a decoded integer to a Number when it is exactly representable, else a BigInt.
function normalizeInt(v) {
  if (typeof v === 'bigint' && v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(v);
  }
  return v;
}

// readFrameLength(buf, offset, maxFrame): the body length announced at offset, checked.
// Throws ProtocolError(TOO_LARGE) over maxFrame, ProtocolError(BAD_REQUEST) for zero.
function readFrameLength(buf, offset, maxFrame) {
  const len = buf.readUInt32BE(offset);
  if (len === 0) throw new ProtocolError('zero-length frame');
  if (len > maxFrame) throw new ProtocolError(`frame of ${len} bytes over max_frame ${maxFrame}`, STATUS.TOO_LARGE);
  return len;
}

// splitFrame(frame, maxFrame): the body of one whole frame (header included), checked
// against maxFrame (header first, as a server does) and the bytes present.
function splitFrame(frame, maxFrame = DEFAULT_MAX_FRAME) {
  if (frame.length < HEADER_BYTES) throw new ProtocolError('frame shorter than its header');
  const len = readFrameLength(frame, 0, maxFrame);
  if (frame.length !== HEADER_BYTES + len) throw new ProtocolError('frame length does not match its header');
  return frame.subarray(HEADER_BYTES);
}

// elements(body): [start, end) spans of the top-level array's elements. The whole body is
// scanned first, so every rule (bounds, 0xc1, depth, trailing bytes) holds before use.
function elements(body) {
  if (body.length === 0) throw new ProtocolError('empty body');
  const end = scanValue(body, 0, body.length);
  if (end !== body.length) throw new ProtocolError('trailing bytes after the value');
  const c = containerAt(body, 0);
  if (!c || c.map) throw new ProtocolError('the body must be an array');
  return childSpans(body, c.pos, c.count, end);
}

// containerAt(body, p): { map, count, pos } of the array or map whose header is at p (count:
// its elements, or its pairs for a map; pos: where its first child starts), or null when the
// value at p is neither. Only within a body elements() has scanned, so the header is whole.
function containerAt(body, p) {
  const t = body[p];
  if ((t & 0xf0) === 0x90) return { map: false, count: t & 0x0f, pos: p + 1 };
  if ((t & 0xf0) === 0x80) return { map: true, count: t & 0x0f, pos: p + 1 };
  if (t === 0xdc || t === 0xde) return { map: t === 0xde, count: body.readUInt16BE(p + 1), pos: p + 3 };
  if (t === 0xdd || t === 0xdf) return { map: t === 0xdf, count: body.readUInt32BE(p + 1), pos: p + 5 };
  return null;
}

// childSpans(body, pos, n, end): [start, end) spans of the n values from pos on.
function childSpans(body, pos, n, end) {
  const spans = [];
  for (let i = 0; i < n; i++) {
    const next = scanValue(body, pos, end);
    spans.push([pos, next]);
    pos = next;
  }
  return spans;
}

// arrayItems(body, span, what): the spans of the elements of the array at span.
function arrayItems(body, span, what) {
  const c = containerAt(body, span[0]);
  if (!c || c.map) throw new ProtocolError(`${what} must be an array`);
  return childSpans(body, c.pos, c.count, span[1]);
}

// mapPairs(body, span, what): [keySpan, valueSpan] of each pair of the map at span, in wire
// order. Two str keys with the same bytes (in any str format) are a ProtocolError:
// MessagePack leaves the meaning of such a map undefined, and decoded to an object it would
// keep only the last value.
function mapPairs(body, span, what) {
  const c = containerAt(body, span[0]);
  if (!c || !c.map) throw new ProtocolError(`${what} must be a map`);
  const spans = childSpans(body, c.pos, 2 * c.count, span[1]);
  const seen = new Set();
  const pairs = [];
  for (let i = 0; i < spans.length; i += 2) {
    if (isStr(body, spans[i])) {
      const key = readBytes(body, spans[i], 'a key', true, false).bytes;
      if (seen.has(key.toString('latin1'))) throw new ProtocolError(`${what} has the key ${JSON.stringify(key.toString('utf8'))} twice`);
      seen.add(key.toString('latin1'));
    }
    pairs.push([spans[i], spans[i + 1]]);
  }
  return pairs;
}

// readInt(body, [start, end]): the integer at the span as a Number, or a BigInt when it is
// not a safe integer; throws unless the value is a MessagePack integer.
function readInt(body, span, what) {
  const [p] = span;
  const t = body[p];
  let v;
  if (t <= 0x7f) v = t;
  else if (t >= 0xe0) v = t - 0x100;
  else {
    switch (t) {
      case 0xcc: v = body[p + 1]; break;
      case 0xcd: v = body.readUInt16BE(p + 1); break;
      case 0xce: v = body.readUInt32BE(p + 1); break;
      case 0xcf: v = normalizeInt(body.readBigUInt64BE(p + 1)); break;
      case 0xd0: v = body.readInt8(p + 1); break;
      case 0xd1: v = body.readInt16BE(p + 1); break;
      case 0xd2: v = body.readInt32BE(p + 1); break;
      case 0xd3: v = normalizeInt(body.readBigInt64BE(p + 1)); break;
      default: throw new ProtocolError(`${what} must be an integer`);
    }
  }
  return v;
}

function readUint(body, span, what, max) {
  const v = readInt(body, span, what);
  if (v < 0) throw new ProtocolError(`${what} must not be negative`);
  if (max !== undefined && v > max) throw new ProtocolError(`${what} is out of range`);
  return v;
}

function isNil(body, span) {
  return body[span[0]] === 0xc0;
}

function isStr(body, span) {
  const t = body[span[0]];
  return (t & 0xe0) === 0xa0 || t === 0xd9 || t === 0xda || t === 0xdb;
}

// readBytes(body, span, kinds): { kind: 'str'|'bin', bytes } of a str or bin at the span.
function readBytes(body, span, what, allowStr, allowBin) {
  const [p, e] = span;
  const t = body[p];
  let hdr;
  let kind;
  if ((t & 0xe0) === 0xa0) [hdr, kind] = [1, 'str'];
  else if (t === 0xd9) [hdr, kind] = [2, 'str'];
  else if (t === 0xda) [hdr, kind] = [3, 'str'];
  else if (t === 0xdb) [hdr, kind] = [5, 'str'];
  else if (t === 0xc4) [hdr, kind] = [2, 'bin'];
  else if (t === 0xc5) [hdr, kind] = [3, 'bin'];
  else if (t === 0xc6) [hdr, kind] = [5, 'bin'];
  else throw new ProtocolError(`${what} must be a ${allowStr && allowBin ? 'str or bin' : allowStr ? 'str' : 'bin'}`);
  if ((kind === 'str' && !allowStr) || (kind === 'bin' && !allowBin)) {
    throw new ProtocolError(`${what} must be a ${allowStr ? 'str' : 'bin'}`);
  }
  return { kind, bytes: body.subarray(p + hdr, e) };
}

function sized(r, min, max, what) {
  if (r.bytes.length < min || r.bytes.length > max) throw new ProtocolError(`${what} must be ${min}..${max} bytes`);
  return r;
}

// The field as the vectors write it: a str as a string under key, a bin as key_hex.
function putBytes(out, key, r) {
  if (r.kind === 'str') out[key] = r.bytes.toString('utf8');
  else out[key + '_hex'] = r.bytes.toString('hex');
}

function readNs(body, span) {
  if (isNil(body, span)) return null;
  return sized(readBytes(body, span, 'namespace', true, false), 1, 64, 'namespace').bytes.toString('utf8');
}

function readTtl(body, span) {
  const t = readUint(body, span, 'ttl');
  if (t < 1 || t > MAX_TTL_MS) throw new ProtocolError('ttl must be 1..' + MAX_TTL_MS + ' ms');
  return t;
}

// decodeRequestBody(body): the fields of a request ({ op, request_id, ... } named as in
// vectors.json), validated as a server does (PROTOCOL.md "Types used below"; LIST limits
// clamped to 1..1000). Throws ProtocolError carrying the status a server answers.
function decodeRequestBody(body) {
  body = Buffer.from(body.buffer, body.byteOffset, body.length);
  const spans = elements(body);
  if (spans.length < 2) throw new ProtocolError('a request is an array [op, request_id, ...]');
  const op = readUint(body, spans[0], 'opcode');
  const requestId = readUint(body, spans[1], 'request_id');
  const kinds = ARGS[op];
  if (!kinds) {
    // The reply to an unknown opcode carries the request's id (PROTOCOL.md).
    const err = new ProtocolError('unknown opcode ' + op, STATUS.UNKNOWN_OP);
    err.requestId = requestId;
    throw err;
  }
  // PING alone takes an optional argument: a payload it is answered with.
  const pingPayload = op === OP.PING && spans.length === 3;
  if (spans.length !== 2 + kinds.length && !pingPayload) throw new ProtocolError(`opcode ${op} takes ${kinds.length} arguments`);
  const out = { op, request_id: requestId };
  if (pingPayload) {
    out.ping_payload = true;
    out.data_hex = readBytes(body, spans[2], 'payload', true, true).bytes.toString('hex');
  }
  kinds.forEach((kind, i) => {
    const sp = spans[2 + i];
    switch (kind) {
      case 'version': out.version = readUint(body, sp, 'version'); break;
      case 'client_name':
        out.client_name = sized(readBytes(body, sp, 'client_name', true, false), 0, 64, 'client_name').bytes.toString('utf8');
        break;
      // Version 1 sends nil; what a server makes of anything else (AUTH_FAILED) is its
      // business, so the decoder hands the raw value on.
      case 'auth': out.auth_hex = body.subarray(sp[0], sp[1]).toString('hex'); break;
      case 'ns': case 'ns_or_nil': out.ns = readNs(body, sp); break;
      case 'id': putBytes(out, 'id', sized(readBytes(body, sp, 'id', true, true), 1, 128, 'id')); break;
      case 'data': out.data_hex = readBytes(body, sp, 'data', true, true).bytes.toString('hex'); break;
      case 'ttl': out.ttl_ms = readTtl(body, sp); break;
      case 'key': out.key_hex = sized(readBytes(body, sp, 'key', false, true), 32, 32, 'key').bytes.toString('hex'); break;
      case 'expect': out.expect_hex = sized(readBytes(body, sp, 'expect', false, true), TAG_BYTES, TAG_BYTES, 'expect').bytes.toString('hex'); break;
      case 'type': out.type = sized(readBytes(body, sp, 'flash type', true, false), 1, 64, 'flash type').bytes.toString('utf8'); break;
      case 'type_or_nil':
        out.type = isNil(body, sp) ? null : sized(readBytes(body, sp, 'flash type', true, false), 1, 64, 'flash type').bytes.toString('utf8');
        break;
      case 'msg': putBytes(out, 'msg', readBytes(body, sp, 'msg', true, true)); break;
      case 'cursor': out.cursor = readUint(body, sp, 'cursor'); break;
      case 'limit': {
        const l = readUint(body, sp, 'limit');
        out.limit = l < 1 ? 1 : l > 1000 ? 1000 : Number(l);
        break;
      }
      default: throw new Error('unreachable');
    }
  });
  return out;
}

// decodeRequest(frame, maxFrame): decodeRequestBody of a whole frame.
function decodeRequest(frame, maxFrame) {
  return decodeRequestBody(splitFrame(frame, maxFrame));
}

// The most values a HELLO result may hold, counted on its bytes with the nested ones (each key
// and each value, and each element of a value that is an array or a map). sessd's holds 29 with
// a key exchange's kx map; a later server may add keys (PROTOCOL.md "HELLO"), but a few, not
// hundreds.
const MAX_HELLO_VALUES = 256;

// valuesWithin(body, span, max): whether the value at span, a scanned one, holds at most max
// values, itself and the nested ones counted. A container's count is weighed before its
// elements are walked, so that a hostile count costs nothing.
function valuesWithin(body, span, max) {
  const owed = [1];
  let pos = span[0];
  let n = 0;
  while (owed.length > 0) {
    if (owed[owed.length - 1] === 0) {
      owed.pop();
      continue;
    }
    owed[owed.length - 1]--;
    if (++n > max) return false;
    const c = containerAt(body, pos);
    if (c) {
      const children = c.map ? 2 * c.count : c.count;
      if (n + children > max) return false;
      owed.push(children);
      pos = c.pos;
    } else {
      pos = scanValue(body, pos, span[1]);
    }
  }
  return true;
}

// helloResult(body, span): the HELLO result (PROTOCOL.md "HELLO") as an object, once it is
// known, on its bytes and before anything is decoded, to be a map of at most MAX_HELLO_VALUES
// values without duplicate keys whose `version`, if present, is 1 and whose `max_frame`, if
// present, is a uint of at least MIN_MAX_FRAME: a client sizes its requests by it. Decoded
// first, a faulty server's HELLO of a million empty maps under a key the client does not know
// cost it as much as any other such result (checkResultShape, below). Other keys are the
// caller's to check (clients ignore keys they do not know).
function helloResult(body, span) {
  const c = containerAt(body, span[0]);
  if (!c || !c.map) throw new ProtocolError('the HELLO result must be a map');
  if (!valuesWithin(body, span, MAX_HELLO_VALUES)) {
    throw new ProtocolError(`the HELLO result holds more than ${MAX_HELLO_VALUES} values`);
  }
  for (const [k, v] of mapPairs(body, span, 'the HELLO result')) {
    const key = isStr(body, k) ? readBytes(body, k, 'a key', true, false).bytes.toString('utf8') : null;
    if (key === 'version' && readUint(body, v, 'the HELLO version') !== PROTOCOL_VERSION) {
      throw new ProtocolError('HELLO answered a version other than ' + PROTOCOL_VERSION);
    }
    if (key === 'max_frame' && readUint(body, v, 'the HELLO max_frame') < MIN_MAX_FRAME) {
      throw new ProtocolError(`HELLO announced a max_frame under ${MIN_MAX_FRAME}`);
    }
  }
  return decodeValue(body.subarray(span[0], span[1]));
}

// flashMessages(body, span): the array of msg at span; a str as a string, a bin as a Buffer
// (a view of body).
// The least a flash message counts against a session's max_frame / 2 bytes (PROTOCOL.md
// "Flashes": its type, 1 byte or more, its message and 5): a FLASH_POP reply holds at most
// max_frame / 12 messages, and sessd answers LIMIT rather than send more.
const FLASH_LEAST_COST = 6;

// flashBudget(maxFrame): how many messages a FLASH_POP reply may hold under maxFrame, as a
// counter flashMessages draws on; unbounded without maxFrame.
function flashBudget(maxFrame) {
  return { left: maxFrame === undefined ? Infinity : Math.floor(maxFrame / 2 / FLASH_LEAST_COST) };
}

function flashMessages(body, span, budget) {
  const c = containerAt(body, span[0]);
  // Checked before any message is made: each costs ~100 bytes of heap against 1 of reply, so
  // a hostile reply of empty messages would otherwise cost 100x its size.
  if (c && !c.map && budget && (budget.left -= c.count) < 0) {
    throw new ProtocolError('a FLASH_POP reply holds more messages than max_frame allows');
  }
  return arrayItems(body, span, 'a flash queue').map((sp) => {
    const r = readBytes(body, sp, 'a flash message', true, true);
    return r.kind === 'str' ? r.bytes.toString('utf8') : r.bytes;
  });
}

// flashPopResult(body, span): a FLASH_POP result (PROTOCOL.md "Flashes"): an array of msg (a
// pop of one type), or a plain object type -> array of msg (a pop of every type), its keys in
// wire order. A type named twice is a ProtocolError: the server keeps one queue per type, so
// such a reply comes from a faulty server, and merging or dropping a queue would be a guess
// at which messages it removed. Types are bytes to the server (it does not check UTF-8), so
// two types may decode to the same JS string: their messages are joined, in wire order.
function flashPopResult(body, span, maxFrame) {
  const c = containerAt(body, span[0]);
  const budget = flashBudget(maxFrame);
  if (!c) throw new ProtocolError('a FLASH_POP result must be an array or a map');
  if (!c.map) return flashMessages(body, span, budget);
  // A session has at most 64 types (PROTOCOL.md "Flashes").
  if (c.count > 64) throw new ProtocolError('a FLASH_POP result has more than 64 types');
  const out = {};
  for (const [k, v] of mapPairs(body, span, 'a FLASH_POP result')) {
    const type = sized(readBytes(body, k, 'a flash type', true, false), 1, 64, 'a flash type').bytes.toString('utf8');
    const msgs = flashMessages(body, v, budget);
    if (Object.hasOwn(out, type)) {
      for (const m of msgs) out[type].push(m);
    } else {
      // Not out[type] = msgs: a type may be "__proto__", a valid type like any other.
      Object.defineProperty(out, type, { value: msgs, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

// The most entries a LIST or NAMESPACES page holds (PROTOCOL.md: limit is clamped to
// 1..1000), and the most counters a STATS map is taken with (sessd has a few dozen; a later
// server may add some).
const MAX_PAGE = 1000;
const MAX_STATS = 1024;

// isInt(body, span): whether the value at span is a MessagePack integer.
function isInt(body, span) {
  const t = body[span[0]];
  return t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xcf) || (t >= 0xd0 && t <= 0xd3);
}

// isBytes(body, span): whether the value at span is a str or a bin.
function isBytes(body, span) {
  const t = body[span[0]];
  return isStr(body, span) || t === 0xc4 || t === 0xc5 || t === 0xc6;
}

// checkResultShape(body, span, op): the bytes of the OK result at span once its MessagePack
// types are the ones op's result has (PROTOCOL.md "Operations"), looked at on the bytes and
// before anything is decoded: decoded first, a faulty server's result of the wrong type could
// cost the app far more than its size (a 1 MiB array of empty maps is a million objects, 64 MB
// of heap and seconds of a blocked event loop; at a larger max_frame the process runs out of
// memory). Throws ProtocolError naming the opcode otherwise. A field's exact range (a uint not
// negative, a TTL at least 1) is the caller's to check; an opcode this table does not know
// (none that the client sends) is decoded as it is.
function checkResultShape(body, span, op) {
  const bad = () => new ProtocolError(`the ${OP_NAME[op]} result has the wrong type`);
  const t = body[span[0]];
  const pairOf = (sp, first) => {
    const c = containerAt(body, sp[0]);
    if (!c || c.map || c.count !== 2) return false;
    const [a, b] = childSpans(body, c.pos, 2, sp[1]);
    return first(a) && isInt(body, b);
  };
  switch (op) {
    case OP.SET: case OP.TOUCH: case OP.DESTROY: case OP.SET_IF: case OP.TOUCH_IF: case OP.DESTROY_IF_FLASH:
      if (t !== 0xc0) throw bad();
      break;
    case OP.PING:
      if (t !== 0xc0 && !isBytes(body, span)) throw bad();
      break;
    case OP.TTL: case OP.COUNT: case OP.CLEAR: case OP.FLASH_PUSH: case OP.FLASH_PUSH_EXISTING:
      if (!isInt(body, span)) throw bad();
      break;
    case OP.LOAD:
      if (!pairOf(span, (sp) => isBytes(body, sp))) throw bad();
      break;
    case OP.LIST: case OP.NAMESPACES: {
      const c = containerAt(body, span[0]);
      if (!c || c.map || c.count !== 2) throw bad();
      const [cursor, page] = childSpans(body, c.pos, 2, span[1]);
      const p = containerAt(body, page[0]);
      if (!isInt(body, cursor) || !p || p.map || p.count > MAX_PAGE) throw bad();
      for (const e of childSpans(body, p.pos, p.count, page[1])) if (!pairOf(e, (sp) => isBytes(body, sp))) throw bad();
      break;
    }
    case OP.STATS: {
      const c = containerAt(body, span[0]);
      if (!c || !c.map || c.count > MAX_STATS) throw bad();
      for (const [k, v] of mapPairs(body, span, 'the STATS result')) if (!isStr(body, k) || !isInt(body, v)) throw bad();
      break;
    }
    default:
      break;
  }
  return body.subarray(span[0], span[1]);
}

// decodeReplyBody(body, op, maxFrame): { requestId, status, result, resultBytes } of a reply
// body; maxFrame, the connection's, bounds what a FLASH_POP result may hold.
// result is the decoded value (bin as Buffer, ints as Number, or BigInt when not safe);
// resultBytes is a view of the result's own encoding within body. Throws ProtocolError for
// a malformed reply, including a NOT_FOUND without nil or an error status without a str.
// With op, the opcode of the request it answers, the reply is checked as an answer to it
// too: a HELLO result by helloResult, a FLASH_POP one by flashPopResult, a GET one as a bin,
// any other OK result's types by checkResultShape before it is decoded, and NOT_FOUND only
// from an opcode that has it (NOT_FOUND_OPS). op null: a reply that answers no request (a
// goodbye is all it may be), whose OK result is left undecoded (result undefined). A GET
// result that is not a bin, and any other OK result whose types are not its opcode's, is not
// decoded: result is undefined and resultError the ProtocolError for its request (the reply
// is well formed, so the connection may go on).
function decodeReplyBody(body, op, maxFrame) {
  const quick = quickReply(body, op);
  return quick !== null ? quick : decodeReplyBodyFull(body, op, maxFrame);
}

// decodeReplyBodyFull(body, op, maxFrame): decodeReplyBody without the quick path (see
// quickReply): every reply scanned, checked and decoded in full. Exported for the test that
// holds the quick path to it.
function decodeReplyBodyFull(body, op, maxFrame) {
  const spans = elements(body);
  if (spans.length !== 3) throw new ProtocolError('a reply is a 3-element array');
  const requestId = readUint(body, spans[0], 'request_id');
  const status = readUint(body, spans[1], 'status', 0xffffffff);
  const resultBytes = body.subarray(spans[2][0], spans[2][1]);
  let result;
  if (status === STATUS.OK) {
    if (op === OP.HELLO) result = helloResult(body, spans[2]);
    else if (op === OP.FLASH_POP) result = flashPopResult(body, spans[2], maxFrame);
    else if (op === null) result = undefined;
    else {
      // A result of the wrong type leaves the stream in step: it fails its request only.
      try {
        result = op === OP.GET ? readBytes(body, spans[2], 'the GET result', false, true).bytes : decodeValue(checkResultShape(body, spans[2], op));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        return { requestId, status, result: undefined, resultBytes, resultError: new ProtocolError(`the server's ${OP_NAME[op]} result has the wrong shape`) };
      }
    }
  } else if (status === STATUS.NOT_FOUND) {
    if (!isNil(body, spans[2])) throw new ProtocolError('NOT_FOUND carries nil');
    if (ARGS[op] && !NOT_FOUND_OPS.has(op)) throw new ProtocolError(`NOT_FOUND is not an answer to opcode 0x${op.toString(16)}`);
    result = null;
  } else {
    result = readBytes(body, spans[2], 'an error message', true, false).bytes.toString('utf8');
  }
  return { requestId, status, result, resultBytes };
}

// The opcodes whose OK result is nil, and those whose OK result is a uint (checkResultShape).
const NIL_RESULT_OPS = new Set([OP.SET, OP.TOUCH, OP.DESTROY, OP.SET_IF, OP.TOUCH_IF, OP.DESTROY_IF_FLASH]);
const UINT_RESULT_OPS = new Set([OP.TTL, OP.COUNT, OP.CLEAR, OP.FLASH_PUSH, OP.FLASH_PUSH_EXISTING]);

// quickUint(body, p): [value, end] of the uint at p in the forms that decode to a Number
// (positive fixint, uint 8, 16, 32), or null for anything else (uint 64 and every other type
// are left to the full decoder).
function quickUint(body, p) {
  if (p >= body.length) return null;
  const t = body[p];
  if (t <= 0x7f) return [t, p + 1];
  if (t === 0xcc && p + 2 <= body.length) return [body[p + 1], p + 2];
  if (t === 0xcd && p + 3 <= body.length) return [body.readUInt16BE(p + 1), p + 3];
  if (t === 0xce && p + 5 <= body.length) return [body.readUInt32BE(p + 1), p + 5];
  return null;
}

// QuickReply: a reply quickReply read, with decodeReplyBody's fields; resultBytes (a view of the
// result's encoding in body) is made when asked: the client never asks, and a Buffer view made
// for each reply cost a page view's two replies 0.2-0.3 us.
class QuickReply {
  constructor(requestId, status, result, body, at) {
    this.requestId = requestId;
    this.status = status;
    this.result = result;
    this.body = body;
    this.at = at;
  }

  get resultBytes() {
    return this.body.subarray(this.at);
  }
}

// quickReply(body, op): decodeReplyBody's answer for the replies of a page's requests, read
// on the bytes: an OK with a nil result (SET, SET_IF, TOUCH, TOUCH_IF, DESTROY) or a uint
// (TTL, FLASH_PUSH, ...), a NOT_FOUND, and LOAD's [bin, uint]; null for any other reply,
// which the full decoder reads (and judges). Only a reply that the full decoder would take
// is answered here, with the same fields: the scan, the shape check and the MessagePack
// decoder cost a page view's two replies about as much as the store's own JavaScript.
function quickReply(body, op) {
  if (body.length < 4 || body[0] !== 0x93) return null;
  const id = quickUint(body, 1);
  if (id === null) return null;
  const p = id[1] + 1;
  const status = body[id[1]];
  if (p >= body.length) return null;
  const t = body[p];
  if (status === STATUS.NOT_FOUND) {
    if (t !== 0xc0 || p + 1 !== body.length || !NOT_FOUND_OPS.has(op)) return null;
    return new QuickReply(id[0], status, null, body, p);
  }
  if (status !== STATUS.OK) return null;
  if (NIL_RESULT_OPS.has(op)) {
    if (t !== 0xc0 || p + 1 !== body.length) return null;
    return new QuickReply(id[0], status, null, body, p);
  }
  if (UINT_RESULT_OPS.has(op)) {
    const v = quickUint(body, p);
    if (v === null || v[1] !== body.length) return null;
    return new QuickReply(id[0], status, v[0], body, p);
  }
  if (op !== OP.LOAD || t !== 0x92 || p + 2 >= body.length) return null;
  // [data: bin, flashes: uint]
  let at = p + 2;
  let n;
  const b = body[p + 1];
  if (b === 0xc4) n = body[at++];
  else if (b === 0xc5 && at + 2 <= body.length) {
    n = body.readUInt16BE(at);
    at += 2;
  } else if (b === 0xc6 && at + 4 <= body.length) {
    n = body.readUInt32BE(at);
    at += 4;
  } else return null;
  if (n > body.length - at) return null;
  const flashes = quickUint(body, at + n);
  if (flashes === null || flashes[1] !== body.length) return null;
  return new QuickReply(id[0], status, [body.subarray(at, at + n), flashes[0]], body, p);
}

// decodeReply(frame, maxFrame): decodeReplyBody of a whole frame.
function decodeReply(frame, maxFrame) {
  return decodeReplyBody(Buffer.from(splitFrame(frame, maxFrame)));
}

// ---------------------------------------------------------------------------------------
// Flash messages: a JS string travels as msgpack str; anything else as a bin holding the
// value's MessagePack encoding, so objects round-trip through FLASH_PUSH / FLASH_POP.

function encodeFlashMessage(msg) {
  if (typeof msg === 'string') return msg;
  return encoder.encode(msg);
}

function decodeFlashMessage(msg) {
  if (typeof msg === 'string') return msg;
  try {
    return flashDecoder.decode(msg);
  } catch (err) {
    // Not ours (pushed raw by another client): hand the bytes back unchanged.
    return Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  }
}

module.exports = {
  PROTOCOL_VERSION,
  HEADER_BYTES,
  DEFAULT_MAX_FRAME,
  MIN_MAX_FRAME,
  MAX_DEPTH,
  MAX_TTL_MS,
  TAG_BYTES,
  OP,
  STATUS,
  STATUS_NAME,
  CLOSING_STATUSES,
  ProtocolError,
  RawValue,
  encodeRequest,
  encodeRequestFull,
  shortFrameSize,
  putShortFrame,
  encodeReply,
  readFrameLength,
  splitFrame,
  scanValue,
  decodeReply,
  decodeReplyBody,
  decodeReplyBodyFull,
  decodeRequest,
  decodeRequestBody,
  normalizeInt,
  encodeFlashMessage,
  decodeFlashMessage,
};
