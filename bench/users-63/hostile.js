'use strict';
// Scenario 3's hostile clients, against a running sessd (the shop beside them):
//   scanner:  200 connections sending a port scanner's probes (HTTP, TLS ClientHello, random)
//   flood:    --flood connections (10,000) opened and held silent for --hold seconds
//   churn:    (only with --only churn) connections opened for --hold seconds as fast as they
//             open, none closed: past --max-connections sessd closes the oldest silent ones
//   huge:     a frame header announcing 4 GiB - 1, then 64 KiB of body, repeated 50 times
//   trickle:  20 connections each sending one byte a second (a HELLO's bytes)
//   replay:   a sealed connection's client bytes recorded through a proxy (a SET of a
//             session, then its value changed by another client) replayed on 20 new
//             connections: the session must keep the later value
//   replay-inline: one record of a live sealed connection sent twice by a man in the middle
//             (a FLASH_PUSH): it must not be carried out twice (runs first, before the others)
// Prints what each got back (closed how and when) and whether the replay changed anything.
// usage: node hostile.js --tcp PORT --auth FILE [--flood 10000] [--hold 20] [--only a,b]
const net = require('net');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Client } = require(path.resolve(__dirname, '../../client/node'));

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const port = Number(args.tcp);
const auth = fs.readFileSync(args.auth);
const only = args.only ? args.only.split(',') : null;
const want = (n) => !only || only.includes(n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function conn(onData) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const r = { s, got: 0, closed: null, opened: Date.now(), err: null };
    s.on('connect', () => resolve(r));
    s.on('data', (d) => { r.got += d.length; if (onData) onData(d); });
    s.on('error', (e) => { r.err = e.code; resolve(r); });
    s.on('close', () => { r.closed = Date.now() - r.opened; });
  });
}

async function scanner() {
  const probes = [Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.from('160301002c010000280303', 'hex'),
    Buffer.from('SSH-2.0-OpenSSH_9.0\r\n'), Buffer.alloc(0)];
  let closed = 0; let errors = 0;
  for (let i = 0; i < 200; i++) {
    const p = i % 5 === 4 ? crypto.randomBytes(1 + (i % 300)) : probes[i % 4];
    const r = await conn();
    if (r.err) { errors++; continue; }
    r.s.write(p);
    await sleep(20);
    if (r.closed !== null) closed++;
    r.s.destroy();
  }
  return { probes: 200, closed_by_sessd_within_20ms: closed, connect_errors: errors };
}

async function flood(n, holdS) {
  const socks = [];
  let errors = 0;
  for (let i = 0; i < n; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => conn()));
    for (const r of batch) { if (r.err) errors++; else socks.push(r); }
  }
  const openedAt = Date.now();
  await sleep(holdS * 1000);
  const closedBySessd = socks.filter((r) => r.closed !== null).length;
  socks.forEach((r) => r.s.destroy());
  return { opened: socks.length, connect_errors: errors, closed_by_sessd_while_held: closedBySessd, held_s: (Date.now() - openedAt) / 1000 };
}

// churn: keep opening connections for holdS seconds, never closing one, as fast as they
// open (sessd closes the oldest silent ones to make room once at --max-connections).
async function churn(holdS) {
  const end = Date.now() + holdS * 1000;
  let opened = 0; let errors = 0; let closedBySessd = 0;
  const open = new Set();
  while (Date.now() < end) {
    const batch = await Promise.all(Array.from({ length: 200 }, () => conn()));
    for (const r of batch) {
      if (r.err) { errors++; continue; }
      opened++;
      open.add(r);
      r.s.on('close', () => { if (open.delete(r)) closedBySessd++; });
    }
  }
  for (const r of open) { open.delete(r); r.s.destroy(); }
  return { opened, connect_errors: errors, closed_by_sessd: closedBySessd, per_s: Math.round(opened / holdS) };
}

async function huge() {
  const out = [];
  for (let i = 0; i < 50; i++) {
    const r = await conn();
    if (r.err) { out.push(r.err); continue; }
    const hdr = Buffer.alloc(4); hdr.writeUInt32BE(0xffffffff);
    r.s.write(hdr);
    r.s.write(Buffer.alloc(65536, 0x41), () => {});
    await sleep(30);
    out.push(r.closed !== null ? 'closed' : 'open');
    r.s.destroy();
  }
  return { sent: 50, closed: out.filter((x) => x === 'closed').length, open_after_30ms: out.filter((x) => x === 'open').length };
}

async function trickle() {
  const rs = await Promise.all(Array.from({ length: 20 }, () => conn()));
  const bytes = Buffer.from('0000002a82a26f70a568656c6c6fa176010000', 'hex');
  const started = Date.now();
  for (let k = 0; k < 20 && rs.some((r) => r.closed === null); k++) {
    for (const r of rs) if (r.closed === null) r.s.write(bytes.subarray(k % bytes.length, (k % bytes.length) + 1));
    await sleep(1000);
  }
  const lasted = rs.map((r) => r.closed);
  rs.forEach((r) => r.s.destroy());
  return { connections: 20, closed_after_ms: lasted.sort((a, b) => a - b), ran_s: (Date.now() - started) / 1000 };
}

async function replay() {
  // A recording proxy between a sealed client and sessd.
  const recorded = [];
  const proxy = net.createServer((c) => {
    const chunks = [];
    recorded.push(chunks);
    const up = net.connect(port, '127.0.0.1');
    c.on('data', (d) => { chunks.push(Buffer.from(d)); up.write(d); });
    up.on('data', (d) => c.write(d));
    c.on('close', () => up.destroy()); up.on('close', () => c.destroy());
    c.on('error', () => {}); up.on('error', () => {});
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  const ns = 'shop-replay';
  const id = crypto.randomBytes(32).toString('base64url');
  const victim = new Client({ url: `tcp://127.0.0.1:${proxy.address().port}`, auth, poolSize: 1 });
  await victim.ready({ timeoutMs: 5000 });
  await victim.set(ns, id, Buffer.from('{"user":"mallory-set-this"}'), 600000);
  await victim.flashPush(ns, id, 'info', 'replayed?', 600000);
  await sleep(100);
  await victim.close();
  proxy.close();
  const honest = new Client({ url: `tcp://127.0.0.1:${port}`, auth, poolSize: 1 });
  await honest.set(ns, id, Buffer.from('{"user":"ada"}'), 600000);
  await honest.flashPop(ns, id, null);
  const res = [];
  for (const chunks of recorded) {
    for (let i = 0; i < 20; i++) {
      const r = await conn();
      for (const c of chunks) r.s.write(c);
      await sleep(50);
      res.push({ got_bytes: r.got, closed: r.closed !== null });
      r.s.destroy();
    }
  }
  await sleep(200);
  const after = String(await honest.get(ns, id));
  const flashes = await honest.flashPop(ns, id, null);
  await honest.destroy(ns, id);
  await honest.close();
  return { recorded_connections: recorded.length, replays: res.length, closed: res.filter((x) => x.closed).length,
    data_after: after, replay_changed_data: after !== '{"user":"ada"}', flashes_after: flashes };
}

// A man in the middle that sends one of a live sealed connection's records twice, in place
// (frames after the HELLO: 4-byte length, then the record): a FLASH_PUSH record duplicated
// must not push twice; sessd should drop the connection (connect-sessd then sends the push
// again or fails it: at most once).
async function replayInline() {
  const ns = 'shop-replay';
  const id = crypto.randomBytes(32).toString('base64url');
  let frames = 0;
  let duplicated = false;
  const proxy = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = 4 + buf.readUInt32BE(0);
        const frame = buf.subarray(0, n);
        buf = buf.subarray(n);
        frames++;
        up.write(frame);
        // Frame 1 is HELLO, 2 the first record (the set below), 3 the flash push.
        if (frames === 3) { up.write(frame); duplicated = true; }
      }
    });
    up.on('data', (d) => c.write(d));
    c.on('close', () => up.destroy()); up.on('close', () => c.destroy());
    c.on('error', () => {}); up.on('error', () => {});
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  const victim = new Client({ url: `tcp://127.0.0.1:${proxy.address().port}`, auth, poolSize: 1, reconnectMinMs: 5000 });
  await victim.ready({ timeoutMs: 5000 });
  await victim.set(ns, id, Buffer.from('{}'), 600000);
  let push;
  try { push = await victim.flashPush(ns, id, 'info', 'once', 600000); } catch (e) { push = e.code; }
  victim.terminate();
  proxy.close();
  const honest = new Client({ url: `tcp://127.0.0.1:${port}`, auth, poolSize: 1 });
  const flashes = await honest.flashPop(ns, id, 'info');
  await honest.destroy(ns, id);
  await honest.close();
  return { duplicated, push_answer: push, messages_queued: flashes.length };
}

(async () => {
  const result = {};
  if (want('replay-inline')) await replayInline().then((r) => { result.replay_inline = r; }).catch((e) => { result.replay_inline = { error: e.message }; });
  const jobs = [];
  if (want('scanner')) jobs.push(scanner().then((r) => { result.scanner = r; }));
  if (want('huge')) jobs.push(huge().then((r) => { result.huge = r; }));
  if (want('trickle')) jobs.push(trickle().then((r) => { result.trickle = r; }));
  if (want('replay')) jobs.push(replay().then((r) => { result.replay = r; }).catch((e) => { result.replay = { error: e.message }; }));
  if (only && only.includes('churn')) jobs.push(churn(Number(args.hold || 20)).then((r) => { result.churn = r; }));
  if (want('flood')) jobs.push(flood(Number(args.flood || 10000), Number(args.hold || 20)).then((r) => { result.flood = r; }));
  await Promise.all(jobs);
  console.log(JSON.stringify(result, null, 1));
  process.exit(0);
})();
