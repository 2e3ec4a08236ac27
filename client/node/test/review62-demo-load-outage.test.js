'use strict';
// The demo shop's 503 page after a change whose session could not be loaded. Stop 61 made the
// page say "not done" only for an error with notCarriedOut, since a save that timed out may
// still land. But a load that timed out on a stuck sessd is a read: its error has no
// notCarriedOut either, and the page told the visitor their change "may or may not have been
// done" when the shop never ran it (the route runs only once the session is loaded), so a
// visitor who had added nothing was told to look before adding it again.
// test:express4: loads Express through the example's app.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const { demoShop, cartOf } = require('./demo-shop');

test('the demo shop says a change was not done when the session it needed could not be loaded', { timeout: 30000 }, async (t) => {
  // One connection, given up at the load's timeout, and no wait for another: the 503 comes
  // while sessd is still stuck (as in apps60-demo-outage.test.js).
  const { d, store, br } = await demoShop(t, {
    namespace: 'review62-load-stuck',
    storeOptions: { poolSize: 1, timeoutMs: 300, restartWaitMs: 600000 },
    login: 'Ann',
  });
  t.after(() => { if (d.proc) d.proc.kill('SIGCONT'); });
  // sessd gets stuck just before the request's session is loaded.
  const realGet = store.get.bind(store);
  let stickBeforeLoad = true;
  store.get = (sid, cb) => {
    if (!stickBeforeLoad) return realGet(sid, cb);
    stickBeforeLoad = false;
    return d.pause().then(() => realGet(sid, cb), cb);
  };
  let add;
  try {
    add = await br.post('/cart', { item: '2 lemons' });
  } finally {
    d.proc.kill('SIGCONT');
  }
  assert.equal(add.status, 503, add.body);
  assert.match(add.body, /was not done/, `the shop never ran the change: ${add.body}`);
  assert.doesNotMatch(add.body, /\n\s+at |ESESSD_|ETIMEDOUT|Error:/, add.body);
  // And it was not: the cart is empty once sessd is back.
  let page = null;
  for (let i = 0; i < 100 && page === null; i++) {
    const r = await br.get('/');
    if (r.status === 200) page = r.body;
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.notEqual(page, null, 'the shop came back');
  assert.match(page, /Logged in as <b>Ann<\/b>/);
  assert.deepEqual(cartOf(page), [], 'the change was carried out after all');
});
