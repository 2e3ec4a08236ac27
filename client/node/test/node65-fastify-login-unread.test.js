'use strict';
// A login on @fastify/session during a bot's flood, sessd full with --when-full drop-unread
// (users-64's finding, fixed for Express at stop 64 by a read-back of the first save of the
// session connect-sessd's regenerate() made). @fastify/session has a regenerate() of its own
// (store.destroy(old), then store.set(new)), which connect-sessd's does not see: a login whose
// only save is that set (the keys set before the regenerate and carried over, nothing
// changed after it) left the new session unread until the redirect's page read it, and a
// flood of more than 128 sessions meanwhile dropped it: the user told "logged in" found the
// next page logged out. (A login that changes the session after regenerate() saves again, a
// SET_IF, which counts as a read: users-64's bench/users-64/flood-login, 0 of 40 logged out.)

const test = require('node:test');
const assert = require('node:assert/strict');
const Fastify = require('fastify');
const { SessdStore, Client } = require('..');
const { Daemon, Browser } = require('./helpers');

const SECRET = 'a-fastify-session-secret-of-32-chars-or-more';

for (const shape of ['keys carried, no change after', 'no session before, keys carried']) {
  test(`@fastify/session: a login answered during a flood (drop-unread) is still logged in on its next page (${shape})`, async (t) => {
    const d = new Daemon({ extraArgs: ['--max-memory', '1000000', '--when-full', 'drop-unread'] });
    await d.start();
    t.after(() => d.cleanup());
    const store = new SessdStore({ url: d.unixUrl, namespace: 'shop', keepReads: true });
    const bots = new Client({ url: d.unixUrl });
    const app = Fastify();
    t.after(async () => {
      await app.close();
      store.close();
      bots.close();
    });
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => done(null, {}));
    await app.register(require('@fastify/cookie'));
    await app.register(require('@fastify/session'), { secret: SECRET, store, cookie: { secure: false, maxAge: 3600 * 1000 }, saveUninitialized: false });
    app.post('/cart', async (request) => {
      request.session.cart = [...(request.session.cart || []), request.query.item];
      return { ok: true };
    });
    app.post('/login', async (request) => {
      // The keys set first and carried over: regenerate()'s own save is the only one.
      request.session.user = request.query.user;
      await request.session.regenerate(['cart', 'user']);
      return { ok: true };
    });
    app.get('/page', async (request) => ({ user: request.session.user ?? null, cart: request.session.cart ?? [] }));
    const base = await app.listen({ port: 0, host: '127.0.0.1' });

    const bot = Buffer.alloc(1500, 'x');
    let n = 0;
    const flood = async (count) => {
      for (const end = n + count; n < end;) await Promise.all(Array.from({ length: 100 }, () => bots.set('shop', `bot${n++}`, bot, 3600 * 1000)));
    };
    const br = new Browser(base);
    const withCart = shape !== 'no session before, keys carried';
    if (withCart) {
      assert.equal((await br.post('/cart?item=pear')).status, 200);
      assert.deepEqual(JSON.parse((await br.get('/page')).body).cart, ['pear']);
    }
    await flood(1000);
    assert.equal((await br.post('/login?user=ada')).status, 200);
    await flood(1500);
    const stats = await bots.stats(null);
    assert.ok(stats.evicted_total > 0, 'the flood made drop-unread drop sessions');
    const page = JSON.parse((await br.get('/page')).body);
    assert.equal(page.user, 'ada', `the login answered 200 is logged out on its next page (${stats.evicted_total} sessions dropped)`);
    if (withCart) assert.deepEqual(page.cart, ['pear']);
  });
}
