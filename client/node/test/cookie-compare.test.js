'use strict';
// The touch of a page that changed nothing tells whether the request set its cookie by
// comparing express-session's Cookie with the cookie as read, on the objects
// (sameCookieAsRead), rather than by their JSON forms (sameCookie): the two must agree on
// every cookie the objects can decide, and leave the rest to the JSON forms. No daemon.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Cookie } = require('express-session');
const { SessdStore, sameCookieAsRead } = require('../lib/store');

// The JSON forms' answer, as cookieChanged worked it out before (keyForm, sameForm).
const store = Object.assign(Object.create(SessdStore.prototype), { serializer: JSON });
const byForms = (read, cookie) => store.sameForm('cookie', store.keyForm('cookie', read), store.keyForm('cookie', cookie));

// A Cookie as express-session's createSession makes it from the cookie as read.
function live(read) {
  const c = new Cookie(read);
  if (typeof read.expires === 'string') c.expires = new Date(read.expires);
  c.originalMaxAge = read.originalMaxAge;
  return c;
}

const hour = 3600000;
const at = new Date(Date.now() + hour).toISOString();
const reads = [
  { originalMaxAge: hour, expires: at, httpOnly: true, path: '/' },
  { originalMaxAge: hour, expires: at, secure: true, httpOnly: true, path: '/', sameSite: 'lax' },
  { originalMaxAge: hour, expires: at, secure: 'auto', httpOnly: false, domain: 'example.com', path: '/shop', sameSite: 'strict', priority: 'high', partitioned: true },
  { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
  { originalMaxAge: null, httpOnly: true, path: '/' },
  { httpOnly: true, path: '/' },
  { originalMaxAge: hour, expires: at, httpOnly: true, path: '/', sameSite: true },
  { originalMaxAge: hour, expires: at, httpOnly: true, path: '/', domain: null },
  { originalMaxAge: hour, expires: at, httpOnly: true, path: '/', extra: 1 },
  { originalMaxAge: hour, expires: at, httpOnly: true, path: '/', extra: { a: 1 } },
  { originalMaxAge: hour, expires: at, httpOnly: true, path: ['/'] },
  { originalMaxAge: '3600000', expires: at, httpOnly: true, path: '/' },
  { originalMaxAge: { n: 1 }, expires: at, httpOnly: true, path: '/' },
  { originalMaxAge: hour, expires: { when: 1 }, httpOnly: true, path: '/' },
  JSON.parse('{"originalMaxAge":3600000,"httpOnly":true,"path":"/","__proto__":{"x":1}}'),
  JSON.parse('{"originalMaxAge":3600000,"httpOnly":true,"path":"/","toString":"x"}'),
  { originalMaxAge: hour, expires: at, httpOnly: true, path: '/', secure: false },
  { originalMaxAge: hour, expires: at, httpOnly: 1, path: '/' },
  { originalMaxAge: 0, expires: at, httpOnly: true, path: '/' },
];
// What a request may do to its cookie (express-session's own touch first, as on every page).
const changes = [
  ['nothing', () => {}],
  ['touch', (c) => typeof c.originalMaxAge === 'number' && (c.maxAge = c.originalMaxAge)],
  ['maxAge 30 days', (c) => (c.maxAge = 30 * 86400000)],
  ['maxAge + 500 ms', (c) => typeof c.originalMaxAge === 'number' && (c.originalMaxAge += 500)],
  ['maxAge + 5 s', (c) => typeof c.originalMaxAge === 'number' && (c.originalMaxAge += 5000)],
  ['a fixed expiry', (c) => (c.expires = new Date(at))],
  ['browser session', (c) => (c.expires = null)],
  ['secure', (c) => (c.secure = true)],
  ['secure false', (c) => (c.secure = false)],
  ['secure undefined', (c) => (c.secure = undefined)],
  ['sameSite', (c) => (c.sameSite = 'none')],
  ['domain', (c) => (c.domain = 'example.org')],
  ['domain as a Date', (c) => (c.domain = new Date(0))],
  ['domain as an object', (c) => (c.domain = { x: 1 })],
  ['path', (c) => (c.path = '/other')],
  ['httpOnly off', (c) => (c.httpOnly = false)],
  ['priority undefined', (c) => (c.priority = undefined)],
  ['partitioned', (c) => (c.partitioned = true)],
  ['a function field', (c) => (c.sameSite = () => 'lax')],
  ['originalMaxAge NaN', (c) => (c.originalMaxAge = NaN)],
  ['originalMaxAge a string', (c) => (c.originalMaxAge = '3600000')],
  ['originalMaxAge null', (c) => (c.originalMaxAge = null)],
  ['an own toJSON', (c) => (c.toJSON = () => ({ path: '/' }))],
  ['a BigInt field', (c) => (c.priority = 1n)],
];

test('sameCookieAsRead agrees with the JSON forms wherever it answers, and answers a touched page', () => {
  let answered = 0;
  for (const read of reads) {
    for (const [name, change] of changes) {
      const cookie = live(read);
      change(cookie);
      const quick = sameCookieAsRead(read, cookie);
      if (quick === null) continue;
      answered++;
      assert.equal(quick, byForms(read, cookie), `${JSON.stringify(read)} after ${name}`);
    }
  }
  assert.ok(answered > reads.length * changes.length / 2, `answered ${answered} of ${reads.length * changes.length}`);
  // The common page: read, touched by express-session, compared without the JSON forms.
  const cookie = live(reads[0]);
  cookie.maxAge = cookie.originalMaxAge;
  assert.equal(sameCookieAsRead(reads[0], cookie), true);
  // Not an express-session Cookie, or a read that is not a flat object: left to the forms.
  assert.equal(sameCookieAsRead(reads[0], { ...reads[0] }), null);
  assert.equal(sameCookieAsRead([], cookie), null);
});
