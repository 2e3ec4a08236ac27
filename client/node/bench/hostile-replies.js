#!/usr/bin/env node
'use strict';
// A fuzz loop for connect-sessd's side of a faulty or hostile server: random and mutated reply
// bytes through the reply decoder (codec.decodeReplyBody, for every opcode) and through a real
// Connection over a Unix socket, whose fake server answers HELLO, then each batch of requests
// with well-formed replies mutated at random (frames dropped, duplicated, swapped, cut, bits
// flipped, lengths and ids and statuses rewritten, random bytes, frame lengths near 4 GiB or
// past max_frame, replies before any request, a close or silence after them).
//
//   nice node bench/hostile-replies.js [SECONDS 60] [SEED]
//
// Checks (a PROBLEM each, exit status 1): the decoder throws only ProtocolError; every
// request settles, within its timeout and a second; a request resolves only with a reply the
// server made for it (each GET's data is its own request id with a keyed tag, which a flipped
// bit cannot forge for another id: one user's session handed to another user's request is the
// worst a client can do); no uncaught exception; the heap stays bounded by what was sent.
// Mutated bytes arrive as the fuzzer chose, so a wrong result for the right request (a
// flipped bit inside GET's data) is what an unsealed connection cannot detect, and not a
// problem here; it is exactly what sealing is for.
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const codec = require('../lib/codec');
const { Connection } = require('../lib/connection');

const { OP, STATUS } = codec;
const SECONDS = Number(process.argv[2] || 60);
let seed = Number(process.argv[3] || Date.now() % 1e9);
const startSeed = seed;
// xorshift32: reproducible from SEED.
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const pick = (n) => rnd() % n;
const chance = (p) => rnd() / 0x100000000 < p;
const randBytes = (n) => Buffer.from(Array.from({ length: n }, () => pick(256)));

const problems = [];
function problem(what) {
  problems.push(what);
  console.log(`PROBLEM (seed ${startSeed}): ${what}`);
}

// The tag a GET's data carries: request id, ':', 16 hex of a keyed hash of it.
const TAG_KEY = crypto.randomBytes(32);
const tagOf = (id) => Buffer.from(`${id}:${crypto.createHmac('sha256', TAG_KEY).update(String(id)).digest('hex').slice(0, 16)}`);
function tagId(data) {
  const m = /^(\d+):([0-9a-f]{16})$/.exec(Buffer.from(data).toString('latin1'));
  if (!m || !tagOf(Number(m[1])).equals(Buffer.from(data))) return null;
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------
// Part 1: the decoder alone.

const mp = (v) => Buffer.from(require('@msgpack/msgpack').encode(v));
const GOOD_RESULTS = {
  [OP.GET]: () => mp(randBytes(pick(40))),
  [OP.LOAD]: () => mp([randBytes(pick(20)), pick(5)]),
  [OP.TTL]: () => mp(1 + pick(100000)),
  [OP.COUNT]: () => mp(pick(1000)),
  [OP.LIST]: () => mp([pick(9), Array.from({ length: pick(4) }, () => [randBytes(8), pick(1e6)])]),
  [OP.STATS]: () => mp({ sessions: pick(9), bytes: pick(1e6) }),
  [OP.FLASH_POP]: () => (chance(0.5) ? mp(['a', randBytes(3)]) : mp({ info: ['x'], error: [] })),
  [OP.SET]: () => mp(null),
  [OP.HELLO]: () => mp({ version: 1, max_frame: 4096 + pick(1 << 20), server_id: 'x' }),
};
const OPS = Object.values(OP);

function mutate(buf) {
  const b = Buffer.from(buf);
  const n = 1 + pick(4);
  let out = b;
  for (let i = 0; i < n; i++) {
    switch (pick(6)) {
      case 0: if (out.length) out[pick(out.length)] ^= 1 << pick(8); break;
      case 1: if (out.length) out[pick(out.length)] = [0xc1, 0xdd, 0xdf, 0xdb, 0xc6, 0xff, 0x80, 0x90][pick(8)]; break;
      case 2: out = out.subarray(0, pick(out.length + 1)); break;
      case 3: out = Buffer.concat([out, randBytes(pick(8))]); break;
      case 4: { const at = pick(out.length + 1); out = Buffer.concat([out.subarray(0, at), Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), out.subarray(at)]); break; }
      default: { const at = pick(out.length + 1); out = Buffer.concat([out.subarray(0, at), randBytes(pick(6)), out.subarray(at)]); break; }
    }
  }
  return out;
}

function decoderRound() {
  const op = OPS[pick(OPS.length)];
  const good = (GOOD_RESULTS[op] || GOOD_RESULTS[OP.SET])();
  const status = chance(0.8) ? STATUS.OK : pick(20);
  const result = status === STATUS.OK ? good : status === STATUS.NOT_FOUND ? mp(null) : mp('msg');
  let body = Buffer.concat([mp(3).subarray(0, 0), Buffer.from([0x93]), mp(pick(1000)), mp(status), result]);
  if (chance(0.9)) body = mutate(body);
  if (chance(0.05)) body = randBytes(pick(64));
  try {
    const r = codec.decodeReplyBody(body, op, 4096 + pick(1 << 16));
    if (typeof r.status !== 'number' || r.status < 0) problem(`decoded status ${r.status}`);
  } catch (err) {
    if (!(err instanceof codec.ProtocolError)) problem(`decoder threw ${err.name}: ${err.message} on ${body.toString('hex')} (op ${op})`);
  }
}

// ---------------------------------------------------------------------------------------
// Part 2: a Connection against a fake server.

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-replies-'));
const sock = path.join(dir, 's.sock');
// What the server does with the next connection: set by each round.
let plan = null;

function frame(body) {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

// replyFor(req): a well-formed reply to a decoded request, GET's data its tag.
function replyFor(req) {
  const id = req.request_id;
  let result;
  switch (req.op) {
    case OP.GET: result = mp(tagOf(id)); break;
    case OP.TTL: result = mp(1000); break;
    case OP.COUNT: result = mp(3); break;
    case OP.FLASH_POP: result = req.type === null ? mp({ info: [String(id)] }) : mp([String(id)]); break;
    default: result = mp(null);
  }
  if (chance(0.1)) return codec.encodeReply(id, STATUS.NOT_FOUND, mp(null));
  if (chance(0.05)) return codec.encodeReply(id, [STATUS.LIMIT, STATUS.CONFLICT, STATUS.NO_MEMORY, 77, 0xffffffff][pick(5)], mp('no'));
  return codec.encodeReply(id, STATUS.OK, result);
}

// garble(frames): the server's mutation of the replies to one batch, as bytes.
function garble(frames, maxFrame) {
  let fs2 = frames.slice();
  const n = pick(4);
  for (let i = 0; i < n; i++) {
    switch (pick(11)) {
      case 0: if (fs2.length) fs2.splice(pick(fs2.length), 1); break; // dropped
      case 1: if (fs2.length) { const k = pick(fs2.length); fs2.splice(k, 0, fs2[k]); } break; // duplicated
      case 2: if (fs2.length > 1) { const a = pick(fs2.length); const b = pick(fs2.length); [fs2[a], fs2[b]] = [fs2[b], fs2[a]]; } break; // out of order
      case 3: if (fs2.length) { const k = pick(fs2.length); fs2[k] = mutate(fs2[k]); } break; // bits, cuts inside a frame
      case 4: if (fs2.length) { const k = pick(fs2.length); if (fs2[k].length < 4) break; const f = Buffer.from(fs2[k]); f.writeUInt32BE(Math.min(0xffffffff, [0xffffffff, 0xfffffff0, maxFrame + 1, 0, f.length + 5, Math.max(0, f.length - 9)][pick(6)])); fs2[k] = f; } break; // frame length lies
      case 5: fs2.push(codec.encodeReply(1 + pick(100), STATUS.OK, mp(tagOf(1 + pick(100))))); break; // a reply for an id never sent (or sent)
      case 6: fs2.unshift(codec.encodeReply(pick(3), STATUS.OK, mp(null))); break; // before any
      case 7: fs2.push(randBytes(pick(40))); break;
      case 8: if (fs2.length) { const k = pick(fs2.length); const body = Buffer.from(fs2[k].subarray(4)); fs2[k] = frame(Buffer.concat([Buffer.from([0x93]), mp(1 + pick(100)), body.subarray(1 + mpLen(body.subarray(1)))])); } break; // id rewritten
      case 9: fs2.push(codec.encodeReply(0, STATUS.SHUTTING_DOWN, mp('bye'))); break;
      default: if (fs2.length) { const k = pick(fs2.length); fs2[k] = fs2[k].subarray(0, pick(fs2[k].length)); } break; // cut
    }
  }
  return Buffer.concat(fs2);
}

// mpLen(b): the length of the uint at b's start (shortest forms only; else 1).
function mpLen(b) {
  const t = b[0];
  return t === 0xcc ? 2 : t === 0xcd ? 3 : t === 0xce ? 5 : t === 0xcf ? 9 : 1;
}

const server = net.createServer((s) => {
  const my = plan;
  let buf = Buffer.alloc(0);
  let helloDone = false;
  let reqs = [];
  s.on('error', () => {});
  s.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (buf.length < 4 + len) break;
      let req;
      try {
        req = codec.decodeRequestBody(buf.subarray(4, 4 + len));
      } catch (err) {
        problem(`the client sent a malformed request: ${err.message}`);
        s.destroy();
        return;
      }
      buf = buf.subarray(4 + len);
      if (!helloDone) {
        helloDone = true;
        if (my.helloBytes) s.write(my.helloBytes);
        else s.write(codec.encodeReply(req.request_id, STATUS.OK, mp({ version: 1, max_frame: my.maxFrame, server_id: 'fake' })));
        continue;
      }
      reqs.push(req);
      if (reqs.length === my.batch) {
        const out = garble(reqs.map(replyFor), my.maxFrame);
        reqs = [];
        if (my.trickle && out.length < 64) {
          let i = 0;
          const t = setInterval(() => {
            if (i >= out.length || s.destroyed) { clearInterval(t); return; }
            s.write(out.subarray(i, i + 1));
            i++;
          }, 5);
        } else s.write(out);
        if (my.end === 1) s.end();
        else if (my.end === 2) s.destroy();
      }
    }
  });
});

async function connectionRound() {
  const batch = 1 + pick(6);
  plan = {
    batch,
    maxFrame: [4096, 65536, 1 << 20, 2 ** 31][pick(4)],
    end: pick(3), // 0: stays open (silence), 1: half-close, 2: close
    trickle: chance(0.05),
    helloBytes: chance(0.05) ? mutate(codec.encodeReply(1, STATUS.OK, mp({ version: 1, max_frame: 4096 }))) : null,
  };
  const timeoutMs = 150;
  const conn = new Connection({ url: `unix:${sock}`, timeoutMs, connectTimeoutMs: 300 });
  conn.on('error', () => {});
  const started = Date.now();
  const ops = [];
  for (let i = 0; i < batch; i++) {
    const kind = pick(5);
    const op = [OP.GET, OP.SET, OP.TTL, OP.COUNT, OP.FLASH_POP][kind];
    const args = op === OP.GET || op === OP.TTL ? [null, 'sid' + i]
      : op === OP.SET ? [null, 'sid' + i, Buffer.from('data'), 1000]
        : op === OP.COUNT ? [null]
          : [null, 'sid' + i, chance(0.5) ? 'info' : null];
    const id = conn.nextId; // the id request() gives it
    ops.push({ op, p: conn.request(op, args), id });
  }
  const settled = await Promise.allSettled(ops.map((o) => o.p));
  const took = Date.now() - started;
  if (took > timeoutMs + 300 + 1000) problem(`a batch took ${took} ms to settle (timeout ${timeoutMs}, connect ${300})`);
  settled.forEach((r, i) => {
    const { op, id } = ops[i];
    if (r.status === 'rejected') {
      const e = r.reason;
      if (!(e instanceof Error) || typeof e.code !== 'string') problem(`a request rejected with a non-error or without a code: ${e && e.stack}`);
      else if (e instanceof TypeError || e instanceof RangeError) problem(`a request rejected with ${e.name}: ${e.message}`);
      return;
    }
    const { status, result } = r.value;
    if (op === OP.GET && status === STATUS.OK) {
      const who = tagId(result);
      if (who !== null && who !== id) problem(`GET request ${id} was handed the reply made for request ${who}`);
    }
    if (op === OP.FLASH_POP && status === STATUS.OK) {
      const msgs = Array.isArray(result) ? result : Object.values(result || {}).flat();
      for (const m of msgs) if (typeof m === 'string' && /^\d+$/.test(m) && Number(m) !== id && Number(m) > 1) problem(`FLASH_POP request ${id} was handed the messages made for request ${m}`);
    }
  });
  conn.close();
}

async function main() {
  await new Promise((r) => server.listen(sock, r));
  process.on('uncaughtException', (err) => problem(`uncaught ${err.stack}`));
  process.on('unhandledRejection', (err) => problem(`unhandled rejection ${err && err.stack}`));
  const end = Date.now() + SECONDS * 1000;
  let decoded = 0;
  let rounds = 0;
  let maxRss = 0;
  while (Date.now() < end && problems.length < 20) {
    for (let i = 0; i < 200; i++) decoderRound();
    decoded += 200;
    await connectionRound();
    rounds++;
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
  }
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`seed ${startSeed}: ${SECONDS} s, ${decoded} decoder inputs, ${rounds} connection rounds, max RSS ${(maxRss / 1048576).toFixed(0)} MiB, ${problems.length} problems`);
  if (maxRss > 512 * 1048576) problem(`RSS reached ${maxRss} bytes`);
  process.exit(problems.length ? 1 : 0);
}

main();
