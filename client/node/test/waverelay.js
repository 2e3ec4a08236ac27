'use strict';
// waveRelay(target, delayMs): a relay on a Unix socket in front of sessd's (target: its path)
// that holds each of sessd's replies delayMs and counts the round trips an action waited for
// one after another: the app's writes that come after a reply reached it. Held replies keep
// the app's writes that do not wait for them (pipelined on the connection) from being taken
// for ones that did. For test/roundtrips.test.js and bench/roundtrips.js (a store on another
// host, some delayMs away). Returns { url, start(), waves(), cutAtWave(n), close() }: start()
// begins an action, waves() the round trips it waited for since; cutAtWave(n) drops the
// connection once the action's nth round trip's requests have reached sessd, before any reply
// to them comes back (as a crash of sessd would, or a broken link).

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

async function waveRelay(target, delayMs) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-waves-'));
  const sock = path.join(dir, 'relay.sock');
  const state = { waves: 0, replied: true, cutAt: 0 };
  const sockets = new Set();
  const server = net.createServer((app) => {
    const up = net.connect(target);
    sockets.add(app).add(up);
    const close = () => {
      app.destroy();
      up.destroy();
    };
    app.on('data', (chunk) => {
      up.write(chunk);
      if (!state.replied) return;
      state.waves++;
      state.replied = false;
      if (state.waves !== state.cutAt) return;
      state.cutAt = 0;
      setTimeout(close, delayMs / 2);
    });
    // Timers of one delay fire in the order made: replies keep their order.
    up.on('data', (chunk) => setTimeout(() => {
      state.replied = true;
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
    },
    waves: () => state.waves,
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

module.exports = { waveRelay };
