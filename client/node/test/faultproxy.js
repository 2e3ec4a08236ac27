'use strict';
// faultProxy: a relay on a loopback TCP port in front of a real sessd, for the network faults
// a web app meets between it and its store (a load balancer, a NAT, a flaky link), which sessd
// cannot be made to show on demand. Each direction ('up': app to sessd, 'down': sessd to app)
// of every connection, current and future, follows proxy.fault[direction]:
//   null                      pass bytes as they come
//   { stall: true }           hold them (the TCP connection stays up: a half-dead path)
//   { dribble: true }         pass them one byte per write, each its own segment
//   { delayMs: n }            pass each chunk n ms after it came, in order
//   { blackholeAfter: n }     pass n more bytes on this connection, then swallow the rest
//   { cutAfter: n }           pass n more bytes, then drop the connection (both sides, with a
//                             reset: a middlebox that gives up), in the middle of a frame if
//                             n falls there
// Held bytes go on once the fault is lifted (proxy.heal()). proxy.accepted counts the
// connections the proxy took; proxy.open() those open now. Everything closes at the test's end.

const net = require('net');

// drop(socket): ends a socket with a reset where it can (TCP), as a middlebox does. Not one
// already ended (its peer's close ends it): Node's resetAndDestroy() then fails with EINVAL
// (libuv refuses a reset while a shutdown is under way) and leaves the handle open, which kept
// the test process from exiting.
function drop(socket) {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function' && socket.remotePort !== undefined && !socket.writableEnded) socket.resetAndDestroy();
  else socket.destroy();
}

class Pipe {
  // from, to: the sockets; dir: 'up' or 'down'; proxy: for its faults.
  constructor(proxy, dir, from, to, pair) {
    this.proxy = proxy;
    this.dir = dir;
    this.to = to;
    this.pair = pair;
    this.held = [];
    this.passed = 0; // bytes passed since the current fault began
    this.fault = undefined;
    this.busy = false;
    from.on('data', (chunk) => {
      this.held.push(chunk);
      this.pump();
    });
  }

  // pump(): passes what the current fault lets through.
  pump() {
    const fault = this.proxy.fault[this.dir];
    if (fault !== this.fault) {
      this.fault = fault;
      this.passed = 0;
    }
    if (this.busy || this.pair.closed) return;
    while (this.held.length > 0) {
      if (fault === null) {
        this.send(this.held.shift());
        continue;
      }
      if (fault.stall) return;
      if (fault.blackholeAfter !== undefined || fault.cutAfter !== undefined) {
        const limit = fault.blackholeAfter ?? fault.cutAfter;
        const chunk = this.held.shift();
        const room = Math.max(0, limit - this.passed);
        if (room > 0) this.send(chunk.subarray(0, room));
        this.passed += Math.min(room, chunk.length);
        if (chunk.length > room) {
          if (fault.cutAfter !== undefined) {
            this.pair.close();
            return;
          }
          this.held = []; // swallowed
        }
        continue;
      }
      if (fault.dribble) {
        const chunk = this.held[0];
        this.send(chunk.subarray(0, 1));
        if (chunk.length > 1) this.held[0] = chunk.subarray(1);
        else this.held.shift();
        // One byte per turn of the event loop: each write its own segment (no Nagle here).
        this.busy = true;
        setImmediate(() => {
          this.busy = false;
          this.pump();
        });
        return;
      }
      if (fault.delayMs !== undefined) {
        const chunk = this.held.shift();
        this.busy = true;
        setTimeout(() => {
          this.busy = false;
          this.send(chunk);
          this.pump();
        }, fault.delayMs);
        return;
      }
      throw new Error('faultProxy: unknown fault ' + JSON.stringify(fault));
    }
  }

  send(bytes) {
    if (!this.to.destroyed && bytes.length > 0) this.to.write(bytes);
  }
}

// faultProxy(t, target): a proxy on 127.0.0.1 in front of target ({ host, port }); returns
// { url, fault, heal(), open(), accepted, closeAll() }.
async function faultProxy(t, target) {
  const pairs = new Set();
  const proxy = {
    fault: { up: null, down: null },
    accepted: 0,
    heal() {
      this.fault = { up: null, down: null };
      for (const p of pairs) p.pumpAll();
    },
    set(dir, fault) {
      this.fault = { ...this.fault, [dir]: fault };
      for (const p of pairs) p.pumpAll();
    },
    open: () => pairs.size,
    // closeAll(): drops every connection (with a reset), as a middlebox restarting does.
    closeAll() {
      for (const p of [...pairs]) p.close();
    },
  };
  const server = net.createServer((down) => {
    proxy.accepted++;
    const up = net.connect(target);
    up.setNoDelay(true);
    down.setNoDelay(true);
    const pair = {
      closed: false,
      close() {
        if (pair.closed) return;
        pair.closed = true;
        pairs.delete(pair);
        drop(down);
        drop(up);
      },
      pumpAll() {
        pair.toUp.pump();
        pair.toDown.pump();
      },
    };
    // While the target is down, a connect to its port may reach itself (the kernel picks
    // that port as the local one when it lies in the ephemeral range): such a connection
    // would echo the client's bytes back to it and hold the port the restarting target
    // must bind. A refused connect instead.
    up.once('connect', () => {
      if (up.localPort === up.remotePort && up.localAddress === up.remoteAddress) pair.close();
    });
    pair.toUp = new Pipe(proxy, 'up', down, up, pair);
    pair.toDown = new Pipe(proxy, 'down', up, down, pair);
    pairs.add(pair);
    // One side gone: the other goes too, a FIN as a FIN, a reset (or an error) as a reset.
    for (const [s, other] of [[down, up], [up, down]]) {
      s.on('error', () => pair.close());
      s.on('end', () => other.end());
      s.on('close', () => {
        if (!other.destroyed && !other.writableEnded) other.end();
        pairs.delete(pair);
      });
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    proxy.closeAll();
    server.close();
  });
  proxy.url = `tcp://127.0.0.1:${server.address().port}`;
  return proxy;
}

// tcpTarget(tcpUrl): the { host, port } of a daemon's tcp:// URL.
function tcpTarget(tcpUrl) {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(tcpUrl);
  return { host: m[1], port: Number(m[2]) };
}

module.exports = { faultProxy, tcpTarget };
