'use strict';
// Process helpers shared by the benches of this folder (e2e.js, flood-full.js).

const net = require('net');

// freePort(): a loopback TCP port free at the time of asking.
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// stopProc(proc): SIGTERM a child process; resolves once it has exited.
function stopProc(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', resolve);
    proc.kill('SIGTERM');
  });
}

module.exports = { freePort, stopProc };
