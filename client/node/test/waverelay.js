'use strict';
// waveRelay(target, delayMs): a relay on a Unix socket in front of sessd's (target: its path)
// that holds each of sessd's replies delayMs and counts the round trips an action waited for
// one after another: the app's writes that come after a reply reached it. Held replies keep
// the app's writes that do not wait for them (pipelined on the connection) from being taken
// for ones that did. For test/roundtrips.test.js and bench/roundtrips.js (a store on another
// host, some delayMs away). Returns { url, start(), waves(), requests(), cutAtWave(n), close() }:
// start() begins an action, waves() the round trips it waited for since; requests() the
// requests of each of those round trips, in order: [{ after, requests: [{ op, id, ttlMs, at }] }]
// (op: its name, 'TOUCH_IF'; after: Date.now() as the reply that the round trip waited for
// reached the app, at: as the request reached the relay), so that a test can tell which
// request waited; cutAtWave(n) drops the connection once the action's nth round trip's
// requests have reached sessd, before any reply to them comes back (as a crash of sessd
// would, or a broken link).

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const codec = require('../lib/codec');

const OP_NAMES = Object.fromEntries(Object.entries(codec.OP).map(([name, op]) => [op, name]));

async function waveRelay(target, delayMs) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-waves-'));
  const sock = path.join(dir, 'relay.sock');
  const state = { waves: 0, replied: true, cutAt: 0, log: [], repliedAt: 0 };
  const sockets = new Set();
  const server = net.createServer((app) => {
    const up = net.connect(target);
    sockets.add(app).add(up);
    const close = () => {
      app.destroy();
      up.destroy();
    };
    let unread = Buffer.alloc(0);
    app.on('data', (chunk) => {
      up.write(chunk);
      if (state.replied) {
        state.waves++;
        state.replied = false;
        state.log.push({ after: state.repliedAt, requests: [] });
        if (state.waves === state.cutAt) {
          state.cutAt = 0;
          setTimeout(close, delayMs / 2);
        }
      }
      unread = logRequests(Buffer.concat([unread, chunk]), state.log[state.log.length - 1].requests);
    });
    // Timers of one delay fire in the order made: replies keep their order.
    up.on('data', (chunk) => setTimeout(() => {
      state.replied = true;
      state.repliedAt = Date.now();
      if (!app.destroyed) app.write(chunk);
    }, delayMs));
    app.on('close', close).on('error', close);
    up.on('close', close).on('error', close);
  });
  await new Promise((resolve) => server.listen(sock, resolve));
  return {
    url: `unix://${sock}`,
    start() {
      state.waves = 0;
      state.replied = true;
      state.log = [];
      state.repliedAt = Date.now();
    },
    waves: () => state.waves,
    requests: () => state.log,
    cutAtWave(n) {
      state.cutAt = n;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// logRequests(bytes, into): the whole request frames at the start of bytes pushed onto into as
// { op, id, ttlMs, at }; returns the bytes of a frame not yet whole. Before an action starts
// (the connection's HELLO), into may be a wave's list no test reads.
function logRequests(bytes, into) {
  let pos = 0;
  while (bytes.length - pos >= codec.HEADER_BYTES) {
    const end = pos + codec.HEADER_BYTES + bytes.readUInt32BE(pos);
    if (end > bytes.length) break;
    const req = codec.decodeRequest(bytes.subarray(pos, end), codec.DEFAULT_MAX_FRAME);
    into.push({ op: OP_NAMES[req.op], id: req.id ?? req.id_hex, ttlMs: req.ttl_ms, at: Date.now() });
    pos = end;
  }
  return bytes.subarray(pos);
}

module.exports = { waveRelay };
