'use strict';
// A logout made while saves of the session are queued (save-underway.test.js: a save with
// changes waits for this process's save of the same session under way), under express-session's
// real flow: tabs adding to a cart at once on a slow sessd (a relay holds each reply), then a
// logout from another tab once the first save has gone out. The queued saves go out after the
// DESTROY: with merge on each is a SET_IF, which finds the session gone, so none brings the
// logged-out session back; and the logout waits for none of them.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, waitFor } = require('./helpers');
const { waveRelay } = require('./waverelay');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(() => daemon.cleanup());

for (const early of [false, true]) {
  test(`tabs' saves queued, then a logout${early ? ' (each tab pushing a flash: early saves)' : ''}: the logout stands`, async (t) => {
    const relay = await waveRelay(daemon.unixUrl.replace(/^unix:(\/\/)?/, ''), 20);
    t.after(() => relay.close());
    const store = new SessdStore({ url: relay.url, namespace: `queue-logout-${early}`, poolSize: 1 });
    t.after(() => store.close());
    await store.client.ready();
    const a = express();
    a.use(session({ store, secret: 'queue-logout', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
    a.use(flash());
    a.post('/login', (req, res) => {
      req.session.user = 'ann';
      res.send('ok');
    });
    a.post('/cart', (req, res) => {
      req.session.cart = [...(req.session.cart || []), req.query.item];
      if (early) req.flash('info', `Added ${req.query.item}`);
      res.send('added');
    });
    a.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.send('bye'))));
    a.get('/', (req, res) => res.json({ user: req.session.user ?? null, cart: req.session.cart ?? null }));
    const { server, base } = await listen(a);
    t.after(() => closeServer(server));
    const br = new Browser(base);
    await br.post('/login', {});
    const other = new Browser(base);
    other.cookies = new Map(br.cookies);
    const adds = ['a', 'b', 'c', 'd'].map((item) => br.post(`/cart?item=${item}`, {}));
    // The first SET_IF has gone out (the others wait for it): the logout comes now.
    await waitFor(() => relay.requests().some((w) => w.requests.some((r) => r.op === 'SET_IF')), 'a save under way');
    const logout = await other.post('/logout', {});
    assert.equal(logout.status, 200);
    await Promise.all(adds);
    // The case under test: saves made before the logout went out after its DESTROY.
    const ops = relay.requests().flatMap((w) => w.requests.map((r) => r.op));
    assert.ok(ops.lastIndexOf('SET_IF') > ops.indexOf('DESTROY'), `sessd saw ${ops.join(', ')}`);
    const page = JSON.parse((await other.get('/')).body);
    assert.deepEqual(page, { user: null, cart: null }, 'logged out');
  });
}
