'use strict';
// The example shop (examples/express-demo/app.js) on a real daemon, for the tests that check
// what its visitors see.

const assert = require('node:assert/strict');
const path = require('path');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer, once, REPO_DIR } = require('./helpers');

const { createApp } = require(path.join(REPO_DIR, 'examples/express-demo/app.js'));
const demoFlash = { middleware: () => flash(), locals: () => flash.locals() };

// demoShop(t, { namespace, daemonArgs, storeOptions, login }): a daemon started with
// daemonArgs (its directory is d.dir), the shop on a SessdStore of it, and a Browser of the
// shop, logged in as `login` (a name) when given, its welcome page shown: { d, store, br }.
// Everything is stopped when t ends.
async function demoShop(t, { namespace, daemonArgs = [], storeOptions = {}, login = null }) {
  const d = new Daemon();
  d.extraArgs = daemonArgs.map((arg) => arg.replaceAll('$DIR', d.dir));
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace, ...storeOptions });
  const app = createApp({ store, flash: demoFlash, secret: `${namespace}-secret`, served: 'test' });
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  await once(store, 'connect');
  const br = new Browser(base);
  if (login !== null) {
    assert.equal((await br.post('/login', { username: login })).status, 303);
    await br.get('/');
  }
  return { d, store, br };
}

// What a page of the shop shows.
const flashesOf = (body) => [...body.matchAll(/<p class="flash[^"]*">([^<]*)<\/p>/g)].map((m) => m[1]);
const cartOf = (body) => [...body.matchAll(/<li>(\d+ [^<]*)<\/li>/g)].map((m) => m[1]);

module.exports = { demoShop, flashesOf, cartOf };
