'use strict';
// A connection writes each pass's frames from one buffer kept between passes (connection.js
// reserve, flush), reused only once the socket took every byte, and behind a queued write sends
// a copy of the pass's frames. Here a relay between the client and sessd stops reading, then
// reads slowly, so that writes are taken in part and queue; passes mix small and large frames
// (past the kept buffer, past 64 KiB, near max_frame), saves, reads, destroys and flash pushes
// and pops of the same sessions, plain and sealed. Every reply must be the one its request
// asked for (a model of each session, in the order its requests were made), and the sessions
// must end as the model has them (a session of flashes only stays once they are popped,
// PROTOCOL.md "Flashes").

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { Client } = require('..');
const { Daemon, sealedDaemon, persistentDaemon, waitFor } = require('./helpers');

const SECRET = 'review58-pass-secret-0123456789abcdef';

// A relay on a Unix socket in front of target (net.connect options). mode: 'open' passes
// bytes as they come; 'stalled' reads nothing from the clients (their writes fill the socket
// buffers and queue); 'slow' reads a chunk, then waits a few ms. Replies pass as they come.
class Relay {
  constructor(target) {
    this.target = target;
    this.mode = 'open';
    this.pairs = new Set();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r58-relay-'));
    this.path = path.join(this.dir, 'relay.sock');
    this.url = `unix:${this.path}`;
    this.server = net.createServer((down) => this.accept(down));
  }

  listen() {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  accept(down) {
    const up = net.connect(this.target);
    const pair = { down, up };
    this.pairs.add(pair);
    down.on('data', (chunk) => {
      up.write(chunk);
      if (this.mode !== 'open') {
        down.pause();
        if (this.mode === 'slow') setTimeout(() => this.mode !== 'stalled' && down.resume(), 3);
      }
    });
    up.on('data', (chunk) => down.write(chunk));
    const end = () => {
      this.pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    for (const s of [down, up]) {
      s.on('close', end);
      s.on('error', () => {});
    }
    if (this.mode === 'stalled') down.pause();
  }

  set(mode) {
    this.mode = mode;
    for (const { down } of this.pairs) {
      if (mode === 'stalled') down.pause();
      else down.resume();
    }
  }

  // breakAll(): both sockets of every pair end at once (sessd crashed, or the path broke).
  breakAll() {
    for (const { down, up } of this.pairs) {
      down.destroy();
      up.destroy();
    }
  }

  close() {
    this.breakAll();
    this.server.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// A small seeded generator, so that a failure is the same run again.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Save sizes around the pass buffer's edges (16 KiB start, 64 KiB kept), past them and near
// sessd's default max_frame (1 MiB, of which max_frame - 16 bytes of data fit).
const SIZES = [1, 150, 4000, 16 * 1024 - 60, 16 * 1024 + 10, 40000, 64 * 1024 - 60, 64 * 1024 + 1, 70000, 200000, 600000, 1048576 - 200];

// dataOf(tag, size): bytes that say where they came from all through, so that a frame that
// took another's bytes (or another's part of a shared buffer) shows.
function dataOf(tag, size) {
  return Buffer.alloc(size, `${tag};`);
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

// runModel(client, ns, relay, opts): makes `passes` passes of random requests on `sessions`
// sessions, moving the relay through stalled, slow and open; checks each reply against a model
// of its session, then each session's end state. Returns how many passes ended with a write
// queued in a connection's socket.
async function runModel(t, client, ns, relay, { seed, passes, sessions, bigEvery }) {
  const rand = rng(seed);
  const model = Array.from({ length: sessions }, () => ({ data: null, flashes: [], exists: false }));
  const checks = [];
  const expect = (p, want, what) => {
    checks.push(p.then((got) => {
      if (Buffer.isBuffer(want)) {
        assert.ok(Buffer.isBuffer(got), `${what}: got ${got}, expected ${want.length} bytes`);
        assert.ok(got.equals(want), `${what}: got ${got.length} bytes starting ${JSON.stringify(got.subarray(0, 24).toString())}, expected ${want.length} starting ${JSON.stringify(want.subarray(0, 24).toString())}`);
      } else {
        assert.deepEqual(got, want, what);
      }
    }));
  };
  let queued = 0;
  let bigs = 0;
  for (let pass = 0; pass < passes; pass++) {
    const phase = pass % 30;
    if (phase === 5) relay.set('stalled');
    else if (phase === 15) relay.set('slow');
    else if (phase === 25) relay.set('open');
    const count = 1 + Math.floor(rand() * 8);
    for (let i = 0; i < count; i++) {
      const k = Math.floor(rand() * sessions);
      const id = `r58-${seed}-sess-${k}`;
      const m = model[k];
      const what = `pass ${pass} request ${i} on session ${k}`;
      const r = rand();
      if (r < 0.3) {
        let size = SIZES[Math.floor(rand() * 6)];
        if (bigEvery && pass % bigEvery === 0 && i === 0) size = SIZES[6 + (bigs++ % (SIZES.length - 6))];
        const data = dataOf(`${pass}.${i}.${k}`, size);
        expect(client.set(ns, id, data, 600000), undefined, `${what}: set`);
        m.data = data;
        m.exists = true;
      } else if (r < 0.55) {
        expect(client.get(ns, id), m.data, `${what}: get`);
      } else if (r < 0.65) {
        expect(client.destroy(ns, id), m.exists, `${what}: destroy`);
        m.exists = false;
        m.data = null;
        m.flashes = [];
      } else if (r < 0.85) {
        const msg = `m-${pass}.${i}`.padEnd(Math.floor(rand() * 300), '~');
        m.flashes.push(msg);
        m.exists = true;
        expect(client.flashPush(ns, id, 'info', msg, 600000), m.flashes.length, `${what}: flash push`);
      } else {
        expect(client.flashPop(ns, id, 'info'), m.flashes, `${what}: flash pop`);
        m.flashes = [];
      }
    }
    await tick();
    if (client.slots.some((s) => s.conn && s.conn.socket.writableLength > 0)) queued++;
  }
  relay.set('open');
  const results = await Promise.allSettled(checks);
  const failed = results.filter((x) => x.status === 'rejected');
  assert.equal(failed.length, 0, `${failed.length} of ${results.length} replies wrong; first: ${failed[0]?.reason?.stack}`);
  for (let k = 0; k < sessions; k++) {
    const id = `r58-${seed}-sess-${k}`;
    const got = await client.get(ns, id);
    if (model[k].data === null) assert.equal(got, null, `session ${k} at the end`);
    else assert.ok(got && got.equals(model[k].data), `session ${k} at the end holds other bytes`);
    assert.deepEqual(await client.flashPop(ns, id, 'info'), model[k].flashes, `session ${k}'s flashes at the end`);
  }
  return queued;
}

const cases = [];
for (const sealed of [false, true]) {
  for (const transport of ['unix', 'tcp']) {
    for (const poolSize of [1, 2]) cases.push({ sealed, transport, poolSize });
  }
}

for (const { sealed, transport, poolSize } of cases) {
  test(`pass buffer under backpressure: every reply is its request's (${sealed ? 'sealed' : 'plain'}, ${transport}, pool ${poolSize})`, { timeout: 240000 }, async (t) => {
    const daemon = sealed ? await sealedDaemon(SECRET) : await new Daemon().start();
    t.after(() => daemon.cleanup());
    const target = transport === 'unix' ? { path: daemon.sock } : { host: '127.0.0.1', port: Number(daemon.tcpUrl.split(':').pop()) };
    const relay = new Relay(target);
    await relay.listen();
    t.after(() => relay.close());
    const client = new Client({ url: relay.url, poolSize, timeoutMs: 0, ...(sealed ? { auth: SECRET } : {}) });
    t.after(() => client.terminate());
    await client.ready();
    const queued = await runModel(t, client, `r58-${transport}`, relay, { seed: 58 + poolSize + (sealed ? 10 : 0), passes: 150, sessions: 9, bigEvery: 4 });
    assert.ok(queued > 10, `only ${queued} passes ended with a write queued: the relay did not hold the client back`);
  });
}

// queuedBytes(client): the bytes its connections' sockets hold queued, not yet taken by the kernel.
function queuedBytes(client) {
  return client.slots.reduce((n, s) => n + (s.conn ? s.conn.socket.writableLength : 0), 0);
}

// A break in the middle of queued passes: the relay reading slowly (frames cut anywhere
// reached sessd), then the path broken ('break'), or sessd killed ('crash') or stopped
// ('shutdown', SHUTTING_DOWN) and started again with its data. The client reconnects and
// sends again what may be sent again. Whatever each request's outcome, no reply may be
// another request's (a read gives bytes its session was given before its reply), no flash
// message is shown twice or pushed twice (FLASH_PUSH and FLASH_POP are never sent again), and
// a push that succeeded with no pop or destroy of its session made after it is still there.
async function runBreak(t, client, ns, relay, seed, breakIt) {
  const rand = rng(seed);
  const sessions = 6;
  const setBefore = Array.from({ length: sessions }, () => []);
  const pushes = []; // { k, msg, p, laterTake }
  const pops = []; // { k, p, pushedBefore: Set }
  const reads = []; // { k, pass, p, upTo: the sets of k made when p resolved }
  const all = [];
  const later = (p) => {
    p.catch(() => {});
    all.push(p);
    return p;
  };
  const takes = Array.from({ length: sessions }, () => 0); // pops and destroys made so far
  const passes = 60;
  let broken = false;
  for (let pass = 0; pass < passes || !broken; pass++) {
    if (pass === 10) relay.set('slow');
    // The break must come with a write queued (what the test is about), which the slow relay
    // brings sooner or later as the machine runs: from pass 40, at the first pass that begins
    // with one, or at pass 400 without (the caller's check then fails).
    if (!broken && pass >= 40 && (queuedBytes(client) > 0 || pass >= 400)) {
      broken = true;
      await breakIt();
    }
    for (let i = 0; i < 6; i++) {
      const k = Math.floor(rand() * sessions);
      const id = `r58b-${seed}-${k}`;
      const r = rand();
      if (r < 0.3) {
        const data = dataOf(`${seed}.${pass}.${i}.${k}`, SIZES[Math.floor(rand() * 9)]);
        later(client.set(ns, id, data, 600000));
        setBefore[k].push(data);
      } else if (r < 0.5) {
        // A read sent again after the break may be carried out after a set made later
        // (it went out first on the broken connection; the set then went on another): it
        // may give what any set made before its reply put there, never bytes of another.
        const read = { k, pass, p: later(client.get(ns, id)), upTo: null };
        read.p.then(() => { read.upTo = setBefore[k].length; }, () => {});
        reads.push(read);
      } else if (r < 0.8) {
        const msg = `b${seed}.${pass}.${i}`;
        pushes.push({ k, msg, take: takes[k], p: later(client.flashPush(ns, id, 'info', msg, 600000)) });
      } else if (r < 0.95) {
        takes[k]++;
        pops.push({ k, pass, p: later(client.flashPop(ns, id, 'info')), pushedBefore: new Set(pushes.filter((x) => x.k === k).map((x) => x.msg)) });
      } else {
        takes[k]++;
        later(client.destroy(ns, id));
      }
    }
    await tick();
  }
  relay.set('open');
  await Promise.allSettled(all);
  for (const r of reads) {
    const got = await r.p.catch(() => undefined);
    if (got === undefined || got === null) continue;
    assert.ok(setBefore[r.k].slice(0, r.upTo).some((d) => d.equals(got)), `pass ${r.pass}: a read of session ${r.k} got bytes no set of it made before the reply put there (${JSON.stringify(got.subarray(0, 24).toString())})`);
  }
  const shown = new Map();
  const show = (k, msgs, where) => {
    for (const msg of msgs) {
      assert.ok(!shown.has(msg), `${msg} shown twice (${shown.get(msg)} and ${where})`);
      shown.set(msg, where);
      assert.ok(pushes.some((x) => x.msg === msg && x.k === k), `${where} gave ${msg}, not pushed to its session`);
    }
  };
  for (const pop of pops) {
    const got = await pop.p.catch(() => null);
    if (got === null) continue;
    for (const msg of got) assert.ok(pop.pushedBefore.has(msg), `pass ${pop.pass}: a pop of session ${pop.k} gave ${msg}, pushed after it`);
    show(pop.k, got, `the pop of pass ${pop.pass}`);
  }
  for (let k = 0; k < sessions; k++) show(k, await client.flashPop(ns, `r58b-${seed}-${k}`, 'info'), `the last pop of session ${k}`);
  let kept = 0;
  for (const push of pushes) {
    const ok = await push.p.then(() => true, () => false);
    if (ok && push.take === takes[push.k]) {
      assert.ok(shown.has(push.msg), `${push.msg}, pushed (OK) to session ${push.k} after its last pop or destroy, is gone`);
      kept++;
    }
  }
  return { kept, failed: (await Promise.allSettled(all)).filter((x) => x.status === 'rejected').length };
}

for (const how of ['break', 'crash', 'shutdown']) {
  for (const sealed of [false, true]) {
    test(`pass buffer: a ${how} in the middle of queued passes shows no reply of another request, no message twice (${sealed ? 'sealed' : 'plain'})`, { timeout: 240000 }, async (t) => {
      let daemon;
      if (how === 'break') daemon = sealed ? await sealedDaemon(SECRET) : await new Daemon().start();
      else {
        daemon = await persistentDaemon(t);
        if (sealed) {
          await daemon.stop();
          daemon.extraArgs.push('--auth-file', daemon.writeSecret(SECRET));
          await daemon.start();
        }
      }
      if (how === 'break') t.after(() => daemon.cleanup());
      const relay = new Relay({ path: daemon.sock });
      await relay.listen();
      t.after(() => relay.close());
      const client = new Client({ url: relay.url, poolSize: 2, timeoutMs: 0, restartWaitMs: 30000, ...(sealed ? { auth: SECRET } : {}) });
      t.after(() => client.terminate());
      await client.ready();
      let queuedAtBreak = 0;
      const breakIt = async () => {
        queuedAtBreak = queuedBytes(client);
        if (how === 'break') {
          relay.breakAll();
          return;
        }
        await daemon.stop(how === 'crash' ? 'SIGKILL' : 'SIGTERM');
        await daemon.start();
      };
      const { kept, failed } = await runBreak(t, client, `r58b-${how}`, relay, 580 + (sealed ? 1 : 0), breakIt);
      t.diagnostic(`${queuedAtBreak} bytes queued at the ${how}, ${kept} pushes checked kept, ${failed} requests failed`);
      assert.ok(queuedAtBreak > 0, `no write was queued at the ${how}`);
      assert.ok(kept > 0, 'no push was checked');
    });
  }
}

// Requests made before the HELLO reply, over a relay that holds the HELLO back: plain, the
// small ones go behind it and every one from the first over 4096 bytes on is held; sealed and
// with requireAuth, all are held. Once the reply comes they leave in order, the one over the
// server's max_frame (64 KiB here) refused alone; each reply is its request's.
for (const mode of ['plain', 'requireAuth', 'sealed']) {
  test(`pass buffer: requests made before the HELLO reply leave in order once it comes (${mode})`, { timeout: 120000 }, async (t) => {
    const extra = ['--max-frame', '65536'];
    const daemon = mode === 'plain' ? await new Daemon({ extraArgs: extra }).start() : await sealedDaemon(SECRET, extra);
    t.after(() => daemon.cleanup());
    const relay = new Relay({ path: daemon.sock });
    await relay.listen();
    t.after(() => relay.close());
    relay.set('stalled');
    const auth = mode === 'plain' ? {} : mode === 'sealed' ? { auth: SECRET } : { auth: SECRET, seal: false, requireAuth: true };
    const client = new Client({ url: relay.url, poolSize: 1, timeoutMs: 0, connectTimeoutMs: 0, ...auth });
    t.after(() => client.terminate());
    await waitFor(() => relay.pairs.size === 1, 'the connection to reach the relay');
    const ns = `r58h-${mode}`;
    const checks = [];
    const sizes = [10, 3000, 5000, 20, 70000, 100, 60000, 4090, 30];
    for (let pass = 0; pass < 3; pass++) {
      for (const [i, size] of sizes.entries()) {
        const id = `h-${pass}-${i % 4}`;
        const data = dataOf(`${mode}.${pass}.${i}`, size);
        const set = client.set(ns, id, data, 60000);
        if (size > 65536 - 100) {
          checks.push(assert.rejects(set, (err) => err.statusName === 'TOO_LARGE'));
          checks.push(client.get(ns, id).then((got) => assert.ok(got === null || !got.equals(data), `${id}: the refused save was stored`)));
        } else {
          checks.push(set);
          checks.push(client.get(ns, id).then((got) => assert.ok(got && got.equals(data), `pass ${pass} save ${i}: ${id} read ${got && got.length} bytes, not its ${size}`)));
        }
        checks.push(client.flashPush(ns, id, 'n', `${pass}.${i}`, 60000).then((n) => assert.ok(n >= 1)));
      }
      await tick();
    }
    assert.equal(client.slots[0].conn.hello, null, 'the HELLO was answered before the requests were made');
    relay.set('open');
    await Promise.all(checks);
    // Each session's pushes, in the order they were made.
    for (let pass = 0; pass < 3; pass++) {
      for (let k = 0; k < 4; k++) {
        const want = sizes.map((_, i) => i).filter((i) => i % 4 === k).map((i) => `${pass}.${i}`);
        assert.deepEqual(await client.flashPop(ns, `h-${pass}-${k}`, 'n'), want, `h-${pass}-${k}'s flashes`);
      }
    }
  });
}

// A pass of changes queued behind a HELLO that sessd refuses (at --max-connections): written
// with the HELLO in one buffer, small and large, none carried out, each refused with BUSY.
for (const transport of ['unix', 'tcp']) {
  test(`pass buffer: a pass queued behind a HELLO refused at --max-connections is not carried out (${transport})`, { timeout: 60000 }, async (t) => {
    const full = await new Daemon({ extraArgs: ['--max-connections', '1'] }).start();
    t.after(() => full.cleanup());
    const hog = new Client({ url: full.unixUrl, poolSize: 1 });
    t.after(() => hog.terminate());
    await hog.ready();
    const c = new Client({ url: transport === 'unix' ? full.unixUrl : full.tcpUrl, poolSize: 1, timeoutMs: 5000 });
    t.after(() => c.terminate());
    const made = [];
    for (const [i, size] of [10, 3000, 20000, 70000, 100].entries()) {
      made.push(c.set('busy', `b${i}`, dataOf(`busy${i}`, size), 60000));
      made.push(c.flashPush('busy', `f${i}`, 'info', `m${i}`, 60000));
      made.push(c.destroy('busy', 'hogs'));
    }
    const results = await Promise.allSettled(made);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 'rejected', `request ${i} succeeded past a refused HELLO`);
      assert.ok(r.reason.code === 'ESESSD_BUSY' || r.reason.code === 'ESESSD_DISCONNECTED', `request ${i}: ${r.reason.code} ${r.reason.message}`);
    }
    for (let i = 0; i < 5; i++) {
      assert.equal(await hog.get('busy', `b${i}`), null, `save ${i}, behind the refused HELLO, was carried out`);
      assert.deepEqual(await hog.flashPop('busy', `f${i}`, 'info'), [], `push ${i}, behind the refused HELLO, was carried out`);
    }
  });
}
