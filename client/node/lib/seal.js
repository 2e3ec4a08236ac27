'use strict';
// Sealed connections (PROTOCOL.md "Sealed connections"): the key exchange carried in HELLO,
// and the ChaCha20-Poly1305 records that carry the frame stream after it. Node's crypto
// (OpenSSL) only. Internal to the package: the connection uses KeyExchange, RecordWriter and
// RecordReader; the other exports (fixed ephemeral keys, the server's side of the exchange)
// are for tests, which check them against protocol/seal-vectors.json and play a sealing server.
//
// Key material is kept where util.inspect cannot reach it: in private fields, and, once
// derived, in secret KeyObjects (their bytes live outside the JS heap and inspect shows only
// their size). Raw key bytes that had to exist in Buffers are zeroed after use.

const crypto = require('crypto');
const { ProtocolError } = require('./codec');

const KEY_BYTES = 32; // an X25519 public or secret key
const PROOF_BYTES = 32;
const HEADER_BYTES = 4;
const TAG_BYTES = 16;
// The most plaintext one record carries, and so the bounds of a record's length field.
const MAX_PLAIN = 65536;
const MIN_RECORD_LENGTH = 1 + TAG_BYTES;
const MAX_RECORD_LENGTH = MAX_PLAIN + TAG_BYTES;
// Record numbers are Numbers here: exact up to 2^53, where a side stops (the protocol allows
// up to 2^64; 2^53 records is centuries of traffic).
const MAX_RECORD_NUMBER = Number.MAX_SAFE_INTEGER;

const PSK_KEY = Buffer.from('sessd-psk-v1', 'ascii');
const CLIENT_LABEL = Buffer.from('sessd-kx-v1 client', 'ascii');
const SERVER_LABEL = Buffer.from('sessd-kx-v1 server', 'ascii');
const KEYS_LABEL = Buffer.from('sessd-kx-v1 keys', 'ascii');

// RFC 8410 DER wrappings of raw X25519 keys: a PKCS#8 private key is this prefix then the 32
// secret bytes, an SPKI public key this prefix then the 32 public bytes.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function hmac(key, ...parts) {
  const h = crypto.createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

// derivePsk(secret): psk = HMAC-SHA-256(key "sessd-psk-v1", secret), 32 bytes.
function derivePsk(secret) {
  return hmac(PSK_KEY, secret);
}

function rawPublic(keyObject) {
  const der = keyObject.export({ format: 'der', type: 'spki' });
  if (der.length !== SPKI_PREFIX.length + KEY_BYTES || !der.subarray(0, SPKI_PREFIX.length).equals(SPKI_PREFIX)) {
    throw new Error('unexpected X25519 public key encoding');
  }
  return Buffer.from(der.subarray(SPKI_PREFIX.length));
}

// keyPair(secretKey): { privateKey: KeyObject, publicKey: 32-byte Buffer }: a fresh random
// pair, or (tests only: an ephemeral key used twice loses forward secrecy) the pair of the
// given 32 secret bytes.
function keyPair(secretKey) {
  if (secretKey === undefined) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('x25519');
    return { privateKey, publicKey: rawPublic(publicKey) };
  }
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== KEY_BYTES) throw new TypeError('an X25519 secret key is 32 bytes');
  const der = Buffer.concat([PKCS8_PREFIX, secretKey]);
  try {
    const privateKey = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    return { privateKey, publicKey: rawPublic(crypto.createPublicKey(privateKey)) };
  } finally {
    der.fill(0);
  }
}

function allZero(bytes) {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i];
  return acc === 0;
}

// x25519(privateKey, peerPublic): the 32-byte shared secret, or null when there is none to
// use: all zero (a low-order peer key; OpenSSL refuses those itself, hence the catch).
function x25519(privateKey, peerPublic) {
  let shared;
  try {
    const publicKey = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, peerPublic]), format: 'der', type: 'spki' });
    shared = crypto.diffieHellman({ privateKey, publicKey });
  } catch (err) {
    return null;
  }
  if (shared.length !== KEY_BYTES || allZero(shared)) {
    shared.fill(0);
    return null;
  }
  return shared;
}

function clientProof(psk, clientPublic) {
  return hmac(psk, CLIENT_LABEL, clientPublic);
}

// deriveKeys(psk, shared, clientPublic, serverPublic): { c2s, s2c, confirm }, 32-byte views of
// one 96-byte HKDF output (okm; zero it when done).
function deriveKeys(psk, shared, clientPublic, serverPublic) {
  const info = Buffer.concat([KEYS_LABEL, clientPublic, serverPublic]);
  const okm = Buffer.from(crypto.hkdfSync('sha256', shared, psk, info, 3 * KEY_BYTES));
  return { okm, c2s: okm.subarray(0, 32), s2c: okm.subarray(32, 64), confirm: okm.subarray(64, 96) };
}

function serverProof(confirm, clientPublic, serverPublic) {
  return hmac(confirm, SERVER_LABEL, clientPublic, serverPublic);
}

// kxMap(name, key, proof): the MessagePack map {name: bin key, "proof": bin proof}, shortest
// forms, in that order (HELLO's auth is {"kx", "proof"}, the reply's kx {"key", "proof"}).
function kxMap(name, key, proof) {
  const n = Buffer.from(name, 'ascii');
  return Buffer.concat([
    Buffer.from([0x82, 0xa0 | n.length]), n, Buffer.from([0xc4, KEY_BYTES]), key,
    Buffer.from([0xa5]), Buffer.from('proof', 'ascii'), Buffer.from([0xc4, PROOF_BYTES]), proof,
  ]);
}

const isBytes32 = (v) => v instanceof Uint8Array && v.length === 32;

// KeyExchange: the client's side of one connection's exchange. new KeyExchange(secret) makes
// the ephemeral pair; auth is HELLO's auth value (MessagePack bytes); finish(hello) checks the
// HELLO reply. secretKey: tests only (see keyPair).
class KeyExchange {
  #psk;
  #privateKey;

  constructor(secret, secretKey) {
    this.#psk = derivePsk(secret);
    const { privateKey, publicKey } = keyPair(secretKey);
    this.#privateKey = privateKey;
    this.publicKey = publicKey;
    this.auth = kxMap('kx', publicKey, clientProof(this.#psk, publicKey));
  }

  // finish(hello): the connection's { writer, reader, serverKey (s_pk, public: what a
  // RETIRE names the connection by) } from the HELLO result (a decoded map),
  // or { why } saying how the reply fails to prove the server holds the secret. Either way the
  // exchange is spent: the psk is zeroed and the ephemeral key dropped (a KeyObject cannot be
  // zeroed from JS; once unreferenced, nothing can use it).
  finish(hello) {
    const psk = this.#psk;
    const privateKey = this.#privateKey;
    this.#psk = null;
    this.#privateKey = null;
    if (!psk) return { why: 'the key exchange was already used' };
    try {
      if (hello.auth !== true) return { why: 'has no auth: true' };
      if (!Object.hasOwn(hello, 'kx')) return { why: 'has no key exchange (kx)' };
      const kx = hello.kx;
      if (kx === null || typeof kx !== 'object' || !Object.hasOwn(kx, 'key') || !Object.hasOwn(kx, 'proof') || !isBytes32(kx.key) || !isBytes32(kx.proof)) {
        return { why: 'has a malformed kx (not {key, proof}, each bin of 32 bytes)' };
      }
      const serverPublic = Buffer.from(kx.key);
      const shared = x25519(privateKey, serverPublic);
      if (!shared) return { why: 'has a kx key that gives no shared key' };
      const keys = deriveKeys(psk, shared, this.publicKey, serverPublic);
      shared.fill(0);
      try {
        // Constant time: a byte-by-byte compare would tell a forger how much of a guess matched.
        const expected = serverProof(keys.confirm, this.publicKey, serverPublic);
        if (!crypto.timingSafeEqual(expected, Buffer.from(kx.proof))) return { why: 'has a wrong kx proof' };
        return { writer: new RecordWriter(keys.c2s), reader: new RecordReader(keys.s2c), serverKey: serverPublic };
      } finally {
        keys.okm.fill(0);
      }
    } finally {
      psk.fill(0);
    }
  }

  // destroy(): forgets the psk and the ephemeral key (a connection that fails before its
  // HELLO reply).
  destroy() {
    if (this.#psk) this.#psk.fill(0);
    this.#psk = null;
    this.#privateKey = null;
  }
}

// acceptExchange(secret, auth, secretKey): the server's side, for tests that play a sealing
// server: auth is the client's HELLO auth value as decoded ({kx, proof}). Returns null for a
// wrong proof or an unusable key, else { kx (the reply's kx map, MessagePack bytes),
// serverPublic, proof, keys (raw c2s, s2c, confirm), writer (s2c), reader (c2s) }.
function acceptExchange(secret, auth, secretKey) {
  const psk = derivePsk(secret);
  if (!auth || !isBytes32(auth.kx) || !isBytes32(auth.proof)) return null;
  const clientPublic = Buffer.from(auth.kx);
  if (!crypto.timingSafeEqual(clientProof(psk, clientPublic), Buffer.from(auth.proof))) return null;
  const { privateKey, publicKey } = keyPair(secretKey);
  const shared = x25519(privateKey, clientPublic);
  if (!shared) return null;
  const keys = deriveKeys(psk, shared, clientPublic, publicKey);
  const proof = serverProof(keys.confirm, clientPublic, publicKey);
  return {
    kx: kxMap('key', publicKey, proof),
    serverPublic: publicKey,
    proof,
    shared,
    keys,
    writer: new RecordWriter(keys.s2c),
    reader: new RecordReader(keys.c2s),
  };
}

function nonce(number) {
  // 4 zero bytes, then the record number as 8 bytes little-endian.
  const n = Buffer.alloc(12);
  n.writeUInt32LE(number % 0x100000000, 4);
  n.writeUInt32LE(Math.floor(number / 0x100000000), 8);
  return n;
}

// sealInto(key, number, plain, out, at): writes the record of plain (1..MAX_PLAIN bytes)
// numbered number at out[at..]; returns the offset after it.
function sealInto(key, number, plain, out, at) {
  const n = plain.length;
  if (n < 1 || n > MAX_PLAIN) throw new RangeError(`a record carries 1..${MAX_PLAIN} bytes, not ${n}`);
  out.writeUInt32BE(n + TAG_BYTES, at);
  const cipher = crypto.createCipheriv('chacha20-poly1305', key, nonce(number), { authTagLength: TAG_BYTES });
  cipher.setAAD(out.subarray(at, at + HEADER_BYTES), { plaintextLength: n });
  let pos = at + HEADER_BYTES;
  pos += cipher.update(plain).copy(out, pos);
  pos += cipher.final().copy(out, pos);
  pos += cipher.getAuthTag().copy(out, pos);
  if (pos !== at + HEADER_BYTES + n + TAG_BYTES) throw new Error('chacha20-poly1305 wrote an unexpected length');
  return pos;
}

// sealRecord(key, number, plain): one record, as a new Buffer.
function sealRecord(key, number, plain) {
  const out = Buffer.allocUnsafe(HEADER_BYTES + plain.length + TAG_BYTES);
  sealInto(key, number, plain, out, 0);
  return out;
}

// openRecord(key, number, record): the plaintext of one whole record (header included), or a
// ProtocolError when its length is malformed or its tag does not verify. No plaintext is
// handed out before the tag is checked.
function openRecord(key, number, record) {
  const len = record.length - HEADER_BYTES;
  if (len < MIN_RECORD_LENGTH || len > MAX_RECORD_LENGTH || record.readUInt32BE(0) !== len) {
    throw new ProtocolError('sealed record of a malformed length');
  }
  const n = len - TAG_BYTES;
  const decipher = crypto.createDecipheriv('chacha20-poly1305', key, nonce(number), { authTagLength: TAG_BYTES });
  decipher.setAAD(record.subarray(0, HEADER_BYTES), { plaintextLength: n });
  decipher.setAuthTag(record.subarray(HEADER_BYTES + n));
  const plain = decipher.update(record.subarray(HEADER_BYTES, HEADER_BYTES + n));
  try {
    const rest = decipher.final();
    return rest.length ? Buffer.concat([plain, rest]) : plain;
  } catch (err) {
    plain.fill(0);
    throw new ProtocolError(`sealed record ${number} does not authenticate (changed, replayed, reordered, missing, or sealed with another key)`);
  }
}

// RecordWriter: one direction's sending side: numbers records from 0.
class RecordWriter {
  #key;

  // rawKey: 32 bytes, copied into the KeyObject (the caller zeroes its own).
  constructor(rawKey) {
    this.#key = crypto.createSecretKey(rawKey);
    this.number = 0;
  }

  // seal(plain): plain (any length >= 1) as records of MAX_PLAIN bytes at most, in one Buffer.
  // Throws before a record number would pass MAX_RECORD_NUMBER (the caller then closes).
  seal(plain) {
    const count = Math.ceil(plain.length / MAX_PLAIN);
    if (this.number + count > MAX_RECORD_NUMBER) throw new ProtocolError('sealed record numbers are spent: reconnect');
    const out = Buffer.allocUnsafe(plain.length + count * (HEADER_BYTES + TAG_BYTES));
    let at = 0;
    for (let p = 0; p < plain.length; p += MAX_PLAIN) {
      at = sealInto(this.#key, this.number, plain.subarray(p, p + MAX_PLAIN), out, at);
      this.number++;
    }
    return out;
  }
}

// RecordReader: one direction's receiving side. push(chunk, onPlain) takes bytes as they
// arrive and calls onPlain(plaintext) for each whole record, in order, until onPlain returns
// false; throws ProtocolError for a malformed or forged record. Like the frame reader, a
// record arriving in many chunks is joined once, when whole.
class RecordReader {
  #key;

  constructor(rawKey) {
    this.#key = crypto.createSecretKey(rawKey);
    this.number = 0;
    this.chunks = null;
    this.len = 0;
    this.need = 0;
  }

  push(chunk, onPlain) {
    let buf = chunk;
    if (this.chunks) {
      this.chunks.push(chunk);
      this.len += chunk.length;
      if (this.len < this.need) return true;
      buf = Buffer.concat(this.chunks, this.len);
      this.chunks = null;
    }
    let pos = 0;
    while (buf.length - pos >= HEADER_BYTES) {
      const len = checkLength(buf.readUInt32BE(pos));
      if (buf.length - pos - HEADER_BYTES < len) break;
      if (this.number >= MAX_RECORD_NUMBER) throw new ProtocolError('sealed record numbers are spent');
      const plain = openRecord(this.#key, this.number, buf.subarray(pos, pos + HEADER_BYTES + len));
      this.number++;
      pos += HEADER_BYTES + len;
      if (onPlain(plain) === false) return false;
    }
    if (pos < buf.length) {
      const rest = buf.subarray(pos);
      this.need = rest.length >= HEADER_BYTES ? HEADER_BYTES + rest.readUInt32BE(0) : HEADER_BYTES;
      this.chunks = [rest];
      this.len = rest.length;
    }
    return true;
  }
}

// checkLength(len): a record's length field, or a ProtocolError when it is malformed: read
// before the record's body, so a bad one is refused without waiting for (or buffering) it.
function checkLength(len) {
  if (len < MIN_RECORD_LENGTH || len > MAX_RECORD_LENGTH) {
    throw new ProtocolError(`sealed record length ${len} outside ${MIN_RECORD_LENGTH}..${MAX_RECORD_LENGTH}`);
  }
  return len;
}

module.exports = {
  MAX_PLAIN,
  MIN_RECORD_LENGTH,
  MAX_RECORD_LENGTH,
  derivePsk,
  keyPair,
  x25519,
  clientProof,
  deriveKeys,
  serverProof,
  kxMap,
  KeyExchange,
  acceptExchange,
  sealRecord,
  openRecord,
  RecordWriter,
  RecordReader,
};
