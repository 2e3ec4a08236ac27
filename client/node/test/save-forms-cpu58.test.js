'use strict';
// A save of a session get() read tells the keys its request changed by each key's JSON form,
// as read and as it is now (saveLoaded). A key whose value is the same JSON data as read takes
// its read form from the one now (sameAsParsed, readForms), instead of writing it twice. These
// cases hold that shortcut to JSON.stringify's word: a value whose form differs from the one
// read (a nested change made in place, keys in another order, an array for an object, a
// toJSON) is written over another request's change of the key; one whose form is the same
// (a copy, a Date for its ISO text, a key JSON leaves out, a class instance with the same
// fields, -0, a nesting deeper than the shortcut follows) keeps the other request's change.

const test = require('node:test');
const assert = require('node:assert/strict');
const session = require('express-session');
const { SessdStore } = require('..');
const { Daemon } = require('./helpers');

let daemon;
test.before(async () => {
  daemon = await new Daemon().start();
});
test.after(async () => {
  await daemon.cleanup();
});

function hourCookie() {
  return { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' };
}

function deep(depth) {
  let v = { leaf: [1, 'two', null] };
  for (let i = 0; i < depth; i++) v = { down: v };
  return v;
}

class Point {
  constructor() {
    this.x = 1;
    this.y = 2;
  }
}

// [name, the key's value as stored, what the request makes of it, whether that is a change].
const CASES = [
  ['a nested change made in place', { tags: ['a'] }, (v) => { v.tags.push('b'); return v; }, true],
  ['the same keys in another order', { a: 1, b: 2 }, () => ({ b: 2, a: 1 }), true],
  ['an object for an array', [1, 2], () => ({ 0: 1, 1: 2 }), true],
  ['an array for an object', { 0: 1, 1: 2 }, () => [1, 2], true],
  ['an object with a length for an array', [1, 2], () => ({ 0: 1, 1: 2, length: 2 }), true],
  ['an array of plain objects\' prototype for an object', { 0: 1, 1: 2 }, () => Object.setPrototypeOf([1, 2], Object.prototype), true],
  ['a toJSON that writes something else', { a: 1 }, () => ({ a: 1, toJSON: () => 'other' }), true],
  ['a hidden toJSON that writes something else', { a: 1 }, (v) => Object.defineProperty(v, 'toJSON', { value: () => 'other' }), true],
  ['an array with a hidden toJSON', [1], (v) => Object.defineProperty(v, 'toJSON', { value: () => [2] }), true],
  ['a number for its text', '1', () => 1, true],
  ['null for an empty object', {}, () => null, true],
  ['a key added inside', { a: 1 }, (v) => Object.assign(v, { b: 2 }), true],
  ['a key deleted inside', { a: 1, b: 2 }, (v) => { delete v.b; return v; }, true],
  ['a string changed deep inside', deep(10), (v) => { let x = v; while (x.down) x = x.down; x.leaf[1] = 'three'; return v; }, true],
  ['a copy', { a: { b: [1, { c: null }], d: 'é' } }, (v) => structuredClone(v), false],
  ['a Date for its ISO text', '2020-01-01T00:00:00.000Z', () => new Date('2020-01-01T00:00:00.000Z'), false],
  ['a key JSON leaves out', { a: 1 }, () => ({ a: 1, b: undefined, f() {} }), false],
  ['a class instance with the same fields', { x: 1, y: 2 }, () => new Point(), false],
  ['-0 for 0', 0, () => -0, false],
  ['the same nested deeper than the shortcut follows', deep(80), () => deep(80), false],
  ['an array with a hole for one with null', [1, null], () => [1, , ], false], // eslint-disable-line no-sparse-arrays
  ['an own __proto__ key copied', JSON.parse('{"__proto__":{"a":1}}'), () => JSON.parse('{"__proto__":{"a":1}}'), false],
];

for (const [name, stored, make, changes] of CASES) {
  test(`a key's value as read, then ${name}: ${changes ? 'a change, written over another request\'s' : 'no change, another request\'s change kept'}`, async (t) => {
    const ns = 'forms-cpu58';
    const store = new SessdStore({ url: daemon.unixUrl, namespace: ns });
    const other = new SessdStore({ url: daemon.unixUrl, namespace: ns, merge: false });
    t.after(() => {
      store.close();
      other.close();
    });
    const sid = `forms-${CASES.findIndex((c) => c[0] === name)}`;
    await other.set(sid, { cookie: hourCookie(), pref: stored, user: 'u1' });
    const read = await store.get(sid);
    const sess = store.createSession({ sessionID: sid, sessionStore: store }, read);
    // Another request changes the key meanwhile.
    await other.set(sid, { cookie: hourCookie(), pref: 'theirs', user: 'u1' });
    sess.pref = make(sess.pref);
    await store.set(sid, sess);
    const now = await other.get(sid);
    if (changes) assert.equal(JSON.stringify(now.pref), JSON.stringify(sess.pref), 'the request\'s change was not written');
    else assert.equal(now.pref, 'theirs', 'a value with the form read was taken for a change and written over another request\'s');
    assert.equal(now.user, 'u1');
  });
}

// With nothing else changed and no other writer: a value with the form read is no change (the
// save is a touch: sessd's bytes stay as they were), one without is written.
test('a value with the form read leaves the stored bytes as they were; one without writes them', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'forms-cpu58-b' });
  t.after(() => store.close());
  for (const [i, [name, stored, make, changes]] of CASES.entries()) {
    const sid = `bytes-${i}`;
    await store.set(sid, { cookie: hourCookie(), pref: stored });
    const before = await store.client.get('forms-cpu58-b', sid);
    const read = await store.get(sid);
    const sess = store.createSession({ sessionID: sid, sessionStore: store }, read);
    sess.pref = make(sess.pref);
    await store.set(sid, sess);
    const after = await store.client.get('forms-cpu58-b', sid);
    assert.equal(!before.equals(after), changes, `${name}: ${changes ? 'not written' : 'written though no change'}`);
  }
});

// The cookie's form is written by hand for express-session's Cookie (cookieJson): a merged
// save's bytes are its forms put together, so they must be JSON.stringify's of the session for
// every cookie express-session makes, and for one whose fields it would not make.
test('a merged save writes the cookie as JSON.stringify does, whatever its fields', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'forms-cpu58-c' });
  t.after(() => store.close());
  const hidden = (date, name, value) => Object.defineProperty(date, name, { value, configurable: true });
  const cookies = [
    ['the default', (c) => c],
    ['secure, sameSite strict', (c) => Object.assign(c, { secure: true, sameSite: 'strict' })],
    ['sameSite true, httpOnly false', (c) => Object.assign(c, { sameSite: true, httpOnly: false })],
    ['a domain and a path JSON escapes', (c) => Object.assign(c, { domain: 'example.com', path: '/a"b\\c/é\u2028\n' })],
    ['partitioned, priority', (c) => Object.assign(c, { partitioned: true, priority: 'high' })],
    ['no maxAge (a browser-session cookie)', (c) => { c.maxAge = null; return c; }],
    ['an expiry past year 9999', (c) => { c.expires = new Date(8.64e15); return c; }],
    ['a fractional maxAge', (c) => { c.originalMaxAge = 1234.5; return c; }],
    ['a maxAge that is not finite', (c) => { c.originalMaxAge = Infinity; return c; }],
    ['an expiry whose toJSON is its own', (c) => { hidden(c.expires, 'toJSON', () => 'mine'); return c; }],
    ['an expiry whose toISOString is its own', (c) => { hidden(c.expires, 'toISOString', () => 'i"so'); return c; }],
    ['an expiry whose valueOf is its own', (c) => { hidden(c.expires, 'valueOf', () => NaN); return c; }],
    ['an expiry that is a string', (c) => { c._expires = '2030-01-01T00:00:00.000Z'; return c; }],
    // Date subclasses (a time-zone library's date): their JSON is Date's, by their time value.
    ['an expiry of a Date subclass', (c) => { c.expires = new (class extends Date {})(Date.now() + 60000); return c; }],
    ['an expiry of a Date subclass whose getTime is its own', (c) => { c.expires = new (class extends Date { getTime() { return NaN; } })(Date.now() + 60000); return c; }],
    ['a domain that is an object', (c) => Object.assign(c, { domain: { toJSON: () => 'd' } })],
    ['a field of the app\'s own (not in its JSON)', (c) => Object.assign(c, { mine: 1 })],
    ['a toJSON of its own', (c) => Object.assign(c, { toJSON: () => ({ own: true }) })],
    ['a data getter of its own', (c) => Object.defineProperty(c, 'data', { get: () => ({ 'we"ird': 1, path: '/' }) })],
  ];
  for (const [i, [name, make]] of cookies.entries()) {
    const sid = `cookie-${i}`;
    await store.set(sid, { cookie: hourCookie(), cart: ['a'] });
    const read = await store.get(sid);
    const sess = store.createSession({ sessionID: sid, sessionStore: store }, read);
    // Renewed as express-session renews it before its save, so that the save renews it no more.
    sess.touch();
    make(sess.cookie);
    sess.cart = ['a', 'b'];
    const want = JSON.stringify(sess);
    await store.set(sid, sess);
    const stored = await store.client.get('forms-cpu58-c', sid);
    assert.equal(stored && stored.toString('utf8').trimEnd(), want, name);
  }
});
