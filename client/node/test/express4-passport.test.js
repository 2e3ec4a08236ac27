'use strict';
// The stack most apps moving from connect-redis + connect-flash run: Express 4 (4.21 and
// later), express-session, passport 0.7 with passport-local (failureFlash, successFlash,
// req.logout(cb)), a cart in the session and flashes after each POST-redirect. The same app
// runs on Express 4 (the express4 alias of devDependencies) and Express 5, each against the
// real daemon, driven by cookie-jar browsers; every scenario asserts what a user sees, and the
// last test checks that both majors showed their users the same pages.

const fs = require('fs');
const os = require('os');
const path = require('path');
const test = require('node:test');
const assert = require('node:assert/strict');
const session = require('express-session');
const passportPkg = require('passport');
const { Strategy: LocalStrategy } = require('passport-local');
const { SessdStore, flash, genid } = require('..');
const { Daemon, Browser, Gates, listen, closeServer } = require('./helpers');

const MAJORS = [
  { name: 'Express 4', express: require('express4'), version: require('express4/package.json').version },
  { name: 'Express 5', express: require('express'), version: require('express/package.json').version },
];

const SECRET = 'express4-passport-test-secret';
const USERS = { alice: { id: 'alice', password: 'wonderland', name: 'Alice' } };
let daemon;
let viewsDir;

test.before(async () => {
  daemon = await new Daemon().start();
  // One template, rendered by a view engine of a few lines: what res.render hands a
  // template (app.locals, res.locals, the render's own) is Express's affair, per major.
  viewsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-views-'));
  fs.writeFileSync(path.join(viewsDir, 'home.tpl'), 'home\n');
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
  if (viewsDir) fs.rmSync(viewsDir, { recursive: true, force: true });
});

// The README's cart merge: this request's additions and removals applied to theirs.
function mergeCart(base = [], mine = [], theirs = []) {
  const removed = base.filter((item) => !mine.includes(item));
  const added = mine.filter((item) => !base.includes(item) && !theirs.includes(item));
  return [...theirs.filter((item) => !removed.includes(item)), ...added];
}

function makePassport() {
  const passport = new passportPkg.Passport();
  passport.use(new LocalStrategy((username, password, done) => {
    const user = USERS[username];
    if (!user || user.password !== password) return done(null, false, { message: 'Incorrect username or password.' });
    return done(null, user, { message: `Welcome back, ${user.name}!` });
  }));
  passport.serializeUser((user, done) => done(null, user.id));
  passport.deserializeUser((id, done) => done(null, USERS[id] || false));
  return passport;
}

// The shop, written as an Express 4 app is (callbacks, no async route handlers: Express 4
// does not catch a rejected promise), which Express 5 runs unchanged.
// beforeRoutes(app): mounts middleware between passport and the routes.
function makeApp(express, store, gates, { beforeRoutes = null } = {}) {
  const passport = makePassport();
  const app = express();
  app.engine('tpl', (file, locals, cb) => {
    fs.readFile(file, 'utf8', (err, text) => {
      if (err) return cb(err);
      return cb(null, JSON.stringify({ page: text.trim(), user: locals.user, cart: locals.cart, flash: locals.flash }));
    });
  });
  app.set('views', viewsDir);
  app.set('view engine', 'tpl');
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ genid, store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false, cookie: { maxAge: 3600 * 1000 } }));
  app.use(flash());
  app.use((req, res, next) => (req.session ? next() : res.status(503).send('Try again shortly')));
  app.use(passport.initialize());
  app.use(passport.session());
  if (beforeRoutes) beforeRoutes(app);

  // A page rendered through a template: res.locals.flash (flash.locals()) and the route's own
  // locals reach it.
  app.get('/', flash.locals(), (req, res) => {
    res.render('home', { user: req.user ? req.user.id : null, cart: req.session.cart || [] });
  });
  // A page answered with JSON, no template.
  app.get('/login', flash.locals(), (req, res) => res.json({ page: 'login', user: req.user ? req.user.id : null, flash: res.locals.flash }));
  app.post('/login', passport.authenticate('local', {
    successRedirect: '/',
    failureRedirect: '/login',
    failureFlash: true,
    successFlash: true,
  }));
  // passport's custom-callback form, as many apps write it: the flash goes after req.logIn,
  // to the regenerated session.
  app.post('/login-custom', (req, res, next) => {
    passport.authenticate('local', (err, user, info) => {
      if (err) return next(err);
      if (!user) {
        req.flash('error', info.message);
        return res.redirect('/login');
      }
      return req.logIn(user, (err2) => {
        if (err2) return next(err2);
        req.flash('success', `Signed in as ${user.name}.`);
        return res.redirect('/');
      });
    })(req, res, next);
  });
  // A background action that leaves a flash no page has shown yet.
  app.post('/notify', (req, res) => {
    req.flash('info', 'Your order has shipped.');
    res.status(204).end();
  });
  // Add to cart, connect-flash style: push without awaiting, redirect. gate: hold after the
  // session is loaded until the test opens it (two adds that overlap for certain).
  app.post('/cart', (req, res, next) => {
    const add = () => {
      const item = req.body.item;
      req.session.cart = [...(req.session.cart || []), item];
      req.flash('info', `Added ${item} to your cart.`);
      res.redirect(303, '/');
    };
    if (req.body.gate) gates.hold(req.body.gate).then(add, next);
    else add();
  });
  // passport 0.7's logout: clears the user, saves, regenerates, then calls back. A flash
  // pushed before it (when=before) is this request's own: regenerate moves it (README,
  // regenerateFlashes); one pushed in the callback (when=after) goes to the new session.
  app.post('/logout', (req, res, next) => {
    const bye = `Goodbye, ${req.user ? req.user.name : 'stranger'}.`;
    if (req.body.when === 'before') req.flash('info', bye);
    req.logout((err) => {
      if (err) return next(err);
      if (req.body.when === 'after') req.flash('info', bye);
      return res.redirect('/login');
    });
  });
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err);
    return res.status(err.statusCode || 500).send(`error: ${err.message}`);
  });
  return app;
}

// serve(t, major, storeOpts): the shop on major's Express, with its own store on the daemon.
async function serve(t, major, storeOpts = {}, { url = daemon.unixUrl, ...appOpts } = {}) {
  const store = new SessdStore({ url, namespace: `e4p-${major.name.replace(' ', '')}`, ...storeOpts });
  const gates = new Gates();
  const { server, base } = await listen(makeApp(major.express, store, gates, appOpts));
  t.after(async () => {
    await closeServer(server);
    store.close();
  });
  return { base, store, gates };
}

// The session id in a browser's signed cookie (s:<id>.<signature>). Only ever compared, never
// printed: it is the session's bearer token.
function sidOf(br) {
  const raw = br.cookies.get('sid');
  return raw ? decodeURIComponent(raw).slice(2).split('.')[0] : null;
}

// page(r): what a user sees on a page: its status and the page's parsed body.
function page(r) {
  assert.equal(r.status, 200, `a page, got ${r.status}: ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body);
}

// What each major's users saw, scenario by scenario, for the last test to compare.
const seen = new Map();
function record(major, scenario, what) {
  if (!seen.has(scenario)) seen.set(scenario, {});
  seen.get(scenario)[major.name] = what;
}

for (const major of MAJORS) {
  test(`${major.name}: the app runs on Express ${major.name.slice(-1)} (${major.version})`, () => {
    assert.equal(major.version.split('.')[0], major.name.slice(-1));
    if (major.name === 'Express 4') {
      const [, minor] = major.version.split('.').map(Number);
      assert.ok(minor >= 21, `Express 4.21 or later, got ${major.version}`);
    }
  });

  test(`${major.name} + passport: a failed login redirects to /login and shows failureFlash exactly once`, async (t) => {
    const { base } = await serve(t, major);
    const br = new Browser(base);
    const r = await br.post('/login', { username: 'alice', password: 'wrong' });
    assert.equal(r.status, 302);
    assert.equal(r.location, '/login');
    assert.ok(sidOf(br), 'failureFlash made the session and its cookie (saveUninitialized: false)');
    const first = page(await br.get(r.location));
    assert.deepEqual(first, { page: 'login', user: null, flash: { error: ['Incorrect username or password.'] } });
    const second = page(await br.get('/login'));
    assert.deepEqual(second.flash, {}, 'shown once');
    // Twice in a row: each failure shows its own message, once.
    await br.post('/login', { username: 'nobody', password: 'x' });
    await br.post('/login', { username: 'alice', password: 'nope' });
    const third = page(await br.get('/login'));
    assert.deepEqual(third.flash, { error: ['Incorrect username or password.', 'Incorrect username or password.'] });
    assert.deepEqual(page(await br.get('/login')).flash, {});
    // passport-local's own failure (an empty form), and the custom-callback form.
    await br.post('/login', {});
    await br.post('/login-custom', { username: 'alice', password: 'bad' });
    const fourth = page(await br.get('/login'));
    assert.deepEqual(fourth.flash, { error: ['Missing credentials', 'Incorrect username or password.'] });
    assert.deepEqual(page(await br.get('/login')).flash, {});
    record(major, 'failed login', { status: r.status, location: r.location, pages: [first, second, third, fourth] });
  });

  test(`${major.name} + passport: a successful login shows successFlash once, sets req.user and changes the session id`, async (t) => {
    const { base, store } = await serve(t, major);
    const out = [];
    const visitors = [
      ['first visit', '/login', { success: ['Welcome back, Alice!'] }],
      ['after a failed login', '/login', { success: ['Welcome back, Alice!'] }],
      ['custom callback, flash after req.logIn', '/login-custom', { success: ['Signed in as Alice.'] }],
    ];
    for (const [visitor, route, welcome] of visitors) {
      const br = new Browser(base);
      if (visitor !== 'first visit') {
        await br.post('/login', { username: 'alice', password: 'wrong' });
        assert.deepEqual(page(await br.get('/login')).flash, { error: ['Incorrect username or password.'] });
      }
      const before = sidOf(br);
      const r = await br.post(route, { username: 'alice', password: 'wonderland' });
      assert.equal(r.status, 302, visitor);
      assert.equal(r.location, '/', visitor);
      const after = sidOf(br);
      assert.ok(after, `${visitor}: a session cookie`);
      assert.ok(after !== before, `${visitor}: the login regenerated the session id (fixation defence)`);
      if (before) {
        assert.equal(await store.get(before), null, `${visitor}: the pre-login session is gone`);
        assert.deepEqual(await store.client.flashPop(store.namespace, before, null), {}, `${visitor}: no flash left under the old id`);
      }
      const home = page(await br.get('/'));
      assert.deepEqual(home, { page: 'home', user: 'alice', cart: [], flash: welcome }, visitor);
      const again = page(await br.get('/'));
      assert.deepEqual(again, { page: 'home', user: 'alice', cart: [], flash: {} }, `${visitor}: shown once, still logged in`);
      const stored = await store.get(after);
      assert.deepEqual(stored.passport, { user: 'alice' }, `${visitor}: passport's user in the stored session`);
      assert.equal(stored._flash, undefined, `${visitor}: no flash mark left in a session the login saved`);
      out.push({ visitor, status: r.status, location: r.location, home, again });
    }
    record(major, 'successful login', out);
  });

  test(`${major.name} + passport: failureFlash holds the redirect until the flash is stored, even with sessd stalled`, async (t) => {
    // A daemon of its own, stopped (SIGSTOP) just before passport pushes: without the hold,
    // express-session would send the redirect's headers at once, and a browser following
    // them on another app process could find no flash yet.
    const d = await new Daemon().start();
    t.after(() => d.cleanup());
    let resumedAt = 0;
    let resumed = null;
    const beforeRoutes = (app) => app.post('/login', (req, res, next) => {
      resumedAt = 0;
      d.pause().then(() => {
        resumed = new Promise((r) => setTimeout(r, 200)).then(() => {
          resumedAt = Date.now();
          process.kill(d.proc.pid, 'SIGCONT');
        });
        next();
      }, next);
    });
    const { base, store } = await serve(t, major, {}, { url: d.unixUrl, beforeRoutes });
    const br = new Browser(base);
    const r = await br.post('/login', { username: 'alice', password: 'wrong' });
    await resumed;
    assert.equal(r.status, 302);
    assert.ok(resumedAt > 0 && r.headersAt >= resumedAt, `the redirect's headers came ${resumedAt - r.headersAt} ms before sessd could store the flash`);
    // Another app process (a store of its own, its own connection) finds it at once.
    const other = new SessdStore({ url: d.unixUrl, namespace: store.namespace, poolSize: 1 });
    try {
      assert.deepEqual(await other.client.flashPop(other.namespace, sidOf(br), 'error'), ['Incorrect username or password.']);
    } finally {
      other.close();
    }
    assert.deepEqual(page(await br.get('/login')).flash, {}, 'taken by the other process, not shown twice');
  });

  for (const when of ['before', 'after']) {
    test(`${major.name} + passport: req.logout(cb) logs out, shows the flash pushed ${when} it, drops older unread ones, and the old id is dead`, async (t) => {
      const { base, store } = await serve(t, major);
      const br = new Browser(base);
      await br.post('/login', { username: 'alice', password: 'wonderland' });
      assert.equal(page(await br.get('/')).user, 'alice');
      // An earlier request leaves a flash that no page shows before the logout.
      assert.equal((await br.post('/notify')).status, 204);
      await br.post('/cart', { item: 'apple' });
      const oldCookie = br.cookies.get('sid');
      const oldSid = sidOf(br);

      const r = await br.post('/logout', { when });
      assert.equal(r.status, 302);
      assert.equal(r.location, '/login');
      assert.ok(sidOf(br) && sidOf(br) !== oldSid, 'logout regenerated the session id');
      const after = page(await br.get('/login'));
      // README: regenerate() moves the flashes the regenerating request pushed ("Goodbye"
      // before req.logout), one pushed after it goes to the new session, and the unread ones
      // of earlier requests go with the old session: "Your order has shipped." and the
      // cart's "Added apple" (its redirect was not followed).
      assert.deepEqual(after, { page: 'login', user: null, flash: { info: ['Goodbye, Alice.'] } });
      assert.deepEqual(page(await br.get('/login')).flash, {}, 'shown once');
      const home = page(await br.get('/'));
      assert.deepEqual(home, { page: 'home', user: null, cart: [], flash: {} }, 'logged out, the cart went with the session');

      // The old cookie no longer logs anyone in, and does not bring the session back.
      assert.equal(await store.get(oldSid), null, 'the old session is gone from sessd');
      assert.deepEqual(await store.client.flashPop(store.namespace, oldSid, null), {}, 'no flash left under the old id');
      const thief = new Browser(base);
      thief.cookies.set('sid', oldCookie);
      const stolen = page(await thief.get('/'));
      assert.deepEqual(stolen, { page: 'home', user: null, cart: [], flash: {} }, 'the old id shows nobody logged in');
      assert.equal(await store.get(oldSid), null, 'still gone after a request with the old cookie');
      record(major, `logout, flash ${when}`, { status: r.status, location: r.location, after, home, stolen });
    });
  }

  for (const mergeKey of [true, false]) {
    const label = mergeKey ? 'with the README\'s mergeKey both are kept' : 'without a mergeKey the later save wins whole (README)';
    test(`${major.name} + passport: a cart across requests, two concurrent adds: ${label}`, async (t) => {
      const opts = mergeKey ? { mergeKey: (key, base, mine, theirs) => (key === 'cart' ? mergeCart(base, mine, theirs) : mine) } : {};
      const { base, gates } = await serve(t, major, opts);
      const br = new Browser(base);
      await br.post('/login', { username: 'alice', password: 'wonderland' });
      await br.get('/');
      // One add, then the page: the cart lives in the session across requests.
      const one = await br.post('/cart', { item: 'apple' });
      assert.equal(one.status, 303);
      assert.equal(one.location, '/');
      const afterOne = page(await br.get('/'));
      assert.deepEqual(afterOne, { page: 'home', user: 'alice', cart: ['apple'], flash: { info: ['Added apple to your cart.'] } });
      assert.deepEqual(page(await br.get('/')).cart, ['apple'], 'still there on the next page');

      // Two tabs add at once: both have loaded ['apple'] before either saves.
      const adds = [br.post('/cart', { item: 'pear', gate: 'pear' }), br.post('/cart', { item: 'plum', gate: 'plum' })];
      await gates.arrived('pear');
      await gates.arrived('plum');
      gates.open('pear');
      gates.open('plum');
      const answers = await Promise.all(adds);
      assert.deepEqual(answers.map((a) => a.status), [303, 303]);
      const after = page(await br.get('/'));
      assert.equal(after.user, 'alice');
      // Flashes are atomic beside the session: both shown, once, whatever the cart's merge.
      assert.deepEqual([...after.flash.info].sort(), ['Added pear to your cart.', 'Added plum to your cart.']);
      if (mergeKey) {
        assert.deepEqual([...after.cart].sort(), ['apple', 'pear', 'plum']);
      } else {
        assert.equal(after.cart.length, 2, `one add lost: ${JSON.stringify(after.cart)}`);
        assert.equal(after.cart[0], 'apple');
        assert.ok(['pear', 'plum'].includes(after.cart[1]));
      }
      assert.deepEqual(page(await br.get('/')).flash, {}, 'shown once');
      record(major, `cart, mergeKey ${mergeKey}`, { afterOne, cart: mergeKey ? [...after.cart].sort() : after.cart.length, flash: [...after.flash.info].sort() });
    });
  }
}

test('Express 4 and Express 5 showed their users the same pages', () => {
  assert.equal(seen.size, 6, `every scenario recorded (${[...seen.keys()].join(', ')})`);
  for (const [scenario, byMajor] of seen) {
    assert.deepEqual(Object.keys(byMajor).sort(), ['Express 4', 'Express 5'], `${scenario}: run on both majors`);
    assert.deepEqual(byMajor['Express 4'], byMajor['Express 5'], scenario);
  }
});
