'use strict';
// A TCP connection that reaches itself (nothing listens on the port, and the kernel picked it
// as the local one too) fails as a refused connect and leaves no TIME_WAIT on the port.
// Deterministic: net.connect is wrapped to bind the client's socket to the port it connects
// to, which is what the kernel does now and then on its own in the ephemeral range.

const test = require('node:test');
const assert = require('node:assert');
const net = require('net');
const fs = require('fs');
const path = require('path');

const lib = path.join(__dirname, '..', 'lib', 'connection.js');
const { Connection } = require(lib);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The lines of /proc/net/tcp for sockets in TIME_WAIT (state 06) whose local port is ${port}.
function timeWaitOn(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 3 && f[1].endsWith(':' + hexPort) && f[3] === '06')
    .map((f) => f.join(' '))
    .join('\n');
}

test('a connection that reaches itself is refused and leaves no TIME_WAIT', async () => {
  const port = await freePort();
  const realConnect = net.connect;
  let bound = 0;
  net.connect = (opts, ...rest) => {
    if (opts.port === port) bound++;
    return realConnect({ ...opts, localAddress: '127.0.0.1', localPort: port }, ...rest);
  };
  let conn;
  try {
    conn = new Connection({ url: `tcp://127.0.0.1:${port}`, connectTimeoutMs: 2000, timeoutMs: 2000 });
  } finally {
    net.connect = realConnect;
  }
  assert.strictEqual(bound, 1);
  const request = conn.request(codecOp('PING'), []);
  const [err] = await new Promise((resolve) => conn.once('close', (...a) => resolve(a)));
  assert.strictEqual(err.code, 'ECONNREFUSED', err.message);
  assert.match(err.message, /reached itself/);
  // Not carried out, as on any refused connect: the outage error, not a broken connection.
  await assert.rejects(request, (e) => e.code === 'ESESSD_DISCONNECTED' && e.status === 503);
  // Give the kernel a moment, then look for a socket that would hold the port.
  await new Promise((r) => setTimeout(r, 100));
  assert.strictEqual(timeWaitOn(port), '', 'a TIME_WAIT socket holds the port');
});

function codecOp(name) {
  return require(path.join(path.dirname(lib), 'codec.js')).OP[name];
}
