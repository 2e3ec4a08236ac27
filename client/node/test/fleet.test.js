'use strict';
// Several app processes on one sessd (a fleet behind a load balancer without sticky
// sessions): what one process's tests cannot show. Each app process is a store of its own,
// with its own pool; two stores in this process stand for two processes (they share nothing
// but sessd), and one test forks real app processes. bench/fleet.js runs the same checks at
// load, with restarts and crashes.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { fork } = require('child_process');
const { SessdStore, Client, codec } = require('..');
const { Daemon, persistentDaemon, Browser, replyDropper } = require('./helpers');

const { OP } = codec;

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

// forkApp(t, url, ns): one app process (test/fixtures/fleet-app.js) on sessd at url, in
// namespace ns with the prefix 'a:'; resolves { port, proc, read (token -> promise of the
// slow request's read) }.
async function forkApp(t, url, ns) {
  const proc = fork(path.join(__dirname, 'fixtures', 'fleet-app.js'), [], {
    env: { ...process.env, FLEET_URL: url, FLEET_NS: ns, FLEET_PREFIX: 'a:' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  t.after(() => proc.kill('SIGKILL'));
  const reads = new Map();
  const app = { proc, port: null };
  app.read = (token) => new Promise((resolve) => reads.set(token, resolve));
  await new Promise((resolve, reject) => {
    proc.on('message', (m) => {
      if (m.port) {
        app.port = m.port;
        resolve();
      }
      if (m.slowRead && reads.has(m.slowRead)) reads.get(m.slowRead)(m);
    });
    proc.once('exit', (code) => reject(new Error(`app process exited (${code})`)));
  });
  return app;
}

// Browser at a port: one browser's cookie, sent to whichever process a request names.
async function hit(browser, app, method, p) {
  return browser.request(method, p, method === 'POST' ? {} : null, `http://127.0.0.1:${app.port}`);
}

// The promises the README makes, across real processes (one on the Unix socket, one on TCP)
// with no sticky sessions: a welcome flash shown once by the other process; concurrent cart
// adds and view counts on both all kept; a flash of each add shown once; a logout on one
// process while a request of the session is held in flight on the other: the old cookie is
// logged out and sessd holds nothing under the old id; another namespace sees nothing.
test('two app processes without sticky sessions: merges, flashes once, logout, namespaces', async (t) => {
  const d = new Daemon();
  await d.start();
  t.after(() => d.cleanup());
  const [p0, p1, other] = await Promise.all([forkApp(t, d.unixUrl, 'shop'), forkApp(t, d.tcpUrl, 'shop'), forkApp(t, d.unixUrl, 'blog')]);
  const admin = new Client({ url: d.unixUrl });
  t.after(() => admin.close());
  const br = new Browser(`http://127.0.0.1:${p0.port}`);

  let r = await hit(br, p0, 'POST', '/login?u=ada&f=welcome');
  assert.equal(r.status, 303);
  // The other app, same daemon and cookie secret, another namespace, while the welcome is
  // queued: nothing of this session, and its page pops nothing of it.
  const elsewhere = JSON.parse((await hit(br, other, 'GET', '/page')).body);
  assert.equal(elsewhere.user, null);
  assert.deepEqual(elsewhere.flash, {});
  r = await hit(br, p1, 'GET', '/page');
  assert.deepEqual(JSON.parse(r.body).flash, { info: ['welcome'] });
  assert.equal(JSON.parse(r.body).user, 'ada');
  assert.deepEqual(JSON.parse((await hit(br, p0, 'GET', '/page')).body).flash, {}, 'shown once');

  const burst = [];
  for (let i = 0; i < 8; i++) {
    const app = i % 2 ? p1 : p0;
    burst.push(hit(br, app, 'POST', i < 4 ? `/add?item=i${i}&f=added${i}` : '/inc'));
  }
  const answers = await Promise.all(burst);
  assert.deepEqual(answers.map((x) => x.status), [303, 303, 303, 303, 200, 200, 200, 200]);
  const shown = [];
  for (const app of [p1, p0]) {
    const page = JSON.parse((await hit(br, app, 'GET', '/page')).body);
    shown.push(...(page.flash.info || []));
    if (app === p1) {
      assert.deepEqual([...page.cart].sort(), ['i0', 'i1', 'i2', 'i3'], 'every add kept');
      assert.equal(page.views, 4, 'every view counted');
    }
  }
  assert.deepEqual(shown.sort(), ['added0', 'added1', 'added2', 'added3'], 'each flash once');

  const cookie = br.cookies.get('connect.sid');
  const sid = decodeURIComponent(cookie).slice(2).split('.')[0];
  const read = p1.read('t1');
  const slow = hit(br, p1, 'POST', '/slow?token=t1');
  assert.equal((await read).user, 'ada', 'the slow request read the session');
  assert.equal((await hit(br, p0, 'POST', '/logout?how=destroy')).status, 200);
  p1.proc.send({ release: 't1' });
  assert.equal((await slow).status, 200);
  br.cookies.set('connect.sid', cookie);
  const after = JSON.parse((await hit(br, p1, 'GET', '/page')).body);
  assert.equal(after.user, null, 'logged out on both');
  assert.deepEqual(after.flash, {});
  assert.equal(await admin.load('shop', 'a:' + sid), null, 'nothing left under the old id');
});

// forkPool(t, url, poolSize, waitAll): a process running test/fixtures/pool-load.js; resolves
// { proc, next (type -> promise of its next message with that key) } once its pool is ready
// (every connection when waitAll, else one).
async function forkPool(t, url, poolSize, waitAll) {
  const proc = fork(path.join(__dirname, 'fixtures', 'pool-load.js'), [], {
    env: { ...process.env, POOL_URL: url, POOL_SIZE: String(poolSize), POOL_WAIT_ALL: waitAll ? '1' : '0', POOL_READY_MS: '30000' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  t.after(() => proc.kill('SIGKILL'));
  const waiting = new Map();
  const seen = new Map();
  proc.on('message', (m) => {
    for (const key of Object.keys(m)) {
      if (waiting.has(key)) {
        waiting.get(key)(m);
        waiting.delete(key);
      } else {
        seen.set(key, m);
      }
    }
  });
  const next = (key) => new Promise((resolve, reject) => {
    if (seen.has(key)) {
      resolve(seen.get(key));
      seen.delete(key);
      return;
    }
    waiting.set(key, resolve);
    proc.once('exit', (code) => reject(new Error(`pool process exited (${code}) before '${key}'`)));
  });
  const ready = await next('ready');
  return { proc, next, ready };
}

// bothServedUnderLoad(t, url): two app processes, their pools on url(daemon), whose pools
// together exceed --max-connections: the first holds every slot left
// and keeps each in use (reads one at a time, random sessions, so no connection is idle for
// long); the second, holding none, is still served: sessd gives it the place of one of the
// first's connections with nothing in flight, and the first goes on without an error (a
// request sent on the connection that gave way is sent again on another). The first's
// reconnects are refused while it holds the most, and the second's while it holds one, so
// the two do not displace each other in turn: at most two connections gave way (4-0 to 3-1,
// then at most 2-2 should one of the first's stay unused for 2 s). Before, a newcomer took only
// the place of a connection idle 2 s, and the second process was refused as long as the load
// went on (every request 503).
async function bothServedUnderLoad(t, url) {
  // The limit: the first process's pool, and one for this process's admin client, which
  // holds its one connection from the start (so it never gives way, and asks for nothing
  // at the end, when a newcomer could take the place of a connection closing).
  const d = new Daemon({ extraArgs: ['--max-connections', '5'] });
  await d.start();
  t.after(() => d.cleanup());
  const admin = new Client({ url: d.unixUrl, poolSize: 1 });
  t.after(() => admin.terminate());
  await admin.ready();
  const first = await forkPool(t, url(d), 4, true);
  first.proc.send({ load: true });
  await first.next('served');
  // Its first connection, within 30 s (milliseconds, unless refused at every attempt).
  const second = await forkPool(t, url(d), 4, false);
  assert.ok(second.ready.ready >= 1, `the second process is served: ${second.ready.error}`);
  second.proc.send({ load: true });
  await second.next('served');
  const reports = [first.next('done'), second.next('done')];
  // Both under load together for a while: thousands of requests each, while the slots that
  // lost or never got a connection try again (every 0.5 s at most).
  first.proc.send({ stop: true, after: 3000 });
  second.proc.send({ stop: true, after: 3000 });
  const [a, b] = await Promise.all(reports);
  assert.equal(a.errors, 0, `the loaded process's requests all answered: ${a.firstError}`);
  assert.equal(b.errors, 0, `the newcomer's requests all answered: ${b.firstError}`);
  assert.ok(a.ok > 0 && b.ok > 0);
  const stats = await admin.stats();
  assert.ok(stats.connections_displaced_total >= 1 && stats.connections_displaced_total <= 2,
    `connections that gave way: ${stats.connections_displaced_total}`);
}

test('two processes whose pools exceed --max-connections are both served under load', { timeout: 90000 }, async (t) => {
  await bothServedUnderLoad(t, (d) => d.unixUrl);
});

// The same over TCP, both processes on this host (the normal deployment when the web servers
// are other machines: cluster or PM2 workers of one server): sessd tells them apart by the
// process identity connect-sessd states in its HELLO, and the second, holding none while its
// host's first process holds every slot, gets one within its host as above. Before, over TCP
// the host was the client: the second was refused at every attempt while the first's load
// went on (bench/fleet.js --max-connections 12 --transport tcp: 3 of 8 processes shut out,
// 3,036 of 7,919 requests answered 503; now none).
test('two processes of one host over TCP whose pools exceed --max-connections are both served under load', { timeout: 90000 }, async (t) => {
  await bothServedUnderLoad(t, (d) => d.tcpUrl);
});
