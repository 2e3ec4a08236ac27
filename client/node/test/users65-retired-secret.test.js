'use strict';
// users-65, N2 (bench/users-65/rotate MISS=1): when --auth-grace ends (here at once: 0), sessd
// closes the connections made with the retired secret with SHUTTING_DOWN ("sessd no longer
// accepts the --auth-file secret this connection showed"). The requests it cut off must not
// tell the app's operator that sessd is restarting: it is not, and the operator, reading the
// first words of the log line, looks for a restart instead of the secret (failed 3 of 3 before
// lib/client.js said "sessd closed the connection (...)" whatever sessd's reason).
const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { Daemon, sleep, waitFor } = require('./helpers');

const OLD = 'the-secret-before-rotation-5e1b7c';
const NEW = 'the-secret-after-rotation-93d0aa';

test('users65: a request cut off when sessd retires the secret does not say "sessd is restarting"', async (t) => {
  const d = new Daemon();
  const writeSecret = (s) => d.writeSecret(s + '\n');
  d.extraArgs = ['--auth-file', writeSecret(OLD), '--auth-grace', '0'];
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, auth: OLD, poolSize: 2, namespace: 'u65' });
  t.after(() => store.client.terminate());
  store.on('disconnect', () => {});
  await store.client.ready({ timeoutMs: 10000 });
  // Keep a few hundred requests in flight across the SIGHUP, so that some are still unread
  // in sessd's socket when it closes the connections: those get SHUTTING_DOWN.
  const errors = [];
  let stop = false;
  const pump = async (n) => {
    while (!stop) {
      try {
        await store.client.flashPush('u65', `s${n}`, 'info', 'm', 60000);
      } catch (err) {
        errors.push(err);
        if (errors.length > 50) stop = true;
        await sleep(5);
      }
    }
  };
  const pumps = Array.from({ length: 200 }, (_, n) => pump(n));
  await sleep(300);
  writeSecret(NEW);
  d.proc.kill('SIGHUP');
  await waitFor(() => errors.length > 0, 'a request failing after the secret was retired', 10000);
  await sleep(500);
  stop = true;
  await Promise.all(pumps);
  const cut = errors.filter((e) => e.cause && /no longer accepts the --auth-file secret/.test(e.cause.message));
  assert.ok(cut.length > 0, `no request was cut off by the retirement (${errors.length} errors: ${[...new Set(errors.map((e) => e.message))].join(' | ')})`);
  for (const e of cut) assert.doesNotMatch(e.message, /restarting/, e.message);
});
