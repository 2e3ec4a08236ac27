'use strict';
// The demo shop's flashes are popped by the page that shows them, and by no other request of
// the visitor's. README ("flash(options) and req.flash") says to mount flash.locals() on the
// pages that show flashes, not app-wide: it pops every pending flash on each GET it runs for.
// The demo mounted it app-wide, so a browser's GET of /favicon.ico (a 404 here), or of
// /healthz with the cookie, took the "Added 2 lemons" meant for the next page, and no page
// ever showed it (walk-59, following the demo as a user).
// test:express4: loads Express through the example's app.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const { demoShop, flashesOf } = require('./demo-shop');

test('a GET of another path of the demo shop (favicon, health check) leaves the flashes to the page', async (t) => {
  const { br } = await demoShop(t, { namespace: 'walk59-demo' });

  assert.equal((await br.post('/login', { username: 'Ann' })).status, 303);
  // Between the login's redirect and its page, the browser asks for the icon.
  assert.equal((await br.get('/favicon.ico')).status, 404);
  assert.deepEqual(flashesOf((await br.get('/')).body), ['Welcome back, Ann']);

  for (const other of ['/favicon.ico', '/healthz']) {
    assert.equal((await br.post('/cart', { item: '2 lemons' })).status, 303);
    await br.get(other);
    const page = (await br.get('/')).body;
    assert.deepEqual(flashesOf(page), ['Added 2 lemons'], `after a GET of ${other}`);
    // Shown once: the next page has none.
    assert.deepEqual(flashesOf((await br.get('/')).body), []);
  }
});
