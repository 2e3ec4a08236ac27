'use strict';
// A session whose text is not ASCII is tagged as sessd tags its bytes: its text is hashed as
// a string (textTag), not through a Buffer.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SessdStore } = require('..');
const { Daemon } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(async () => {
  await daemon.cleanup();
});

function call(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

// A request's session, read as express-session reads it (get, then createSession).
async function load(store, sid) {
  const data = await call((cb) => store.get(sid, cb));
  return store.createSession({ sessionID: sid, sessionStore: store }, data);
}

function fresh(extra) {
  return { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), httpOnly: true, path: '/' }, ...extra };
}

test('a session whose text is not ASCII is saved and touched over what sessd holds, first time', async (t) => {
  const ns = 'cookie-form-text';
  // One attempt: a tag that is not sessd's is a CONFLICT, which fails the save.
  const store = new SessdStore({ url: daemon.unixUrl, namespace: ns, mergeAttempts: 1 });
  t.after(() => store.close());
  for (const [i, name] of ['plain', 'café', '日本語', 'emoji 😀', 'mixed \u2028 \\ "q"'].entries()) {
    const sid = `t${i}`;
    await call((cb) => store.set(sid, fresh({ name, n: 0 }), cb));
    for (let n = 1; n <= 3; n++) {
      const sess = await load(store, sid);
      sess.n = n;
      await call((cb) => store.set(sid, sess, cb));
      const view = await load(store, sid);
      assert.equal(view.name, name);
      assert.equal(view.n, n);
      await call((cb) => store.touch(sid, view, cb));
    }
    assert.equal(store.listenerCount('gone'), 0);
  }
});
