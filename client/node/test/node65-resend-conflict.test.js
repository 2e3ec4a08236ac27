'use strict';
// A merged save (SET_IF) whose connection breaks after sessd carried it out and before its
// reply came, and another request of the session saves over it before the pool sends it
// again: the resend meets CONFLICT, and the data sessd holds is no longer the first send's
// own (Client.ownWrite). Up to stop 64 the store then merged this request's changes again over
// a session that held them already: a mergeKey that counts (views + 1) counted twice, and a
// key both requests changed took this request's older value back over the other's newer one.
// The other request's save carries the marks of the data it was made over (writeMark), so the
// resend knows its first send is under it. When the first send was not carried out, the
// resend's merge over the other save is right and stays (the second case).

const test = require('node:test');
const assert = require('node:assert/strict');
const { decode } = require('@msgpack/msgpack');
const { SessdStore, codec } = require('..');
const { Daemon, frameProxy, sleep } = require('./helpers');

const { OP } = codec;

// A counter merged as additions, as an app counts views or items: a second application of one
// request's +1 shows.
const mergeKey = (key, base, mine, theirs) => (key === 'n' ? theirs + (mine - base) : mine);

// breakingProxy(t, sockPath): a proxy in front of sessd that, for the next SET_IF once armed
// (proxy.arm(mode, meanwhile)), runs meanwhile() and then breaks the connection: 'carried' lets
// sessd carry the SET_IF out and holds its reply back (sessd crashed after the change, before
// its reply); 'unsent' never passes the SET_IF on (it crashed before reading it).
async function breakingProxy(t, sockPath) {
  const proxy = { armed: null, setIfs: 0, done: null };
  const breakAfter = (pair, meanwhile) => {
    proxy.done = (async () => {
      await meanwhile();
      pair.down.destroy();
      pair.up.destroy();
    })();
  };
  const onRequest = (frame, pair) => {
    const [op, id] = decode(frame.subarray(4));
    if (op !== OP.SET_IF) return frame;
    proxy.setIfs++;
    const armed = proxy.armed;
    if (armed === null) return frame;
    proxy.armed = null;
    if (armed.mode === 'unsent') {
      breakAfter(pair, armed.meanwhile);
      return null;
    }
    pair.doomed = { id, meanwhile: armed.meanwhile };
    return frame;
  };
  const onReply = (frame, pair) => {
    if (pair.doomed === undefined || decode(frame.subarray(4))[0] !== pair.doomed.id) return frame;
    const { meanwhile } = pair.doomed;
    pair.doomed = undefined;
    breakAfter(pair, meanwhile);
    return null;
  };
  const { url } = await frameProxy(t, sockPath, { onRequest, onReply });
  proxy.arm = (mode, meanwhile) => {
    proxy.armed = { mode, meanwhile };
  };
  return { url, proxy };
}

const cookie = () => ({ originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), path: '/', httpOnly: true });

for (const [mode, otherReadsFirst] of [['carried', false], ['carried', true], ['unsent', false]]) {
  const name = mode === 'carried'
    ? `a resent SET_IF whose first send was carried out and then saved over by another request (${otherReadsFirst ? 'which read before it and merged over it' : 'which read it'}): its +1 counts once, and the other request's change of a key both changed stands`
    : 'a resent SET_IF whose first send never reached sessd, another request having saved meanwhile: its change is merged over that save (a guard)';
  test(name, async (t) => {
    const d = new Daemon();
    await d.start();
    t.after(() => d.cleanup());
    const { url, proxy } = await breakingProxy(t, d.sock);
    const ns = 'node65-resend';
    const mine = new SessdStore({ url, namespace: ns, poolSize: 1, reconnectMinMs: 10, reconnectMaxMs: 50, mergeKey });
    const other = new SessdStore({ url: d.unixUrl, namespace: ns, mergeKey });
    t.after(() => {
      mine.client.terminate();
      other.client.terminate();
    });
    await mine.set('sid', { cookie: cookie(), n: 1, note: 'as read', cart: ['apple'] });

    const sess = await mine.get('sid');
    // Another tab of the visitor, read now (before this request's save) or after it.
    const theirs = otherReadsFirst ? await other.get('sid') : null;
    sess.n += 1;
    sess.cart = ['apple', 'pear'];
    let otherErr = null;
    proxy.arm(mode, async () => {
      try {
        const s = theirs ?? (await other.get('sid'));
        s.n += 1;
        // The other tab's change of the cart comes after this request's (it read it, or,
        // reading before, merges over it: its own value of a key both changed stands).
        s.cart = ['apple', 'pear', 'fig'];
        s.note = 'other tab';
        await other.set('sid', s);
      } catch (err) {
        otherErr = err;
      }
    });
    const setIfsBefore = proxy.setIfs;
    await mine.set('sid', sess);
    await proxy.done;
    assert.equal(otherErr, null, `the other tab's save: ${otherErr && otherErr.message}`);
    assert.ok(proxy.setIfs - setIfsBefore >= 2, 'the SET_IF was sent again after the break');

    const now = await other.get('sid');
    // Each request added 1 to 1.
    assert.equal(now.n, 3, `n after two requests each adding 1 to 1 (${mode}${otherReadsFirst ? ', the other read first' : ''})`);
    assert.equal(now.note, 'other tab');
    if (mode === 'carried') {
      // The other tab's cart was made after this request's save was carried out: it stands.
      assert.deepEqual(now.cart, ['apple', 'pear', 'fig'], 'the other tab\'s newer cart stands');
    } else {
      // This request's save came last: its cart (the default mergeKey: its own value) stands.
      assert.deepEqual(now.cart, ['apple', 'pear']);
    }
    await sleep(0);
  });
}

test('the marks a merged save carries stay bounded: after 20 merged saves the data ends with 32 bytes of whitespace at most, and parses', async (t) => {
  const d = new Daemon();
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'node65-marks' });
  t.after(() => store.client.terminate());
  await store.set('sid', { cookie: cookie(), n: 0 });
  for (let i = 0; i < 20; i++) {
    const sess = await store.get('sid');
    sess.n++;
    await store.set('sid', sess);
  }
  const raw = (await store.client.get('node65-marks', 'sid')).toString('latin1');
  const ws = raw.length - raw.trimEnd().length;
  assert.ok(ws >= 16 && ws <= 32, `the data ends with ${ws} bytes of whitespace`);
  assert.equal(JSON.parse(raw).n, 20);
});
