'use strict';
// What a logged-in visitor of the demo shop sees while sessd is down, and after. Their
// session (login, cart, pending flash) waits in sessd (--data-dir), so no page may show them
// logged out or their cart empty, and no page may show an error's stack. The demo rendered
// GETs without the session once the store had emitted 'disconnect' (the login form, as if
// logged out), and the requests that waited out restartWaitMs reached Express's default
// error handler, which prints the stack outside production.
// test:express4: loads Express through the example's app.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const { once } = require('./helpers');
const { demoShop, flashesOf, cartOf } = require('./demo-shop');

// What must not be on a page shown to a logged-in visitor while sessd is down.
function assertKeptLoggedIn(r, what) {
  assert.equal(r.status, 503, `${what}: ${r.body}`);
  assert.doesNotMatch(r.body, /id="username"|id="login"/, `${what} shows the login form`);
  assert.doesNotMatch(r.body, /\(empty\)/, `${what} shows the cart empty`);
  assert.doesNotMatch(r.body, /\n\s+at |ESESSD_|Error:/, `${what} shows the error: ${r.body}`);
  assert.match(r.body, /You stay logged in/, what);
}

test('the demo shop while sessd is down: neither logged out nor an empty cart nor a stack trace; all back after', async (t) => {
  // restartWaitMs 1500: the store gives up on sessd 1.5 s after it went away.
  const { d, store, br } = await demoShop(t, {
    namespace: 'apps60-outage',
    daemonArgs: ['--data-dir', '$DIR/data'],
    storeOptions: { restartWaitMs: 1500, reconnectMinMs: 20, reconnectMaxMs: 200 },
    login: 'Ann',
  });
  assert.equal((await br.post('/cart', { item: '2 lemons' })).status, 303);
  // The "Added" flash stays pending across the outage.

  const down = once(store, 'disconnect');
  await d.stop('SIGKILL');
  // Made before the store gives up: it waits restartWaitMs for sessd, then its session load
  // fails with ESESSD_DISCONNECTED (503), which reaches the app's error handler.
  assertKeptLoggedIn(await br.get('/'), 'a page whose session load waited out restartWaitMs');
  await down;
  // Once the store said 'disconnect', express-session serves requests without a session.
  const page = await br.get('/');
  assertKeptLoggedIn(page, 'a page while the store is disconnected');
  assert.equal(page.headers['retry-after'], '5');
  const add = await br.post('/cart', { item: '1 pear' });
  assertKeptLoggedIn(add, 'a cart add while the store is disconnected');
  assert.match(add.body, /was not done/);
  // Health checks do not need sessions.
  assert.equal((await br.get('/healthz')).status, 200);

  await d.start();
  await once(store, 'connect');
  const back = (await br.get('/')).body;
  assert.match(back, /Logged in as <b>Ann<\/b>/);
  assert.deepEqual(cartOf(back), ['2 lemons']);
  assert.deepEqual(flashesOf(back), ['Added 2 lemons'], 'the pending flash, shown once sessd is back');
});

test('the demo shop answers an error of its own with a page, not a stack', async (t) => {
  const { br } = await demoShop(t, { namespace: 'apps60-error' });
  // A form body over the shop's urlencoded limit (8 KB): body-parser's 413.
  const r = await br.post('/login', { username: 'x'.repeat(20000) });
  assert.equal(r.status, 413);
  assert.doesNotMatch(r.body, /\n\s+at |Error:/, r.body);
  assert.match(r.body, /could not be handled/);
});
