'use strict';
// Several app processes on one sessd (a fleet behind a load balancer without sticky
// sessions): what one process's tests cannot show. Each app process is a store of its own,
// with its own pool; two stores in this process stand for two processes (they share nothing
// but sessd), and one test forks real app processes. bench/fleet.js runs the same checks at
// load, with restarts and crashes.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { SessdStore, codec } = require('..');
const { Daemon, replyDropper } = require('./helpers');

const { OP } = codec;

async function persistentDaemon(t) {
  const d = new Daemon();
  d.extraArgs = ['--data-dir', path.join(d.dir, 'data')];
  await d.start();
  t.after(() => d.cleanup());
  return d;
}

const counter = (key, base, mine, theirs) => (key === 'views' ? (theirs || 0) + ((mine || 0) - (base || 0)) : mine);

// twoProcesses(t): two app processes' stores on one sessd with --data-dir, a (straight to it)
// and b (behind replyDropper, proxy), with a counter merged as additions, and the session
// 'sid' stored with views 0.
async function twoProcesses(t) {
  const d = await persistentDaemon(t);
  const { url, proxy } = await replyDropper(t, d.sock);
  const a = new SessdStore({ url: d.unixUrl, namespace: 'fleet', poolSize: 1, mergeKey: counter });
  const b = new SessdStore({ url, namespace: 'fleet', poolSize: 1, reconnectMinMs: 20, reconnectMaxMs: 100, mergeKey: counter });
  t.after(() => a.client.terminate());
  t.after(() => b.client.terminate());
  const cookie = { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString() };
  await a.set('sid', { cookie, user: 'ada', views: 0 });
  return { a, b, proxy };
}

// Two app processes each count a page view of one session, from the same read (views 0):
// both merged saves write the same bytes. Process A's is stored; process B's first SET_IF is
// answered CONFLICT, and sessd crashes before that answer reaches B. B sends it again, meets
// data equal to what it sent, and took it for its own first attempt carried out: its view
// was lost though its request had been answered (fleet: 2 increments answered 200, count 1).
test('a SET_IF sent again after a crash that meets the same bytes another process saved is merged, not taken for its own', async (t) => {
  const { a, b, proxy } = await twoProcesses(t);

  const onA = await a.get('sid');
  const onB = await b.get('sid');
  onA.views += 1;
  onB.views += 1;
  await a.set('sid', onA);
  proxy.drop = OP.SET_IF;
  const seenBefore = proxy.seen.get(OP.SET_IF) || 0;
  await b.set('sid', onB);
  assert.equal(proxy.dropped, 1, "B's first answer (CONFLICT) was lost");
  assert.ok(proxy.seen.get(OP.SET_IF) - seenBefore >= 2, 'B sent its SET_IF again');
  assert.equal((await a.get('sid')).views, 2, 'both views counted');
});

// The case the resend's check is for stays as it was: B's own first attempt carried out and
// its answer lost, nobody else writing: counted once.
test('a SET_IF carried out whose answer a crash lost still counts once across processes', async (t) => {
  const { a, b, proxy } = await twoProcesses(t);

  const onB = await b.get('sid');
  onB.views += 1;
  proxy.drop = OP.SET_IF;
  await b.set('sid', onB);
  assert.equal(proxy.dropped, 1);
  const onA = await a.get('sid');
  assert.equal(onA.views, 1, 'counted once');
  // A's next view merges over B's stored save as usual.
  onA.views += 1;
  await a.set('sid', onA);
  assert.equal((await b.get('sid')).views, 2);
});
