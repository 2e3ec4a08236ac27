'use strict';
// users-64's acceptance review: a login during a bot's flood, sessd full with --when-full
// drop-unread. README.md ("No silent evictions") and sessd(8) (--when-full) say the drops
// never take a session a client read back, nor one of the 128 created last, "a login's new
// session before its redirect reads it". A login's session is written (SET) and read only by
// the page its 303 leads to: a browser's round trip later (tens to hundreds of ms on a phone),
// during which a flood of 2,000 anonymous sessions a second makes more than 128. The user was
// told "logged in" and the next page is logged out: the silent logout sessd promises not to do.
// bench/users-64/flood-login shows it live (7 and 2 of 40 logins on a loaded 2-core machine).
// Fixed in connect-sessd (stop 64): the first save of the session regenerate() made is read
// back at once (store.js, SessionState.regenerated), so that sessd no longer counts it unread.
const test = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const session = require('express-session');
const { SessdStore, Client, flash, genid } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');

test('users64: a login answered 303 during a flood is still logged in on the page it redirects to (--when-full drop-unread)', async (t) => {
  const d = new Daemon({ extraArgs: ['--max-memory', '2000000', '--when-full', 'drop-unread'] });
  await d.start();
  t.after(() => d.cleanup());
  const store = new SessdStore({ url: d.unixUrl, namespace: 'shop' });
  const bots = new Client({ url: d.unixUrl });
  t.after(() => { store.close(); bots.close(); });
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ genid, store, secret: 'users64-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 3600 * 1000 } }));
  app.use(flash());
  app.post('/login', (req, res, next) => req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body.username;
    req.session.save(async (e) => {
      if (e) return next(e);
      await req.flash('info', 'Welcome back').catch(() => {});
      res.redirect(303, '/');
    });
  }));
  app.get('/', (req, res) => res.send(`Hello ${req.session.user || 'stranger'}`));
  const { server, base } = await listen(app);
  t.after(() => closeServer(server));

  // An app that saves a session for every anonymous visitor, and a bot visiting it: the store
  // is full of sessions no one reads back, and drop-unread makes room from them.
  const bot = Buffer.alloc(1500, 'x');
  let n = 0;
  // 50 at a time in order, as a bot's visits come: each batch's sessions are newer than the last's.
  const flood = async (count) => {
    for (const end = n + count; n < end;) await Promise.all(Array.from({ length: 50 }, () => bots.set('shop', `bot${n++}`, bot, 3600 * 1000)));
  };
  await flood(2000);
  const br = new Browser(base);
  const login = await br.request('POST', '/login', { username: 'ada' });
  assert.equal(login.status, 303);
  // The bot's visits during the browser's round trip to follow the 303: 1.5 s at 2,000 a second
  // (after 1,000 the login was dropped in 1 run of 3; these 3,000 are 2.5 stores full).
  // USERS64_CONTROL=1: the login's session read (TOUCH) before the flood, as its redirect would:
  // then it passes (3 of 3), so what fails is the drop of a session no one read yet.
  if (process.env.USERS64_CONTROL) await bots.touch('shop', decodeURIComponent(br.cookies.get('connect.sid')).slice(2).split('.')[0], 3600 * 1000);
  await flood(3000);
  const stats = await bots.stats(null);
  const page = await br.request('GET', '/');
  assert.equal(page.body, 'Hello ada', `the login answered 303 is logged out on its next page (${stats.evicted_total} sessions dropped)`);
});
