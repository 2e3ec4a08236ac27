'use strict';
// SessdStore.regenerate() and flashes: the messages the regenerating request pushed to the old
// session move to the new one (passport's successFlash, pushed just before req.logIn
// regenerates), those of earlier requests go with the old session (passport's logOut
// regenerates too: the logged-out page must not show the last user's unread messages). Run
// through Express, express-session and passport (the real one when it can be required, else
// passport 0.7's logIn, logOut and authenticate success path as they are written), against
// the real daemon. Also genid(): 256-bit ids, used by express-session.

const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash, genid } = require('..');
const { FLASH_PUSHES } = require('../lib/store');
const { Daemon, Browser, listen, closeServer } = require('./helpers');

const SECRET = 'regenerate-test-secret';
const USERS = { alice: 'pw', bob: 'pw' };
let daemon;

function optional(name) {
  try {
    return require(name);
  } catch (err) {
    return null;
  }
}
const realPassport = optional('passport');
const realLocal = optional('passport-local');

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// passport 0.7's SessionManager.logIn and logOut and req.logIn/req.logOut (lib/sessionmanager.js,
// lib/http/request.js), call for call, for when passport is not installed.
const emulated = {
  name: 'passport 0.7 emulated',
  install(app) {
    app.use((req, res, next) => {
      req.user = req.session && req.session.passport && req.session.passport.user ? { id: req.session.passport.user } : null;
      req.logIn = (user, done) => {
        req.user = user;
        req.session.regenerate((err) => {
          if (err) {
            req.user = null;
            return done(err);
          }
          if (!req.session.passport) req.session.passport = {};
          req.session.passport.user = user.id;
          req.session.save((err2) => {
            if (err2) {
              req.user = null;
              return done(err2);
            }
            return done();
          });
          return undefined;
        });
      };
      req.logout = (done) => {
        req.user = null;
        if (req.session.passport) delete req.session.passport.user;
        req.session.save((err) => {
          if (err) return done(err);
          req.session.regenerate((err2) => done(err2));
          return undefined;
        });
      };
      next();
    });
  },
  // passport.authenticate('local', { successRedirect, failureRedirect, successFlash }) on
  // success: req.flash(type, msg) (not awaited), req.logIn, then the redirect.
  authenticate({ successRedirect, failureRedirect, successFlash }) {
    return (req, res, next) => {
      const name = req.body.username;
      if (USERS[name] !== req.body.password) return res.redirect(failureRedirect);
      req.flash('success', successFlash);
      req.logIn({ id: name }, (err) => (err ? next(err) : res.redirect(successRedirect)));
      return undefined;
    };
  },
};

function real() {
  const passport = new realPassport.Passport();
  passport.use(new realLocal.Strategy((username, password, done) => done(null, USERS[username] === password ? { id: username } : false)));
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, USERS[id] ? { id } : false));
  return {
    name: 'passport',
    install(app) {
      app.use(passport.session());
    },
    authenticate: (opts) => passport.authenticate('local', opts),
  };
}

const flavours = [emulated];
if (realPassport && realLocal) flavours.push(real());

// The shop of the report: login (successFlash), a background POST that leaves a flash
// unread, logout (regenerates, then flashes "Logged out"), and a page that shows the
// flashes and who is logged in.
function makeApp(store, auth, sessionOpts = {}) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600000 }, ...sessionOpts }));
  app.use(flash());
  auth.install(app);
  const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);
  app.get('/page', flash.locals(), (req, res) => res.json({ user: req.user ? req.user.id : null, sid: req.sessionID, flash: res.locals.flash }));
  app.post('/login', auth.authenticate({ successRedirect: '/page', failureRedirect: '/page', successFlash: 'Welcome!' }));
  app.post('/charge', wrap(async (req, res) => {
    await req.flash('info', 'Card ending 4242 charged');
    res.redirect(303, '/page');
  }));
  app.post('/logout', (req, res, next) => {
    req.logout((err) => {
      if (err) return next(err);
      req.flash('info', 'Logged out').then(() => res.redirect(303, '/page'), next);
      return undefined;
    });
  });
  // passport's logIn with keepSessionInfo: true: after the regenerate, the old session's
  // data is copied into the new one (lib/sessionmanager.js: merge(req.session, prevSession)).
  app.post('/login-keep', (req, res, next) => {
    req.flash('success', 'Welcome!');
    const prev = req.session;
    req.session.regenerate((err) => {
      if (err) return next(err);
      for (const k of Object.keys(prev)) if (k !== 'cookie') req.session[k] = prev[k];
      req.session.user = 'alice';
      res.redirect(303, '/page');
      return undefined;
    });
  });
  // Regenerate with none of this request's pushes pending: nothing to move.
  app.post('/regen', (req, res, next) => {
    const before = req.sessionID;
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.touched = true;
      res.json({ before, after: req.sessionID, pending: (req[FLASH_PUSHES] || []).length });
      return undefined;
    });
  });
  // This request pushes, reads its own message, then regenerates: the read took it.
  app.post('/push-pop-regen', wrap(async (req, res, next) => {
    req.flash('note', 'seen here');
    req.flash('other', 'kept');
    const seen = await req.flash('note');
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.touched = true;
      res.json({ seen });
      return undefined;
    });
  }));
  // Two regenerates in one request (a login right after a logout): the message follows.
  app.post('/regen-twice', (req, res, next) => {
    req.flash('info', 'one');
    req.flash('info', ['two', 'three']);
    req.flash('warn', 'four');
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.regenerate((err2) => {
        if (err2) return next(err2);
        req.session.touched = true;
        res.redirect(303, '/page');
        return undefined;
      });
      return undefined;
    });
  });
  // Another tab's logout destroys the session while this request runs, then this request
  // pushes (sessd drops it: 0) and regenerates: the message is moved to the new session.
  app.post('/dropped-then-regen', wrap(async (req, res, next) => {
    await store.destroy(req.sessionID);
    const n = await req.flash('success', 'made for this visitor');
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.touched = true;
      res.json({ n });
      return undefined;
    });
  }));
  return app;
}

async function serve(t, app, store) {
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  return base;
}

function sidOf(br) {
  const raw = br.cookies.get('sid');
  return raw ? decodeURIComponent(raw).slice(2).split('.')[0] : null;
}

const json = (r) => JSON.parse(r.body);

// follow(br, r): the page a 30x redirect leads to, parsed.
async function follow(br, r) {
  assert.ok(r.status >= 300 && r.status < 400, `a redirect, got ${r.status}: ${r.body}`);
  return json(await br.get(r.location));
}

async function login(br, user = 'alice') {
  return follow(br, await br.post('/login', { username: user, password: 'pw' }));
}

for (const auth of flavours) {
  test(`${auth.name}: logout does not carry an earlier request's unread flash to the logged-out session`, async (t) => {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-logout' });
    const base = await serve(t, makeApp(store, auth), store);
    const br = new Browser(base);
    assert.deepEqual((await login(br)).user, 'alice');
    // A background request flashes, and nobody reads it before the logout.
    const charge = await br.post('/charge');
    assert.equal(charge.status, 303);
    const aliceSid = sidOf(br);
    const after = await follow(br, await br.post('/logout'));
    assert.equal(after.user, null);
    assert.notEqual(sidOf(br), aliceSid, 'logout regenerated the session');
    // MemoryStore + connect-flash show "Logged out" only: so must sessd.
    assert.deepEqual(after.flash, { info: ['Logged out'] });
    assert.deepEqual(json(await br.get('/page')).flash, {}, 'shown once');
    assert.deepEqual(await store.client.flashPop(store.namespace, aliceSid, null), {}, 'nothing left under the old id');
  });

  test(`${auth.name}: successFlash pushed in the login request is shown after the login`, async (t) => {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-login' });
    const base = await serve(t, makeApp(store, auth), store);
    for (const visitor of ['first visit', 'with an earlier session']) {
      const br = new Browser(base);
      if (visitor !== 'first visit') {
        // An earlier (anonymous) request leaves a flash in the session the login replaces.
        await br.post('/charge');
      }
      const before = sidOf(br);
      const page = await login(br, 'bob');
      assert.equal(page.user, 'bob', visitor);
      assert.notEqual(sidOf(br), before, visitor);
      assert.deepEqual(page.flash, { success: ['Welcome!'] }, visitor);
      assert.deepEqual(json(await br.get('/page')).flash, {}, `${visitor}: shown once`);
      if (before) assert.deepEqual(await store.client.flashPop(store.namespace, before, null), {}, `${visitor}: nothing left under the old id`);
    }
  });
}

test('regenerate with no pushes of its own: the old session and its flashes go, nothing moves', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-none' });
  const base = await serve(t, makeApp(store, emulated), store);
  const br = new Browser(base);
  await br.post('/charge');
  const old = sidOf(br);
  assert.ok(old);
  const r = json(await br.post('/regen'));
  assert.equal(r.before, old);
  assert.notEqual(r.after, old);
  assert.equal(r.pending, 0);
  assert.equal(sidOf(br), r.after);
  assert.deepEqual(json(await br.get('/page')).flash, {});
  assert.equal(await store.client.get(store.namespace, old), null, 'the old session is gone');
  assert.deepEqual(await store.client.flashPop(store.namespace, old, null), {}, 'and its flashes with it');
  assert.deepEqual(await store.ids(), [r.after]);
});

test('regenerate does not bring back a message this request pushed and read already', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-popped' });
  const base = await serve(t, makeApp(store, emulated), store);
  const br = new Browser(base);
  await br.post('/charge');
  assert.deepEqual(json(await br.post('/push-pop-regen')).seen, ['seen here']);
  assert.deepEqual(json(await br.get('/page')).flash, { other: ['kept'] });
});

test('two regenerates in one request: its messages follow to the last session, in order', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-twice' });
  const base = await serve(t, makeApp(store, emulated), store);
  const br = new Browser(base);
  await br.post('/charge');
  const old = sidOf(br);
  assert.deepEqual((await follow(br, await br.post('/regen-twice'))).flash, { info: ['one', 'two', 'three'], warn: ['four'] });
  assert.notEqual(sidOf(br), old);
  assert.equal((await store.ids()).length, 1, 'only the last session is left');
});

test('a push sessd dropped (the session was destroyed meanwhile) is moved by the regenerate', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-dropped' });
  const base = await serve(t, makeApp(store, emulated), store);
  const br = new Browser(base);
  await br.post('/charge');
  assert.equal(json(await br.post('/dropped-then-regen')).n, 0, 'the push was dropped');
  assert.deepEqual(json(await br.get('/page')).flash, { success: ['made for this visitor'] });
});

// An app that keeps the session's data at login (passport's keepSessionInfo) expects the
// unread "Please log in first" to survive it, as it does with connect-flash, whose flashes
// are part of that data. The default still drops it (the logout case above).
test('regenerateFlashes: \'all\' moves every unread flash to the new session, for passport\'s keepSessionInfo', async (t) => {
  const cases = [
    [undefined, { success: ['Welcome!'] }],
    ['own', { success: ['Welcome!'] }],
    ['all', { info: ['Card ending 4242 charged', 'again'], success: ['Welcome!'] }],
  ];
  for (const [mode, want] of cases) {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: `regen-keep-${mode}`, regenerateFlashes: mode });
    const base = await serve(t, makeApp(store, emulated), store);
    const br = new Browser(base);
    await br.post('/charge');
    await store.client.flashPush(store.namespace, sidOf(br), 'info', 'again', 60000);
    const old = sidOf(br);
    const page = await follow(br, await br.post('/login-keep'));
    assert.notEqual(sidOf(br), old, String(mode));
    assert.deepEqual(page.flash, want, String(mode));
    assert.deepEqual(json(await br.get('/page')).flash, {}, `${mode}: shown once`);
    assert.deepEqual(await store.client.flashPop(store.namespace, old, null), {}, `${mode}: nothing left under the old id`);
    assert.deepEqual(await store.ids(), [sidOf(br)], `${mode}: only the new session is left`);
  }
  assert.throws(() => new SessdStore({ url: daemon.unixUrl, regenerateFlashes: true }), TypeError);
});

test('genid: 43 base64url characters (256 bits), used by express-session', async (t) => {
  const ids = new Set();
  for (let i = 0; i < 200; i++) {
    const id = genid();
    assert.match(id, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(id, 'base64url').length, 32);
    ids.add(id);
  }
  assert.equal(ids.size, 200);

  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'regen-genid' });
  const base = await serve(t, makeApp(store, emulated, { genid }), store);
  const br = new Browser(base);
  await br.post('/charge');
  const first = sidOf(br);
  assert.match(first, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(await store.client.get(store.namespace, first), null, 'stored under that id');
  // A regenerate (here a login) makes the new id with genid too.
  await login(br);
  assert.match(sidOf(br), /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(sidOf(br), first);
});

// Review B, finding 1: the login request pushes "Welcome back", works on (an audit write),
// and regenerates; meanwhile a second tab shows the flashes of the same session. What the
// second tab showed must not come back after the login: each message is shown once. What it
// did not pop (another type, a message that is not a string) still moves.
for (const regenerateFlashes of ['own', 'all']) {
  test(`regenerate (${regenerateFlashes}) does not move a push another tab has shown meanwhile`, async (t) => {
    const store = new SessdStore({ url: daemon.unixUrl, namespace: `regen-race-${regenerateFlashes}`, regenerateFlashes });
    const app = makeApp(store, emulated);
    let reached;
    let release;
    const atAudit = new Promise((resolve) => {
      reached = resolve;
    });
    const audited = new Promise((resolve) => {
      release = resolve;
    });
    app.post('/slow-login', async (req, res, next) => {
      req.session.user = 'pending';
      await Promise.all([req.flash('info', 'Welcome back'), req.flash('success', { points: 12 })]);
      reached();
      await audited;
      req.session.regenerate((err) => {
        if (err) return next(err);
        req.session.user = 'alice';
        res.redirect(303, '/page');
        return undefined;
      });
    });
    app.get('/info', async (req, res) => res.json(await req.flash('info')));
    const base = await serve(t, app, store);
    const br = new Browser(base);
    await br.post('/charge'); // a stored session first, as a visitor browsing before the login
    await json(await br.get('/page'));
    const loggingIn = br.post('/slow-login');
    await atAudit;
    assert.deepEqual(json(await br.get('/info')), ['Welcome back'], 'the other tab shows it');
    release();
    const page = await follow(br, await loggingIn);
    assert.deepEqual(page.flash, { success: [{ points: 12 }] }, 'shown once; the rest moved');
    assert.deepEqual(json(await br.get('/page')).flash, {});
  });
}
