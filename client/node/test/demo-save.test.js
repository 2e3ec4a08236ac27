'use strict';
// The example shop saves a change before the flash and the redirect that confirm it: a save
// that fails must reach the user as an error, not as "Added 2 lemons" of a cart without them,
// on the error page's redirect or on the next page's flash.
// express-session saves only after the response's head has gone out, so without the early
// save the browser has its 303 before the save fails (a crash, a full disk, a retired
// secret, or here, deterministically, a session grown past the daemon's max_data).
// test:express4: loads Express through the example's app.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const { demoShop, cartOf } = require('./demo-shop');

// The demo shop on a daemon of max_frame 4096 (a session of about 4 KB is refused, and its
// flashes may hold 2 KB), and a browser logged in as Ann: { store, br }.
const loggedInShop = (t, namespace) => demoShop(t, { namespace, daemonArgs: ['--max-frame', '4096'], login: 'Ann' });

test('the demo shop never confirms a cart add whose save failed', async (t) => {
  const { br } = await loggedInShop(t, 'demo-save');
  // Each add grows the session by its item; at about 4 KB its save is refused.
  const confirmed = [];
  let refused = null;
  for (let i = 0; i < 200 && refused === null; i++) {
    const name = `item-${String(i).padStart(3, '0')}-${'x'.repeat(60)}`;
    const r = await br.post('/cart', { item: `1 ${name}` });
    if (r.status === 303) {
      confirmed.push(`1 ${name}`);
      await br.get('/'); // follow the redirect, as a browser does (and show the flash)
    } else {
      refused = r;
    }
  }
  assert.ok(refused, 'the session never outgrew max_data');
  assert.ok(refused.status >= 500, `a refused save is an error page, not ${refused.status}`);
  // Every add the shop confirmed is in the cart: none was confirmed and then lost.
  const next = (await br.get('/')).body;
  assert.deepEqual(cartOf(next), confirmed);
  // Nor does the next page's flash claim the refused add: "Added" is pushed after the save.
  const flashes = [...next.matchAll(/<p class="flash[^"]*">([^<]*)<\/p>/g)].map((m) => m[1]);
  assert.ok(confirmed.length > 0);
  assert.deepEqual(flashes.filter((f) => f.startsWith('Added')), [], `flashes: ${flashes}`);
});

test('the demo shop answers a cart add it saved with the redirect, though its "Added" flash cannot be stored', async (t) => {
  // The add is saved first, then its flash is pushed. A push that fails then (sessd crashed
  // with it in flight, or, here, deterministically, the session's flashes at their limit of
  // max_frame / 2) loses only the message: an error page for an add that is in the cart
  // would have the user add it again.
  const { store, br } = await loggedInShop(t, 'demo-flash-full');
  const cookie = decodeURIComponent(br.cookies.get('demo.sid'));
  const sid = cookie.slice(2, cookie.lastIndexOf('.'));
  // Filled to the brim: smaller messages once larger ones no longer fit.
  let full = null;
  for (const size of [200, 20, 1]) {
    full = null;
    for (let i = 0; i < 200 && full === null; i++) {
      await store.client.flashPush('demo-flash-full', sid, 'note', 'n'.repeat(size), 3600000).catch((err) => {
        full = err;
      });
    }
    assert.equal(full && full.code, 'ESESSD_LIMIT', `messages of ${size} bytes never reached the limit`);
  }

  const r = await br.post('/cart', { item: '2 lemons' });
  assert.equal(r.status, 303, `the saved add was answered ${r.status}`);
  assert.deepEqual(cartOf((await br.get('/')).body), ['2 lemons']);
});
