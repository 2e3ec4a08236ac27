'use strict';
// A pool connection that a NAT or load balancer dropped for being quiet (Azure's forgets one
// idle 4 minutes), or whose sessd's host vanished, was found only by the next request timing
// out into a 503. connect-sessd has the kernel probe a TCP connection idle a minute. sessd
// runs with --tcp-keepalive 0 here, so that only the client's side can have the timer.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const { Client } = require('..');
const { Daemon } = require('./helpers');

let daemon;

test.before(async () => {
  daemon = await new Daemon({ extraArgs: ['--tcp-keepalive', '0'] }).start();
});

test.after(async () => {
  await daemon.cleanup();
});

// The kernel timers of the established connections to ${port}, from /proc/net/tcp: "tr" is
// 2 for keepalive, and "tm->when" the clock ticks until it fires.
function timersTo(port) {
  const hexPort = ':' + port.toString(16).toUpperCase().padStart(4, '0');
  return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 5 && f[2].endsWith(hexPort) && f[3] === '01')
    .map((f) => {
      const [timer, when] = f[5].split(':');
      return { timer: parseInt(timer, 16), seconds: parseInt(when, 16) / 100 };
    });
}

test('a TCP connection to sessd is probed once idle a minute', async (t) => {
  const client = new Client({ url: daemon.tcpUrl, poolSize: 1 });
  t.after(() => client.terminate());
  await client.ready();
  await client.ping();
  const port = Number(daemon.tcpUrl.split(':').pop());
  const timers = timersTo(port);
  assert.equal(timers.length, 1, `one connection to port ${port}: ${JSON.stringify(timers)}`);
  assert.equal(timers[0].timer, 2, `the client's side has timer ${timers[0].timer}, not keepalive's`);
  assert.ok(timers[0].seconds > 7 && timers[0].seconds <= 60, `the first probe comes in ${timers[0].seconds} s, not 60`);
});
