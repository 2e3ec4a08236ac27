'use strict';
// Sealed connections (PROTOCOL.md "Sealed connections") without the daemon: the worked
// values of protocol/seal-vectors.json (written with Python's cryptography, independently of
// this code), the record layer's edges, and fake servers that play the exchange right or
// wrong: a server that cannot prove it holds the secret gets nothing after the HELLO frame;
// a record that does not authenticate fails the connection, not the process.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { encode, decode } = require('@msgpack/msgpack');
const { Client, codec } = require('..');
const { Connection } = require('../lib/connection');
const seal = require('../lib/seal');
const { once, sleep, waitFor, mostConnections, REPO_DIR } = require('./helpers');

const { OP, STATUS } = codec;
const V = JSON.parse(fs.readFileSync(path.join(REPO_DIR, 'protocol/seal-vectors.json'), 'utf8'));
const h = (x) => Buffer.from(x, 'hex');
const mp = (v) => Buffer.from(encode(v));

const SECRET = 'a-fake-servers-secret-0123456789abcdef';
const WRONG = 'not-the-fake-servers-secret-fedcba9876';

const isProtocolError = (err) => err && err.name === 'ProtocolError' && err.code === 'ESESSD_PROTOCOL';
// kxOf(peer): the client's ephemeral public key, from the HELLO a fake server got, in hex.
const kxOf = (p) => Buffer.from(decode(h(codec.decodeRequest(p.bytes.subarray(0, p.helloLength)).auth_hex)).kx).toString('hex');

test('seal vectors: psk, keys, proofs, auth and kx, and records, as seal-vectors.json', () => {
  const secret = h(V.secret_hex);
  const psk = seal.derivePsk(secret);
  assert.equal(psk.toString('hex'), V.psk_hex);
  const c = seal.keyPair(h(V.client_secret_hex));
  const s = seal.keyPair(h(V.server_secret_hex));
  assert.equal(c.publicKey.toString('hex'), V.client_public_hex);
  assert.equal(s.publicKey.toString('hex'), V.server_public_hex);
  assert.equal(seal.clientProof(psk, c.publicKey).toString('hex'), V.client_proof_hex);
  assert.equal(seal.x25519(c.privateKey, s.publicKey).toString('hex'), V.shared_hex);
  assert.equal(seal.x25519(s.privateKey, c.publicKey).toString('hex'), V.shared_hex);
  const keys = seal.deriveKeys(psk, h(V.shared_hex), c.publicKey, s.publicKey);
  assert.equal(keys.c2s.toString('hex'), V.key_c2s_hex);
  assert.equal(keys.s2c.toString('hex'), V.key_s2c_hex);
  assert.equal(keys.confirm.toString('hex'), V.key_confirm_hex);
  assert.equal(seal.serverProof(keys.confirm, c.publicKey, s.publicKey).toString('hex'), V.server_proof_hex);

  // The client's exchange as a connection runs it: HELLO's auth, byte for byte, inside the
  // HELLO frame as it is.
  const kx = new seal.KeyExchange(secret, h(V.client_secret_hex));
  assert.equal(kx.auth.toString('hex'), V.auth_hex);
  const hello = codec.encodeRequest(OP.HELLO, 1, [codec.PROTOCOL_VERSION, 'vectors', new codec.RawValue(kx.auth)]);
  assert.equal(codec.decodeRequest(hello).auth_hex, V.auth_hex);
  // The server's side (the fake servers below use it) gives the reply's kx.
  const server = seal.acceptExchange(secret, decode(h(V.auth_hex)), h(V.server_secret_hex));
  assert.ok(server);
  assert.equal(server.kx.toString('hex'), V.kx_hex);
  // The client accepts that kx, once.
  const done = kx.finish({ auth: true, kx: decode(h(V.kx_hex)) });
  assert.equal(done.why, undefined);
  assert.match(kx.finish({ auth: true, kx: decode(h(V.kx_hex)) }).why, /already used/);

  // Records: each side's writer numbers them from 0 and gives the vectors' bytes; the other
  // side's reader opens them. sealRecord/openRecord, with explicit numbers, agree.
  const writers = { c2s: done.writer, s2c: server.writer };
  const readers = { c2s: server.reader, s2c: done.reader };
  const rawKeys = { c2s: keys.c2s, s2c: keys.s2c };
  for (const r of V.records) {
    const what = `${r.direction} record ${r.number}`;
    assert.equal(writers[r.direction].number, r.number, what);
    assert.equal(writers[r.direction].seal(h(r.plain_hex)).toString('hex'), r.record_hex, what);
    assert.equal(seal.sealRecord(rawKeys[r.direction], r.number, h(r.plain_hex)).toString('hex'), r.record_hex, what);
    assert.equal(seal.openRecord(rawKeys[r.direction], r.number, h(r.record_hex)).toString('hex'), r.plain_hex, what);
    const got = [];
    assert.equal(readers[r.direction].push(h(r.record_hex), (p) => got.push(p.toString('hex'))), true);
    assert.deepEqual(got, [r.plain_hex], what);
  }

  // And what must not open: another number, another key, a changed byte (header, body, tag).
  const rec = h(V.records[0].record_hex);
  assert.throws(() => seal.openRecord(keys.c2s, 1, rec), isProtocolError);
  assert.throws(() => seal.openRecord(keys.s2c, 0, rec), isProtocolError);
  for (const i of [3, 4, rec.length - 1]) {
    const bad = Buffer.from(rec);
    bad[i] ^= 1;
    assert.throws(() => seal.openRecord(keys.c2s, 0, bad), isProtocolError, `byte ${i} changed`);
  }
});

test('seal vectors: a kx reply the client must refuse', () => {
  const secret = h(V.secret_hex);
  const good = decode(h(V.kx_hex));
  const flipped = { key: good.key, proof: Buffer.from(good.proof).map((b, i) => (i === 0 ? b ^ 1 : b)) };
  const BAD = {
    'no auth: true': [{ auth: null, kx: good }, /no auth: true/],
    'auth: 1': [{ auth: 1, kx: good }, /no auth: true/],
    'no kx': [{ auth: true }, /no key exchange/],
    'kx nil': [{ auth: true, kx: null }, /malformed kx/],
    'kx an array': [{ auth: true, kx: [good.key, good.proof] }, /malformed kx/],
    'kx a bin': [{ auth: true, kx: good.key }, /malformed kx/],
    'key of 31 bytes': [{ auth: true, kx: { key: good.key.subarray(1), proof: good.proof } }, /malformed kx/],
    'proof of 33 bytes': [{ auth: true, kx: { key: good.key, proof: Buffer.concat([good.proof, Buffer.from([0])]) } }, /malformed kx/],
    'proof a str': [{ auth: true, kx: { key: good.key, proof: 'x'.repeat(32) } }, /malformed kx/],
    'no proof': [{ auth: true, kx: { key: good.key } }, /malformed kx/],
    'a wrong proof': [{ auth: true, kx: flipped }, /wrong kx proof/],
    // A low-order point (here the identity): no shared key, whatever the proof.
    'key all zero': [{ auth: true, kx: { key: Buffer.alloc(32), proof: good.proof } }, /no shared key/],
  };
  for (const [name, [hello, why]] of Object.entries(BAD)) {
    const kx = new seal.KeyExchange(secret, h(V.client_secret_hex));
    const done = kx.finish(hello);
    assert.match(done.why || '', why, name);
    assert.equal(done.writer, undefined, name);
  }
  // The right proof for another client key (a replayed reply) is a wrong proof.
  const other = new seal.KeyExchange(secret);
  assert.match(other.finish({ auth: true, kx: good }).why, /wrong kx proof/);
  // So is a server with another secret.
  const impostor = new seal.KeyExchange(Buffer.from('another secret, 32 bytes long...'), h(V.client_secret_hex));
  assert.match(impostor.finish({ auth: true, kx: good }).why, /wrong kx proof/);
});

test('seal records: split at 65536 bytes, lengths outside 17..65552 refused from the header', () => {
  const key = h(V.key_c2s_hex);
  const w = new seal.RecordWriter(key);
  const r = new seal.RecordReader(key);
  const plain = Buffer.alloc(2 * 65536 + 1);
  for (let i = 0; i < plain.length; i++) plain[i] = (i * 7) & 0xff;
  const records = w.seal(plain);
  assert.equal(w.number, 3);
  assert.equal(records.length, plain.length + 3 * 20);
  assert.equal(records.readUInt32BE(0), 65536 + 16);
  assert.equal(records.readUInt32BE(4 + 65536 + 16), 65536 + 16);
  assert.equal(records.readUInt32BE(2 * (4 + 65536 + 16)), 1 + 16);
  // Fed in uneven pieces, the records come out whole and in order.
  const got = [];
  for (let p = 0; p < records.length; p += 9973) r.push(records.subarray(p, p + 9973), (x) => got.push(x));
  assert.deepEqual(got.map((x) => x.length), [65536, 65536, 1]);
  assert.ok(Buffer.concat(got).equals(plain));
  // onPlain returning false stops the reader.
  const r2 = new seal.RecordReader(key);
  const w2 = new seal.RecordWriter(key);
  const two = Buffer.concat([w2.seal(Buffer.from('a')), w2.seal(Buffer.from('b'))]);
  let calls = 0;
  assert.equal(r2.push(two, () => ++calls && false), false);
  assert.equal(calls, 1);
  // A length field outside 17..65552 fails as soon as the 4 header bytes are there.
  for (const len of [0, 16, 65553, 0xffffffff]) {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(len);
    assert.throws(() => new seal.RecordReader(key).push(header, () => true), isProtocolError, `length ${len}`);
    const split = new seal.RecordReader(key);
    split.push(header.subarray(0, 2), () => true);
    assert.throws(() => split.push(header.subarray(2), () => true), isProtocolError, `length ${len}, split`);
  }
  assert.throws(() => seal.sealRecord(key, 0, Buffer.alloc(0)), RangeError);
  assert.throws(() => seal.sealRecord(key, 0, Buffer.alloc(65537)), RangeError);
});

// ---------------------------------------------------------------------------------------
// Fake servers.

// sealPeer(t, { hello, onRequest }): a fake server on a Unix socket. It reads the client's
// HELLO in the clear and answers it with hello(req, peer): { result (the HELLO result's
// MessagePack bytes), exchange (an acceptExchange result, or null: then the peer stops
// there), after (optional: bytes sent in the same write as the reply) }. After that it opens the client's records and calls onRequest(peer, req) for each
// request they carry. Each peer (connection) keeps every byte the client sent (bytes), the
// HELLO frame's length (helloLength), the records opened (records) and their plaintext
// length (plainBytes), and closed: a promise resolved when the client closes.
async function sealPeer(t, { hello, onRequest = () => {} }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-seal-'));
  const peers = [];
  const server = net.createServer((socket) => {
    const peer = { socket, bytes: Buffer.alloc(0), helloLength: 0, exchange: null, records: 0, plainBytes: 0, requests: [] };
    peer.closed = new Promise((r) => socket.on('close', r));
    socket.on('error', () => {});
    peers.push(peer);
    let frames = Buffer.alloc(0); // plaintext not yet parsed into frames
    const onFrames = (bytes) => {
      frames = Buffer.concat([frames, bytes]);
      while (frames.length >= 4 && frames.length >= 4 + frames.readUInt32BE(0)) {
        const n = 4 + frames.readUInt32BE(0);
        const req = codec.decodeRequest(frames.subarray(0, n));
        frames = frames.subarray(n);
        peer.requests.push(req);
        onRequest(peer, req);
      }
    };
    socket.on('data', (d) => {
      peer.bytes = Buffer.concat([peer.bytes, d]);
      if (!peer.helloLength) {
        if (peer.bytes.length < 4 || peer.bytes.length < 4 + peer.bytes.readUInt32BE(0)) return;
        peer.helloLength = 4 + peer.bytes.readUInt32BE(0);
        const req = codec.decodeRequest(peer.bytes.subarray(0, peer.helloLength));
        const { result, exchange, after } = hello(req, peer);
        socket.write(Buffer.concat([codec.encodeReply(req.request_id, STATUS.OK, result), after || Buffer.alloc(0)]));
        peer.exchange = exchange;
        d = peer.bytes.subarray(peer.helloLength);
        if (!exchange || d.length === 0) return;
      }
      if (!peer.exchange) return;
      try {
        peer.exchange.reader.push(d, (plain) => {
          peer.records++;
          peer.plainBytes += plain.length;
          onFrames(plain);
        });
      } catch (err) {
        peer.error = err;
        socket.destroy();
      }
    });
  });
  const sockPath = path.join(dir, 'peer.sock');
  await new Promise((r) => server.listen(sockPath, r));
  t.after(() => {
    for (const p of peers) p.socket.destroy();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { url: `unix:${sockPath}`, peers };
}

const helloMap = (extra) => mp({ version: 1, server: 'fake', server_id: '0'.repeat(32), max_frame: 1048576, auth: true, ...extra });

// The right answer: the exchange done with the secret.
function rightHello(req) {
  const exchange = seal.acceptExchange(SECRET, decode(h(req.auth_hex)));
  assert.ok(exchange, 'the client proved it holds the secret');
  return { result: helloMap({ kx: { key: exchange.serverPublic, proof: exchange.proof } }), exchange };
}

// reply(peer, req, status, resultBytes): a sealed reply to req.
function reply(peer, req, status = STATUS.OK, result = mp(null)) {
  peer.socket.write(peer.exchange.writer.seal(codec.encodeReply(req.request_id, status, result)));
}

test('seal: a server that does not prove it holds the secret gets nothing after HELLO', async (t) => {
  // What a server that does not hold the secret can answer.
  const impostorKx = (req) => {
    // Its best try: a real exchange, with the secret it has.
    const cpk = Buffer.from(decode(h(req.auth_hex)).kx);
    const pair = seal.keyPair();
    const keys = seal.deriveKeys(seal.derivePsk(WRONG), seal.x25519(pair.privateKey, cpk), cpk, pair.publicKey);
    return { key: pair.publicKey, proof: seal.serverProof(keys.confirm, cpk, pair.publicKey) };
  };
  const CASES = {
    'a wrong secret': [(req) => helloMap({ kx: impostorKx(req) }), /wrong kx proof/],
    'a replayed kx': [() => helloMap({ kx: decode(h(V.kx_hex)) }), /wrong kx proof/],
    'a random proof': [() => helloMap({ kx: { key: seal.keyPair().publicKey, proof: Buffer.alloc(32, 7) } }), /wrong kx proof/],
    'no kx (a plain server)': [() => helloMap({}), /no key exchange/],
    // Names within 47 bytes: HELLO cuts a longer one short (the identity follows it).
    'auth nil, no kx (no secret, or not sessd)': [() => helloMap({ auth: null }), /no auth: true/],
    'auth nil with the right kx': [(req) => helloMap({ auth: null, kx: rightKx(req) }), /no auth: true/],
    'a malformed kx': [() => helloMap({ kx: { key: Buffer.alloc(31, 1), proof: Buffer.alloc(32) } }), /malformed kx/],
  };
  function rightKx(req) {
    const ex = seal.acceptExchange(SECRET, decode(h(req.auth_hex)));
    return { key: ex.serverPublic, proof: ex.proof };
  }
  const answers = new Map();
  const { url, peers } = await sealPeer(t, {
    // client_name up to its first NUL: the process identity follows it.
    hello: (req) => ({ result: answers.get(req.client_name.split('\0')[0])(req), exchange: null }),
  });
  for (const [name, [answer, why]] of Object.entries(CASES)) {
    answers.set(name, answer);
    const conn = new Connection({ url, clientName: name, auth: SECRET });
    t.after(() => conn.close());
    assert.equal(conn.sealed, true);
    const closed = once(conn, 'close', 3000);
    // Requests made before the reply, small and large: held back, then refused.
    const early = [conn.request(OP.PING, []), conn.request(OP.SET, [null, 'x', Buffer.alloc(100000), 60000]), conn.request(OP.GET, [null, 'x'])];
    const err = await closed;
    assert.equal(err.code, 'ESESSD_AUTH', `${name}: ${err.stack}`);
    assert.match(err.message, why, name);
    assert.match(err.message, /did not prove it holds the shared secret/, name);
    for (const p of early) await assert.rejects(p, (e) => e.code === 'ESESSD_AUTH', name);
    const peer = peers[peers.length - 1];
    await peer.closed;
    assert.ok(peer.helloLength > 0, name);
    assert.equal(peer.bytes.length, peer.helloLength, `${name}: the server got ${peer.bytes.length - peer.helloLength} bytes after the HELLO frame`);
  }
});

test('seal: a Client refused by an impostor says ESESSD_AUTH and backs off', async (t) => {
  const { url, peers } = await sealPeer(t, { hello: () => ({ result: helloMap({}), exchange: null }) });
  const c = new Client({ url, auth: SECRET, poolSize: 1 });
  t.after(() => c.terminate());
  const err = await once(c, 'disconnect');
  const failedAt = Date.now();
  assert.equal(err.code, 'ESESSD_AUTH');
  await assert.rejects(c.get(null, 'x'), (e) => e.code === 'ESESSD_AUTH');
  await sleep(500);
  c.terminate();
  const elapsed = Date.now() - failedAt;
  // reconnectMinMs 50, doubling, jitter in the upper half (25-50, 50-100, 100-200, 200-400
  // ms): the first attempt and at most 5 more in the 500 ms after it failed, one more for a
  // timer a millisecond early. The bound follows the time that passed: on a loaded machine
  // the sleep lasts longer (CI's grading machine held processes off the CPU for 359 ms at a
  // time), and the pool has tried more by then.
  const most = mostConnections(elapsed, 50, 2000) + 1;
  assert.ok(peers.length >= 2 && peers.length <= most, `${peers.length} attempts in ${elapsed} ms (at most ${most} with the backoff)`);
  // Each attempt is a fresh exchange (a fresh ephemeral key), and none sent anything after HELLO.
  const answered = peers.filter((p) => p.helloLength);
  assert.equal(new Set(answered.map(kxOf)).size, answered.length);
  for (const p of answered) {
    await p.closed;
    assert.equal(p.bytes.length, p.helloLength);
  }
});

test('seal: requests and replies travel in records, batched, across record and frame boundaries', async (t) => {
  // Replies are sealed in the shape the request's id asks for: 'bytes' splits the reply
  // stream into 1-byte records, 'one' puts a reply in one record with the next ones (sent
  // when 'flush' comes), 'trickle' writes the sealed bytes 3 at a time.
  let held = [];
  const { url, peers } = await sealPeer(t, {
    hello: rightHello,
    onRequest: (peer, req) => {
      if (req.op === OP.PING) return reply(peer, req);
      const frame = codec.encodeReply(req.request_id, STATUS.OK, mp(Buffer.from(`data of ${req.id}`)));
      if (req.id.startsWith('bytes')) {
        for (const b of frame) peer.socket.write(peer.exchange.writer.seal(Buffer.from([b])));
      } else if (req.id.startsWith('one')) {
        held.push(frame);
      } else if (req.id === 'flush') {
        held.push(frame);
        peer.socket.write(peer.exchange.writer.seal(Buffer.concat(held)));
        held = [];
      } else if (req.id.startsWith('trickle')) {
        // One trickle after the other: interleaved, their bytes would garble the stream.
        const sealed = peer.exchange.writer.seal(frame);
        peer.trickle = (peer.trickle || Promise.resolve()).then(async () => {
          for (let i = 0; i < sealed.length; i += 3) {
            peer.socket.write(sealed.subarray(i, i + 3));
            await sleep(1);
          }
        });
      } else if (req.id.startsWith('big')) {
        // A 300 KB reply: 5 records, frames and records unaligned.
        reply(peer, req, STATUS.OK, mp(Buffer.alloc(300000, req.id.length)));
      }
      return undefined;
    },
  });
  const c = new Client({ url, auth: SECRET, poolSize: 1 });
  t.after(() => c.terminate());
  const hello = await c.ready();
  assert.equal(hello.auth, true);
  const peer = peers[0];
  const got = await Promise.all(['bytes1', 'bytes2', 'one1', 'one2', 'one3', 'flush', 'trickle1', 'trickle2'].map((id) => c.get(null, id)));
  assert.deepEqual(got.map(String), ['bytes1', 'bytes2', 'one1', 'one2', 'one3', 'flush', 'trickle1', 'trickle2'].map((id) => `data of ${id}`));
  const big = await c.get(null, 'big');
  assert.equal(big.length, 300000);

  // Batching: 200 requests made in one tick leave as one record (they fit in 65536 bytes),
  // and a 200 KB SET with them as as few records as the bytes need.
  const before = { records: peer.records, plain: peer.plainBytes };
  await Promise.all(Array.from({ length: 200 }, () => c.ping()));
  assert.equal(peer.records - before.records, 1, 'one record for 200 pipelined PINGs');
  const mid = { records: peer.records, plain: peer.plainBytes };
  const pings = Array.from({ length: 50 }, () => c.ping());
  c.set(null, 'large', Buffer.alloc(200000, 1), 60000).catch(() => {});
  await Promise.all(pings);
  await waitFor(() => peer.requests.some((r) => r.id === 'large'), 'the SET');
  const plain = peer.plainBytes - mid.plain;
  assert.ok(plain > 200000);
  assert.equal(peer.records - mid.records, Math.ceil(plain / 65536));
  assert.equal(peer.error, undefined);
});

test('seal: records in the same chunk as the HELLO reply are read as records', async (t) => {
  // A server may drop a connection with BUSY (request id 0) at any time: here at once after
  // the HELLO reply, sealed, in the same write. Read as a plain frame, it would be garbage.
  const { url } = await sealPeer(t, {
    hello: (req) => {
      const r = rightHello(req);
      return { ...r, after: r.exchange.writer.seal(codec.encodeReply(0, STATUS.BUSY, mp('too much held'))) };
    },
  });
  const conn = new Connection({ url, auth: SECRET });
  t.after(() => conn.close());
  const closed = once(conn, 'close', 3000);
  const ping = conn.request(OP.PING, []); // held until the HELLO reply, then answered BUSY
  await assert.rejects(ping, (err) => err.code === 'ESESSD_BUSY' && /too much held/.test(err.message));
  assert.equal((await closed).code, 'ESESSD_BUSY');
});

test('seal: a record that does not authenticate fails the connection, not the process', async (t) => {
  // Each case answers the first request (GET of the case's name) with a bad record; a second
  // request waits behind it.
  const CASES = {
    'a changed tag': (peer, frame) => flip(peer.exchange.writer.seal(frame), -1),
    'a changed ciphertext': (peer, frame) => flip(peer.exchange.writer.seal(frame), 6),
    'a changed length': (peer, frame) => {
      const r = peer.exchange.writer.seal(frame);
      r.writeUInt32BE(r.readUInt32BE(0) - 1, 0);
      return r.subarray(0, r.length - 1);
    },
    'a skipped number': (peer, frame) => {
      peer.exchange.writer.number++;
      return peer.exchange.writer.seal(frame);
    },
    'a replayed record': (peer, frame) => {
      const r = peer.exchange.writer.seal(frame);
      return Buffer.concat([r, r]); // the first answers GET, the replay fails
    },
    'the client\'s own key (reflected)': (peer, frame) => new seal.RecordWriter(peer.exchange.keys.c2s).seal(frame),
    'no record, a plain frame': (peer, frame) => frame,
    'a length of 16 (empty)': () => Buffer.from('00000010' + '00'.repeat(16), 'hex'),
    'a length of 65553': () => Buffer.from('00010011', 'hex'),
  };
  function flip(buf, i) {
    buf[i < 0 ? buf.length + i : i] ^= 0x40;
    return buf;
  }
  const { url, peers } = await sealPeer(t, {
    hello: rightHello,
    onRequest: (peer, req) => {
      if (req.op !== OP.GET) return;
      const frame = codec.encodeReply(req.request_id, STATUS.OK, mp(Buffer.from('ok')));
      if (!peer.answered) {
        peer.answered = true;
        peer.socket.write(CASES[req.id](peer, frame));
      }
    },
  });
  for (const name of Object.keys(CASES)) {
    const conn = new Connection({ url, auth: SECRET, timeoutMs: 3000 });
    t.after(() => conn.close());
    await once(conn, 'ready', 3000);
    const closed = once(conn, 'close', 3000);
    const first = conn.request(OP.GET, [null, name]);
    const second = conn.request(OP.GET, [null, 'behind']);
    const [r1, r2] = await Promise.allSettled([first, second]);
    const err = await closed;
    assert.ok(isProtocolError(err), `${name}: ${err && err.stack}`);
    assert.equal(conn.state, 'closed', name);
    if (name === 'a replayed record') {
      // The first copy was a good reply; the replay broke the connection under the second.
      assert.equal(r1.status, 'fulfilled', name);
      assert.ok(isProtocolError(r2.reason), name);
    } else {
      assert.ok(isProtocolError(r1.reason), `${name}: ${r1.reason && r1.reason.stack}`);
      assert.equal(r2.reason.code, 'ESESSD_CLOSED', name);
    }
    await peers[peers.length - 1].closed;
  }
});

test('seal: a broken connection reconnects with a fresh exchange, record numbers from 0', async (t) => {
  let broken = 0;
  const { url, peers } = await sealPeer(t, {
    hello: rightHello,
    onRequest: (peer, req) => {
      if (req.op === OP.GET && req.id === 'break' && broken++ === 0) {
        peer.socket.write(Buffer.from('0000001100', 'hex')); // the start of a record, then gone
        peer.socket.destroy();
        return;
      }
      reply(peer, req, STATUS.OK, req.op === OP.GET ? mp(Buffer.from('fine')) : mp(null));
    },
  });
  const c = new Client({ url, auth: SECRET, poolSize: 1, reconnectMinMs: 10 });
  t.after(() => c.terminate());
  await c.ready();
  await c.ping();
  // The read broken under it is sent again (it changes nothing), on the new connection.
  assert.equal(String(await c.get(null, 'break')), 'fine');
  assert.equal(c.slots[0].conn.state, 'ready');
  assert.equal(peers.length, 2);
  // The second connection's exchange is its own, and its first record was number 0 (the
  // peer's reader, fresh, opened it).
  assert.notEqual(kxOf(peers[0]), kxOf(peers[1]));
  assert.equal(peers[1].records, 1);
  assert.equal(peers[1].error, undefined);
});

test('seal: the options', () => {
  const url = 'unix:/nonexistent';
  const conns = [];
  const conn = (o) => {
    const c = new Connection({ url, ...o });
    c.on('close', () => {});
    conns.push(c);
    return c;
  };
  try {
    assert.equal(conn({ auth: SECRET }).sealed, true);
    assert.equal(conn({ auth: SECRET, seal: true }).sealed, true);
    assert.equal(conn({ auth: SECRET, seal: false }).sealed, false);
    assert.equal(conn({}).sealed, false);
    assert.equal(conn({ seal: false }).sealed, false);
  } finally {
    for (const c of conns) c.close();
  }
  assert.throws(() => new Connection({ url, seal: true }), TypeError);
  assert.throws(() => new Connection({ url, auth: SECRET, seal: 'yes' }), TypeError);
  assert.throws(() => new Connection({ url, auth: SECRET, seal: 1 }), TypeError);
  const c = new Client({ url, auth: SECRET, poolSize: 1 });
  c.terminate();
  assert.equal(c.seal, true);
  const p = new Client({ url, auth: SECRET, seal: false, poolSize: 1 });
  p.terminate();
  assert.equal(p.seal, false);
});
