'use strict';
// flash() in the ways apps misuse or stretch it: a response sent twice (the classic missing
// return) while a push holds res.end, and req.flash on a store other than SessdStore
// (express-session's MemoryStore, as apps' tests use).
// test:express4: flash() holds the end of Express's res.redirect and res.send.

const net = require('net');
const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, Client, flash, codec } = require('..');
const { decode } = require('@msgpack/msgpack');
const { Daemon, Browser, listen, closeServer, sleep, frameProxy } = require('./helpers');

const SECRET = 'flash-test-secret';
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// serve(t, store, routes): an app with express-session on store and flash(); routes(app)
// adds the routes. Returns the base URL.
async function serve(t, store, routes) {
  const app = express();
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false }));
  app.use(flash());
  routes(app);
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    if (store.close) store.close();
  });
  return base;
}

// responses(text): the HTTP/1.1 responses in text, each { status, headers, body }, and the
// bytes after the last whole one (rest). Bodies by Content-Length, as a keep-alive client reads.
function responses(text) {
  const out = [];
  let rest = text;
  for (;;) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) break;
    const [statusLine, ...lines] = rest.slice(0, headEnd).split('\r\n');
    const headers = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const len = Number(headers['content-length'] || 0);
    if (rest.length < headEnd + 4 + len) break;
    out.push({ status: Number(statusLine.split(' ')[1]), headers, body: rest.slice(headEnd + 4, headEnd + 4 + len) });
    rest = rest.slice(headEnd + 4 + len);
  }
  return { out, rest };
}

// keepAlive(base, paths): requests paths one after another on one keep-alive socket, each once
// the previous response is whole and has had time to be followed by stray bytes; resolves to
// responses() of everything the socket received.
async function keepAlive(base, paths) {
  const { port } = new URL(base);
  const sock = net.connect(Number(port), '127.0.0.1');
  let got = '';
  sock.setEncoding('latin1');
  sock.on('data', (d) => {
    got += d;
  });
  try {
    for (let i = 0; i < paths.length; i++) {
      sock.write(`GET ${paths[i]} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const deadline = Date.now() + 5000;
      while (responses(got).out.length <= i && Date.now() < deadline) await sleep(10);
      await sleep(100);
    }
  } finally {
    sock.destroy();
  }
  return responses(got);
}

test('the missing return: a second response after a flash and a redirect throws, as with connect-flash, and the redirect goes out intact', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-test' });
  const seen = {};
  const base = await serve(t, store, (app) => {
    app.get('/buggy', (req, res) => {
      req.flash('error', 'Missing field');
      res.redirect('/form');
      try {
        res.status(200).json({ saved: true });
        seen.second = 'sent';
      } catch (err) {
        seen.second = err.code;
        seen.message = err.message;
      }
    });
    // Every way to change a response after its end, while the push holds that end.
    app.get('/after-end', (req, res) => {
      req.flash('error', 'x');
      res.redirect('/form');
      seen.headersSent = res.headersSent;
      for (const m of ['setHeader', 'writeHead', 'removeHeader', 'appendHeader']) {
        if (typeof res[m] !== 'function') continue;
        try {
          res[m]('x-late', 'yes');
          seen[m] = 'changed';
        } catch (err) {
          seen[m] = err.code;
        }
      }
      res.statusCode = 500;
      seen.write = res.write('late bytes');
      res.end('late end');
    });
    app.get('/next', (req, res) => res.send('next page'));
  });
  const { out, rest } = await keepAlive(base, ['/buggy', '/next']);
  assert.equal(seen.second, 'ERR_HTTP_HEADERS_SENT');
  assert.equal(seen.message, 'Cannot set headers after they are sent to the client');
  assert.equal(out.length, 2, JSON.stringify(out));
  assert.equal(rest, '', 'no stray bytes on the keep-alive socket');
  assert.equal(out[0].status, 302);
  assert.equal(out[0].headers.location, '/form');
  assert.equal(out[0].headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(out[0].body, 'Found. Redirecting to /form');
  assert.equal(out[0].headers.etag, undefined, 'no ETag of the JSON');
  assert.equal(out[1].status, 200);
  assert.equal(out[1].body, 'next page');

  const late = await keepAlive(base, ['/after-end', '/next']);
  assert.equal(seen.headersSent, true);
  for (const m of ['setHeader', 'writeHead', 'removeHeader', 'appendHeader']) {
    if (seen[m] !== undefined) assert.equal(seen[m], 'ERR_HTTP_HEADERS_SENT', m);
  }
  assert.equal(seen.write, false);
  assert.equal(late.rest, '');
  assert.equal(late.out.length, 2);
  assert.equal(late.out[0].status, 302);
  assert.equal(late.out[0].body, 'Found. Redirecting to /form');
  assert.equal(late.out[0].headers['x-late'], undefined);
  assert.equal(late.out[1].body, 'next page');
});

test('an error after a flash and a redirect finds res.headersSent true in the error handler', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-test' });
  const seen = [];
  const base = await serve(t, store, (app) => {
    app.get('/fails-late', (req, res, next) => {
      req.flash('error', 'x');
      res.redirect('/form');
      next(new Error('late'));
    });
    // As error handlers are written: answer unless the answer has gone out already.
    app.use((err, req, res, next) => {
      seen.push(res.headersSent);
      if (res.headersSent) return;
      res.status(500).send('error page');
    });
  });
  const r = await new Browser(base).get('/fails-late');
  assert.deepEqual(seen, [true]);
  assert.equal(r.status, 302);
  assert.equal(r.body, 'Found. Redirecting to /form');
});

// An end that throws as it goes out (here Node's writeHead refusing the status code that
// Express 4's res.status(err.status) sets for an error without one) throws into the route when
// nothing holds it, Express hands that to the error handler, and the page is its 500. Held for
// a flash push, it threw inside a promise callback: an unhandled rejection, which ends the app's
// process, every request it serves with it (an Express 4 app exited with code 1).
test('an end that throws once its flashes are stored reaches the error handler, as without a flash', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-test' });
  const unhandled = [];
  const onUnhandled = (err) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const seen = [];
  const base = await serve(t, store, (app) => {
    // The same mistake without a flash, in a request that saves its session as the flash's
    // does (it marks a new session for saving).
    app.get('/bad-status-saved', (req, res) => {
      req.session.note = 'x';
      res.statusCode = undefined;
      res.end('sorry');
    });
    app.get('/bad-status-flash', (req, res) => {
      req.flash('error', 'Could not save');
      res.statusCode = undefined;
      res.end('sorry');
    });
    app.use((err, req, res, next) => {
      seen.push(`${req.path} ${err.code}`);
      res.status(500).end('error page');
    });
  });
  for (const p of ['/bad-status-saved', '/bad-status-flash']) {
    const r = await new Browser(base).get(p);
    assert.equal(r.status, 500, p);
  }
  assert.deepEqual(unhandled.map((e) => e.code), []);
  assert.deepEqual(seen, ['/bad-status-saved ERR_HTTP_INVALID_STATUS_CODE', '/bad-status-flash ERR_HTTP_INVALID_STATUS_CODE']);
});

// One scenario of every calling form; each step's result, as the browser saw it.
async function flashScenario(base) {
  const br = new Browser(base);
  const steps = [
    ['push', { args: ['info', 'one'] }],
    ['push', { args: ['info', ['two', 'three']] }],
    ['push', { args: ['info', 'Added %d %s', 2, 'lemons'] }],
    ['push', { args: ['data', { x: [1, 2], ok: true }] }],
    ['push', { args: ['err', ''] }],
    ['redirect', { args: ['warn', 'after a redirect'] }],
    ['push', { args: ['empty', []] }],
    ['push', { args: ['info'] }],
    ['push', { args: ['nothing', null] }],
    ['page', null],
    ['push', { args: ['x', 'y'] }],
    ['push', { args: [] }],
    ['push', { args: [] }],
  ];
  const out = [];
  for (const [route, body] of steps) {
    const r = route === 'page' ? await br.get('/page') : await br.post(`/${route}`, { args: JSON.stringify(body.args) });
    out.push([r.status, r.location || (r.body && JSON.parse(r.body))]);
  }
  return out;
}

function flashRoutes(app) {
  app.use(express.urlencoded({ extended: false }));
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res)).catch(next);
  app.post('/push', wrap(async (req, res) => res.json({ r: (await req.flash(...JSON.parse(req.body.args))) ?? null })));
  app.post('/redirect', (req, res) => {
    req.flash(...JSON.parse(req.body.args));
    res.redirect('/page');
  });
  app.get('/page', flash.locals(), (req, res) => res.json(res.locals.flash));
}

test('flash() on express-session\'s MemoryStore keeps flashes in req.session, with the results it gives on sessd', async (t) => {
  const onSessd = await flashScenario(await serve(t, new SessdStore({ url: daemon.unixUrl, namespace: 'flash-test' }), flashRoutes));
  const memory = new session.MemoryStore();
  const onMemory = await flashScenario(await serve(t, memory, flashRoutes));
  assert.deepEqual(onMemory, onSessd);
  assert.deepEqual(onSessd[7], [200, { r: ['one', 'two', 'three', 'Added 2 lemons'] }]);
  assert.deepEqual(onSessd[9], [200, { data: [{ x: [1, 2], ok: true }], err: [''], warn: ['after a redirect'] }]);
  // As connect-flash keeps them: in the session, which the store saved.
  const sessions = await new Promise((resolve, reject) => memory.all((err, all) => (err ? reject(err) : resolve(all))));
  assert.deepEqual(Object.values(sessions).map((s) => s.flash), [{}]);
});

// The README's connect-flash differences, as they are: connect-flash reads on any falsy
// message; here only undefined and null read. An object is stored as connect-flash's session
// stores it, as JSON: its undefined properties are dropped and a Date is its ISO string
// (test/flash-json.test.js has the rest).
test('req.flash(type, 0) and (type, false) push; undefined properties are dropped, Dates are ISO strings', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-test' });
  let popped = null;
  const base = await serve(t, store, (app) => {
    app.get('/values', async (req, res) => {
      const pushed = [await req.flash('v', 0), await req.flash('v', false), await req.flash('v', { gone: undefined, at: new Date(5) })];
      popped = await req.flash('v');
      res.json(pushed);
    });
  });
  assert.deepEqual(JSON.parse((await new Browser(base).get('/values')).body), [1, 2, 3]);
  assert.deepEqual(popped, [0, false, { at: new Date(5).toISOString() }]);
});

// Acceptance review: with a ttl function and disableTouch, one flash push stretched the
// session from the function's 5 s to the cookie's hour (nothing shortened it again).
test('a flash push gives the session the ttl function\'s lifetime, not the cookie\'s', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-ttlfn', ttl: () => 5, disableTouch: true });
  const app = express();
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 } }));
  app.use(flash());
  app.post('/login', (req, res) => {
    req.session.user = 'ada';
    res.json({ ok: true });
  });
  app.post('/note', async (req, res) => res.json({ n: await req.flash('info', 'hi') }));
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  const br = new Browser(base);
  await br.post('/login');
  assert.equal(JSON.parse((await br.post('/note')).body).n, 1);
  const { entries } = await store.client.list('flash-ttlfn');
  assert.equal(entries.length, 1);
  assert.ok(entries[0].ttlMs <= 5000, `ttl ${entries[0].ttlMs} ms`);
});

// A session whose cookie has a maxAge of 0 or below ends with its request (express-session
// sends the browser an expired cookie, and a save destroys the session: README, "Expiry"). A
// flash pushed in such a request was given the ttl option's day: a record of flashes only,
// shown to nobody, counted by store.length() for that day. It is dropped, as a push to a
// session gone meanwhile is: req.flash resolves 0 and sessd holds nothing.
test('a flash pushed into a session with no lifetime left is dropped, not kept a day', async (t) => {
  for (const [maxAge, disableTouch] of [[0, false], [-1000, false], [0, true]]) {
    const namespace = `flash-nolife-${maxAge}-${disableTouch}`;
    const store = new SessdStore({ url: daemon.unixUrl, namespace, disableTouch });
    const app = express();
    app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge } }));
    app.use(flash());
    app.post('/note', async (req, res) => res.json({ n: await req.flash('info', 'hi') }));
    const { server, base } = await listen(app);
    t.after(async () => {
      await closeServer(server);
      store.close();
    });
    const br = new Browser(base);
    assert.equal(JSON.parse((await br.post('/note')).body).n, 0, `maxAge ${maxAge}`);
    const { entries } = await store.client.list(namespace);
    assert.deepEqual(entries, [], `maxAge ${maxAge}, disableTouch ${disableTouch}: sessd keeps ${JSON.stringify(entries)}`);
  }
});

// The README's flash({ client, namespace, prefix }): a Client used directly, here beside
// express-session's MemoryStore. The flashes go to sessd under that namespace and the prefix
// and session id, with the lifetime the session's cookie has left, not the day of the ttl
// default.
test('flash({ client, namespace, prefix }) keeps flashes in sessd beside another store, for the cookie\'s lifetime', async (t) => {
  const client = new Client({ url: daemon.unixUrl, poolSize: 1 });
  t.after(() => client.close());
  const app = express();
  app.use(session({ secret: SECRET, name: 'sid', resave: false, saveUninitialized: true, cookie: { maxAge: 60000 } }));
  app.use(flash({ client, namespace: 'flash-client', prefix: 'p:' }));
  app.post('/push', (req, res, next) => req.flash('info', 'hi').then((n) => res.json({ n, sid: req.sessionID }), next));
  app.get('/pop', (req, res, next) => req.flash('info').then((msgs) => res.json(msgs), next));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));
  const br = new Browser(base);
  const { n, sid } = JSON.parse((await br.post('/push')).body);
  assert.equal(n, 1);
  const ttlMs = await client.ttl('flash-client', `p:${sid}`);
  assert.ok(ttlMs > 0 && ttlMs <= 60000, `the flash's ttl ${ttlMs} is the cookie's`);
  assert.deepEqual(JSON.parse((await br.get('/pop')).body), ['hi']);
  assert.deepEqual(JSON.parse((await br.get('/pop')).body), []);
});

// A proxy to sessd that, once armed, cuts the connection that carries the next FLASH_POP
// instead of passing it on (disarming itself): its url, and armed.
async function popCutter(t) {
  const cutter = { url: null, armed: false };
  ({ url: cutter.url } = await frameProxy(t, daemon.sock, {
    onRequest: (frame, pair) => {
      if (!cutter.armed || decode(frame.subarray(4))[0] !== codec.OP.FLASH_POP) return frame;
      cutter.armed = false;
      pair.down.destroy();
      pair.up.destroy();
      return null;
    },
  }));
  return cutter;
}

// The README: a page whose pop was in flight when its connection broke answers 503. flash.locals()
// hands that failure to the app's error handler (only a full disk's IO_ERROR shows the page
// without the flashes), and the pop, which never reached sessd, left the message queued.
test('flash.locals(): a pop whose connection broke reaches the error handler as a 503, and the message stays queued', async (t) => {
  const cutter = await popCutter(t);
  const store = new SessdStore({ url: cutter.url, namespace: 'flash-cut', poolSize: 1 });
  const base = await serve(t, store, (app) => {
    app.post('/push', (req, res, next) => req.flash('info', 'hi').then(() => res.json({}), next));
    app.get('/page', flash.locals(), (req, res) => res.json(res.locals.flash));
    app.use((err, req, res, next) => res.status(err.statusCode || 500).json({ code: err.code }));
  });
  const br = new Browser(base);
  await br.post('/push');
  cutter.armed = true;
  const r = await br.get('/page');
  assert.equal(r.status, 503, r.body);
  assert.equal(cutter.armed, false, 'no pop went out');
  assert.deepEqual(JSON.parse((await br.get('/page')).body), { info: ['hi'] });
});

// regenerate() moves the flashes this request pushed and did not show: a pop of the old id
// finds which are still queued. When that pop fails (its connection broke), every push of
// the request still listed moves (the pool sends the DESTROY again, not the pop); one the
// request already popped (showed) is not listed any more, and must not show again on the new
// session's page.
test('regenerate() whose pop of the old id fails moves only the pushes this request did not show', async (t) => {
  const cutter = await popCutter(t);
  const store = new SessdStore({ url: cutter.url, namespace: 'flash-regen-cut', poolSize: 1 });
  const base = await serve(t, store, (app) => {
    app.post('/login', async (req, res, next) => {
      try {
        await req.flash('info', 'shown');
        const shown = await req.flash('info');
        await req.flash('note', 'unshown');
        cutter.armed = true;
        req.session.regenerate((err) => {
          req.session.user = 'jo';
          res.json({ shown, err: err ? err.code : null });
        });
      } catch (err) {
        next(err);
      }
    });
    app.get('/page', (req, res, next) => req.flash().then((all) => res.json({ user: req.session.user, all }), next));
  });
  const br = new Browser(base);
  const r = await br.post('/login');
  assert.equal(r.status, 200, r.body);
  const login = JSON.parse(r.body);
  assert.deepEqual(login.shown, ['shown']);
  assert.equal(cutter.armed, false, 'regenerate\'s pop went out and was cut');
  // The DESTROY, which a repeat cannot harm, is sent again on the new connection.
  assert.equal(login.err, null);
  assert.deepEqual(JSON.parse((await br.get('/page')).body), { user: 'jo', all: { note: ['unshown'] } });
});

// sessd keeps a flash type of 1..64 bytes (PROTOCOL.md, "Limits"); connect-flash takes any. An
// app that names a queue after a form and a field ("form:signup:" + the field) read it with
// req.flash(type) on every render, and that pop rejected with the client's RangeError: the page
// answered 500 where connect-flash gives []. Nothing can be queued under such a type, so its pop
// now resolves [] without asking; its push rejects, saying why, on sessd and on MemoryStore alike
// (the results there are sessd's, so that an app's tests meet the limit too).
test('a flash type over 64 bytes: its pop resolves [], its push rejects naming the limit, on sessd and on MemoryStore', async (t) => {
  const long = 'form:signup:' + 'field_'.repeat(9); // 66 bytes
  const wide = 'é'.repeat(33); // 33 characters, 66 bytes
  const fits = 'é'.repeat(32); // 64 bytes
  const routes = (app) => {
    app.get('/long', async (req, res) => {
      const out = [];
      for (const call of [() => req.flash(long), () => req.flash(wide), () => req.flash(long, 'a'), () => req.flash(wide, ['b']), () => req.flash(long, 'n=%d', 1), () => req.flash(fits, 'c'), () => req.flash(fits), () => req.flash()]) {
        try {
          out.push(await call());
        } catch (err) {
          out.push(`${err.name}: ${err.message}`);
        }
      }
      res.json(out);
    });
  };
  const results = [];
  for (const store of [new SessdStore({ url: daemon.unixUrl, namespace: 'flash-test' }), new session.MemoryStore()]) {
    const r = await new Browser(await serve(t, store, routes)).get('/long');
    assert.equal(r.status, 200);
    results.push(JSON.parse(r.body));
  }
  const refused = (n) => `RangeError: req.flash(): a flash type is at most 64 bytes (UTF-8) in sessd, and this one is ${n} (connect-flash takes any length): nothing was pushed`;
  assert.deepEqual(results[0], [[], [], refused(66), refused(66), refused(66), 1, ['c'], {}]);
  assert.deepEqual(results[1], results[0]);
});
