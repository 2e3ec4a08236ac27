'use strict';
const crypto = require('crypto');
const util = require('util');
// Node 18.14 and later; without it, only ASCII data is read as text (see exactText).
const { isUtf8 } = require('buffer');
// SessdStore: an express-session store on sessd, with connect-redis v7 semantics.

const { Client, dataTag, optionNumber } = require('./client');
const codec = require('./codec');
const { Migration } = require('./migrate');

let BaseStore;
let Cookie = null;
let Session = null;
try {
  ({ Store: BaseStore, Cookie, Session } = require('express-session'));
} catch (err) {
  // express-session is a peer dependency; without it the store is still a usable
  // EventEmitter (for tools and tests that use the Client directly).
  BaseStore = require('events').EventEmitter;
}

const DEFAULT_TTL_S = 86400;
// A session object's hidden state: one property, symbol-keyed and not enumerable, so that
// neither express-session's change check, nor the serializer, nor Object.keys, for...in or
// util.inspect sees it, whose value is a SessionState. One property rather than one per field:
// a page view defined six (each Object.defineProperty goes through the runtime and leaves
// the object slower to read), about 1.5 us of its 17 us of store calls.
const STATE = Symbol('connect-sessd session state');

class SessionState {
  constructor() {
    // On a session read from sessd (not one made in this request): set by createSession.
    this.stored = false;
    // On a session get() read (and carried onto req.session by createSession), with merge on:
    // what set() needs to write only this request's changes (see saveLoaded): { key, data
    // (the bytes sessd holds, as far as this request knows: SET_IF expects their tag; as read,
    // their text when that is exact, see exactText), text
    // (data decoded, as get() parsed it; null once data is a save's, or under a raw
    // serializer), forms (Map: top-level key -> its serialized form, as this request last
    // read or wrote it, or a ReadForm to make it from, read through formAt; null until the
    // first save works it out from data), cookie (the cookie
    // get() parsed from data: what forms would hold for it while forms is null), stored (null
    // when the session object is exactly what sessd holds plus this request's changes; else
    // the bytes last written, a merge of another request's data), gone (sessd no longer has
    // it), adopted (true once cookie holds a lifetime adoptNewerLifetime took, not this
    // request's) }.
    this.loaded = undefined;
    // On a session get() read with LOAD (and carried onto req.session by createSession): what
    // that LOAD saw, { client, namespace, key, flashes (the messages queued in the session
    // then, all types) }, so that flash() can answer a pop of a session that had none without
    // asking sessd (see flash.js, nothingQueued). Absent when a daemon older than LOAD
    // answered with GET.
    this.flashCount = undefined;
    // On a session object this request saved to sessd (set() went through, or its save became
    // a touch): the store holds it, so flash() need not mark it for saving, and
    // express-session's touch at the end of the request (it touches after an explicit
    // req.session.save() that nothing changed since) is already done: sent, it cost a round
    // trip, and over a merged save it cut back a longer lifetime that another request's
    // cookie had given (see saveLoaded). { cookie (the cookie's JSON form as saved), whole,
    // atMs (when the save was made), untilMs (atMs and the lifetime it gave, before which
    // sessd does not end the session) }: a cookie the request set after its save (a "remember
    // me" after req.session.save()) is saved at that touch (see touch), and a request that
    // answers long after its save is touched then (see SAVED_RENEW_AFTER_MS).
    this.saved = undefined;
    // On a session object whose save failed (set() rejected: sessd stuck or down, NO_MEMORY,
    // ...), or a flash pushed to it that failed so (flash.js: a logout's "Signed out" after
    // regenerate() marks the new session for saving). Once the request has answered that with
    // a 5xx (the app's error handler, as the README's does), express-session's own save or
    // touch at the end of the request is not made (see answeredFailedSave): it held the error
    // page until it was done, another timeoutMs or restartWaitMs on a stuck or restarting
    // sessd (a cart add's 503 came after 10 s with sessd stopped), and a save failing again
    // reached Express's final handler, which logged its stack and destroyed the browser's
    // socket.
    this.saveFailed = false;
    // On a session read from sessd (set by createSession): the Date object its cookie's
    // expires held when it was read. express-session renews the cookie (Session.touch, a new
    // Date) only as the response goes out; until then the expires is the one the session's
    // last save wrote, which touches since have not rewritten (a touch writes no data). While
    // the cookie still holds this very object, the lifetime to give the session is its maxAge
    // from now (see requestTtlMs), not that stale instant.
    this.loadedExpires = undefined;
    // On a session get() read that sessd may end before its request renews it (see
    // endsSoon), for createSession, which keeps it (see keep): { key, data (as read) }.
    this.keep = undefined;
    // On a session whose end-of-request save flash() started early, pipelined behind a flash
    // request (see presave): { done (a promise that settles with that save, never rejects),
    // err (the error that save of this request's changes failed with, for set() to answer
    // with, once; else null) }.
    this.presave = undefined;
    // How many set() calls of the session are under way (see whileSaving), and the promise of
    // the latest while it is (undefined after): a save or touch that comes meanwhile waits for
    // it (see set, touch).
    this.saving = 0;
    this.lastSave = undefined;
    // On the session regenerate() made (a login's, passport's): its first whole save is read
    // back at once (see saveOther). Until the page its redirect leads to read it, sessd counted
    // it unread, and a full sessd with --when-full drop-unread, flooded by a bot's sessions,
    // dropped it as one a visitor never came back to: the user told "logged in" found the next
    // page logged out (users-64: 2 and 7 of 40 logins).
    this.regenerated = false;
  }
}

// stateOf(sess): the hidden state of sess, undefined when it has none (or is no object).
function stateOf(sess) {
  return sess !== null && typeof sess === 'object' ? sess[STATE] : undefined;
}

// stateFor(sess): the hidden state of sess, made when it has none of its own; null for what
// takes no properties (not an object, or not extensible: a serializer's frozen session).
function stateFor(sess) {
  if (sess === null || typeof sess !== 'object' || !Object.isExtensible(sess)) return null;
  if (Object.prototype.hasOwnProperty.call(sess, STATE)) return sess[STATE];
  const inherited = sess[STATE];
  const state = newState(sess);
  // One inherited (an object made over a session) is copied, not shared, as the fields were
  // each defined on the object itself.
  if (inherited !== undefined) Object.assign(state, inherited);
  return state;
}

// newState(sess): a new hidden state on sess, an extensible object that has none of its own
// (one JSON.parse or express-session's Session made).
function newState(sess) {
  const state = new SessionState();
  Object.defineProperty(sess, STATE, { value: state, configurable: true });
  return state;
}

// On a request, set by flash(): the flash pushes this request made that none of its pops has
// taken since, in the order made: [{ namespace, key, type, msg, result (the push's promise) }].
// regenerate() moves those of the old id, and only those (see there). On the request, not
// the store: a store serves many requests at once.
const FLASH_PUSHES = Symbol('connect-sessd flash pushes');
// On a request, while a regenerate() of its session is under way (from the call until the new
// session is in place and the moved flashes are sent): a promise that resolves then. A flash
// pushed meanwhile waits for it and goes to the new session (see flash.js, push); sent at
// once, it went to the old id after the DESTROY and was dropped.
const REGENERATING = Symbol('connect-sessd regenerating');
const DEFAULT_MERGE_ATTEMPTS = 25;
// How many GETs all() (DESTROYs for clear() with a prefix) has under way at once.
const ALL_WINDOW = 64;
// The failures a TOUCH is spared (renew): the daemon's disk, or the connection under it.
const TOUCH_SPARED = new Set(['ESESSD_IO_ERROR', 'ESESSD_CLOSED', 'ESESSD_DISCONNECTED', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE']);
// Refusals of the save that replaces a touch when only the cookie changed (saveCookie), after
// which the touch is made instead.
const COOKIE_SAVE_TOUCHED = new Set(['ESESSD_NO_MEMORY', 'ESESSD_LIMIT', 'ESESSD_TOO_LARGE', 'ESESSD_CONFLICT']);
// Client's options: a store that opens its own connections passes them on.
const CONNECTION_OPTIONS = ['url', 'poolSize', 'timeoutMs', 'connectTimeoutMs', 'reconnectMinMs', 'reconnectMaxMs', 'restartWaitMs', 'clientName', 'auth', 'seal', 'requireAuth'];
const STORE_OPTIONS = ['client', 'namespace', 'prefix', 'ttl', 'serializer', 'disableTouch', 'disableTTL', 'scanCount', 'merge', 'mergeKey', 'mergeAttempts', 'mergeBackoffMaxMs', 'regenerateFlashes', 'migrateFrom', 'migrateTimeoutMs', 'keepReads'];
// What regenerate() moves to the new session: 'own', the flashes the regenerating request
// pushed; 'all', every flash still queued (for passport's keepSessionInfo, see regenerate).
const REGENERATE_FLASHES = new Set(['own', 'all']);
const KNOWN_OPTIONS = new Set([...STORE_OPTIONS, ...CONNECTION_OPTIONS]);

// The edit distance of a and b (insertions, deletions, substitutions), for "did you mean".
function editDistance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

// warnUnknownOptions(what, opts, known): a process warning naming the options of ${opts}
// not in the Set ${known}, each with the known one it probably meant; ${what} names the
// constructor or middleware. A misspelt option is otherwise silently the default:
// { namespce: 'shop' } would put the app's sessions in the shared "default" namespace.
// (A warning, not an error: options of another store carried over in a migration, such as
// connect-redis's logErrors, must not stop the app.)
function warnUnknownOptions(what, opts, known) {
  const unknown = Object.keys(opts).filter((name) => opts[name] !== undefined && !known.has(name));
  if (unknown.length === 0) return;
  const described = unknown.map((name) => {
    let best = null;
    let bestDistance = 3;
    for (const k of known) {
      const d = editDistance(name.toLowerCase(), k.toLowerCase());
      if (d < bestDistance) {
        best = k;
        bestDistance = d;
      }
    }
    return best ? `${name} (did you mean ${best}?)` : name;
  });
  process.emitWarning(`connect-sessd ${what}: unknown option(s) ignored: ${described.join(', ')}`, { code: 'CONNECT_SESSD_UNKNOWN_OPTION' });
}
// Options connect-redis takes, checked as a migrating app may set them (from the environment,
// so perhaps strings): refused here, naming the option, rather than misread or failing each
// request later.

// checkPrefix(prefix): the prefix, a string leaving room for an id in sessd's 128 bytes. Not a
// string, it was coerced ("[object Object]sid"); too long, every request failed.
function checkPrefix(prefix) {
  if (typeof prefix !== 'string') throw new TypeError(`prefix must be a string, got ${util.inspect(prefix)}`);
  if (Buffer.byteLength(prefix) > 127) throw new RangeError('prefix must be at most 127 bytes: with the session id after it, a sessd id is at most 128');
  return prefix;
}

// checkSerializer(serializer): one with stringify and parse, or every page failed at its load.
function checkSerializer(serializer) {
  if (serializer === null || (typeof serializer !== 'object' && typeof serializer !== 'function') || typeof serializer.stringify !== 'function' || typeof serializer.parse !== 'function') {
    throw new TypeError('serializer must be an object with stringify(sess) and parse(data) methods');
  }
  return serializer;
}

// checkFlag(name, v): a boolean option, false when not given (undefined or null, as
// connect-redis takes them). A string such as "false" (from the environment) was true, and
// disabled touches or expiry without a word.
function checkFlag(name, v) {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${util.inspect(v)}`);
  return v;
}

// checkScanCount(v): the LIST page size, a whole number of at least 1 (or a string of one, as
// read from the environment). A string went to sessd as a str, which it answers BAD_REQUEST,
// closing the connection under the requests queued behind it.
function checkScanCount(v) {
  const n = optionNumber(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`scanCount must be a whole number of at least 1, got ${util.inspect(v)}`);
  return n;
}

// After a CONFLICT, a save waits a random 0..min(2^attempt, 32) ms before it reads the session
// again: requests that collided at once would otherwise retry in step, one winning per round.
// Measured side by side with 25 attempts (N clients saving one session in a closed loop): a
// 32 ms cap ran out of attempts in 0.01% of saves at N=32 and 4% at 64, against 0.5% and 19%
// with 16 ms; 4 ms was worse still; none failed at 8 or 16 either way.
const MERGE_BACKOFF_MAX_MS = 32;
// A change of a cookie's originalMaxAge by up to this much is no change: express-session's
// touch() recomputes it from the clock on every request, and it may come out a millisecond off.
const COOKIE_MAXAGE_SLACK_MS = 1000;
// A request that saved its session and answers more than this long after the save is touched
// (or its second save of the same session made a touch) at its end after all. express-session
// renews the cookie only as the response goes out, so the browser's cookie ends that much
// later than the lifetime the save gave the session (its cookie's maxAge from then): a save-first
// request that then waited on a slow payment call or e-mail had sessd end the session before
// the browser dropped the cookie, by the whole wait (bench/soak.js, on a loaded machine: up to
// 256 ms with no wait in the app at all). A quicker request saves its touch unless the
// browser would keep its cookie past that lifetime all the same (see savedShort): the
// cookie's Expires has whole seconds, which hide a lifetime that ends later than the cookie's
// exact expiry, not one that ends earlier.
const SAVED_RENEW_AFTER_MS = 1000;
// A session read with less than this left in sessd (or less than half its lifetime, for a
// short one) is renewed as its request starts (see endsSoon): a request that took longer
// than what the session had left found it gone at its end. Longer than any page but a
// stalled one; a short session's half keeps the extra touch to the pages that come late.
const KEEP_MARGIN_MS = 60000;
// A session whose data does not say how long sessd keeps it (a browser-session cookie, whose
// lifetime is the ttl option; a ttl function) can be told apart only by asking sessd, a TTL
// with every read once the store has met one (ttlWithLoad): done only where the lifetime the
// request gives is at most this. A request runs across the end of a longer-lived session only
// when its user comes back in the last seconds of that long an absence (express-session's
// default cookie has no maxAge and the store's default ttl is a day), too seldom to add a
// request to every page for; an idle timeout of minutes is another matter.
const ASK_LIFETIME_MAX_MS = 3600000;
// How far past the lifetime its save gave the session a browser may keep the cookie of a quick
// save-first request (see savedShort) without a touch at its end: the last moments of a
// cookie's life, which sessd mostly covers anyway (it counts the lifetime from when it reads
// the save, later than the store does). Past it, the end touches: a request whose response
// went out a few hundred ms after its save could leave that long a window in which the
// browser still sent the cookie of a session sessd had ended. Below it, a quick request
// keeps its saved round trip whatever second its cookie ends in.
const SAVED_EXPIRES_SLACK_MS = 100;
// The form of a value the serializer could not write on its own: never equal to any form.
const UNKNOWN_FORM = Symbol('connect-sessd unknown form');

function asBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.length);
  return Buffer.from(String(v), 'utf8');
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function ownValue(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

// put(obj, key, value): obj[key] = value as an own property, "__proto__" included.
function put(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

// sameCookie(a, b): whether two cookie forms (JSON) differ by no more than what express-session
// changes on every request by itself: `expires` (the TTL carries the expiry) and an
// originalMaxAge off by a few milliseconds. An originalMaxAge that differs more is still no
// change when both cookies end at the same instant: an app that ends its sessions at a fixed
// time sets cookie.expires to it on each request, and express-session's setter makes
// originalMaxAge that instant less the request's time, shorter on every page; taken for a
// change, every page that changed nothing saved the whole session instead of touching it.
function sameCookie(a, b) {
  if (a === b) return true;
  const [x, y] = cookiesWithSameFields(a, b, EXPRESS_LIFETIME_FIELDS);
  if (x === null) return false;
  const mx = x.originalMaxAge;
  const my = y.originalMaxAge;
  if (typeof mx === 'number' && typeof my === 'number') {
    return Math.abs(mx - my) <= COOKIE_MAXAGE_SLACK_MS || sameInstant(x.expires, y.expires);
  }
  return mx === my;
}

// The fields of a cookie's JSON form that say its lifetime: express-session's, and those
// @fastify/session adds (originalExpires, the expiry as read).
const EXPRESS_LIFETIME_FIELDS = new Set(['expires', 'originalMaxAge']);
const LIFETIME_FIELDS = new Set(['expires', 'originalExpires', 'originalMaxAge']);

// cookiesWithSameFields(a, b, lifetime): two cookie forms (JSON) parsed, [x, y], when they are
// objects whose fields but those in the Set lifetime are the same; else [null, null]. A field
// that is null is no field, and _expires is expires (see cookieFields).
function cookiesWithSameFields(a, b, lifetime) {
  let x;
  let y;
  try {
    x = cookieFields(JSON.parse(a));
    y = cookieFields(JSON.parse(b));
  } catch (err) {
    return [null, null];
  }
  if (!isPlainObject(x) || !isPlainObject(y)) return [null, null];
  const keys = (o) => Object.keys(o).filter((k) => !lifetime.has(k) && o[k] !== null).sort();
  const kx = keys(x);
  const ky = keys(y);
  if (kx.length !== ky.length || kx.some((k, i) => k !== ky[i] || JSON.stringify(x[k]) !== JSON.stringify(y[k]))) return [null, null];
  return [x, y];
}

// cookieFields(o): a cookie as parsed (o) with its expiry under expires. A serializer that writes
// an object's own fields (MessagePack's encode, which knows no toJSON) stores express-session's
// and @fastify/session's Cookie with the expiry under _expires, the field behind their
// accessor, where their JSON form has expires: compared as they were, such a cookie read back
// differed from every request's, so each page view under MessagePack was a save of a changed
// cookie, written over a "remember me" another tab had saved meanwhile (and noted as the
// newest lifetime), and a slow @fastify/session page wrote its own lifetime back over it
// (test/node63-fastify-serializers.test.js).
function cookieFields(o) {
  if (!isPlainObject(o) || !Object.prototype.hasOwnProperty.call(o, '_expires')) return o;
  const out = { ...o };
  delete out._expires;
  if (out.expires === undefined) out.expires = o._expires;
  return out;
}

// The fields of express-session's Cookie in its JSON form (Cookie.prototype.data) that
// sameCookie compares as they are: all but expires and originalMaxAge.
const COOKIE_FIELDS = ['partitioned', 'priority', 'secure', 'httpOnly', 'domain', 'path', 'sameSite'];
const COOKIE_TO_JSON = Cookie ? Cookie.prototype.toJSON : null;

// jsonScalar(v): whether v is a value JSON writes as itself and reads back the same: a string,
// a boolean, null or a finite number. Two of them have the same JSON form exactly when ===.
function jsonScalar(v) {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

// sameCookieAsRead(read, cookie): sameCookie(JSON.stringify(read), JSON.stringify(cookie)),
// worked out on the objects, for the touch of a page that changed nothing (see
// cookieChanged): read, the cookie as JSON.parse read it from sessd; cookie, express-session's
// Cookie on the request. Its JSON form is its data: the two stringifies and sameCookie's two
// parses cost each page view about 3 us, more than the rest of its touch. Returns null when it
// cannot tell that way (a read that is not a flat object of JSON scalars, a field of the Cookie
// that is no JSON scalar, a Cookie whose JSON is not its data, lifetimes that differ by more
// than the slack, left to sameCookie's sameInstant); the caller then compares the JSON forms.
function sameCookieAsRead(read, cookie) {
  if (!Cookie || !(cookie instanceof Cookie) || cookie.toJSON !== COOKIE_TO_JSON) return null;
  if (!isPlainObject(read) || Object.getPrototypeOf(read) !== Object.prototype) return null;
  let data;
  try {
    data = cookie.data;
  } catch (err) {
    return null;
  }
  let compared = 0;
  for (const k of Object.keys(read)) {
    if (k === 'expires' || k === 'originalMaxAge') continue;
    const v = read[k];
    if (!jsonScalar(v)) return null;
    const w = Object.prototype.hasOwnProperty.call(data, k) ? data[k] : undefined;
    // JSON leaves out a field that is undefined (or a function): one form has the key, the other not.
    if (w === undefined || typeof w === 'function' || typeof w === 'symbol') return false;
    if (!jsonScalar(w)) return null;
    if (v !== w) return false;
    compared++;
  }
  let present = 0;
  for (const k of COOKIE_FIELDS) {
    const w = data[k];
    if (w === undefined || typeof w === 'function' || typeof w === 'symbol') continue;
    if (!jsonScalar(w)) return null;
    present++;
  }
  if (present !== compared) return false;
  const mx = read.originalMaxAge;
  let my = data.originalMaxAge;
  if (typeof my === 'function' || typeof my === 'symbol') my = undefined;
  if ((mx !== undefined && !jsonScalar(mx)) || (my !== undefined && !jsonScalar(my))) return null;
  if (typeof mx === 'number' && typeof my === 'number') return Math.abs(mx - my) <= COOKIE_MAXAGE_SLACK_MS ? true : null;
  return mx === my;
}

// sameInstant(a, b): whether two cookie expiries (JSON: ISO strings) name the same instant,
// give or take express-session's millisecond drift (its touch recomputes the expiry from
// originalMaxAge and the clock).
function sameInstant(a, b) {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  return Number.isFinite(ta) && Number.isFinite(tb) && Math.abs(ta - tb) <= COOKIE_MAXAGE_SLACK_MS;
}

// sameLifetimeSet(read, now): whether the cookie of a copied session (see copiedSession) as its
// request saves it (now: its JSON form) keeps the lifetime and fields of the cookie it was
// read with (read: its JSON form): the request set none of them. @fastify/session restores a
// session's cookie with its expiry renewed (the stored originalMaxAge from the load; the
// stored expiry, without one) and writes the expiry it read as originalExpires: those differ
// on every request by themselves. A request that set cookie.maxAge (a "remember me" ticked or
// unticked), its expires (with no maxAge), or any other field (options()) did set it.
function sameLifetimeSet(read, now) {
  if (read === now) return true;
  const [x, y] = cookiesWithSameFields(read, now, LIFETIME_FIELDS);
  if (x === null) return false;
  const mx = x.originalMaxAge;
  const my = y.originalMaxAge;
  if (typeof mx === 'number' || typeof my === 'number') {
    return typeof mx === 'number' && typeof my === 'number' && Math.abs(mx - my) <= COOKIE_MAXAGE_SLACK_MS;
  }
  if (x.expires === undefined || x.expires === null || y.expires === undefined || y.expires === null) {
    return (x.expires ?? null) === (y.expires ?? null) && (mx ?? null) === (my ?? null);
  }
  return (mx ?? null) === (my ?? null) && sameInstant(x.expires, y.expires);
}

// adoptStoredLifetime(cookie, stored): gives the cookie of a copied session (see
// copiedSession) whose request set no lifetime (sameLifetimeSet) the lifetime of the cookie
// sessd holds now (stored: as parsed), which another request's save set since the read: its
// originalMaxAge from now, or (none) its expiry, or none (a cookie for the browser's session).
// @fastify/session sends the browser the session's cookie once its save is done, so the
// response carries it too. Not one whose lifetime has passed (that save's to act on, as
// saveLoaded leaves an expired cookie of another request's). Returns whether it changed the
// cookie.
function adoptStoredLifetime(cookie, stored) {
  if (cookie === null || typeof cookie !== 'object' || !isPlainObject(stored)) return false;
  const maxAge = stored.originalMaxAge;
  // Under a serializer that writes own fields, the expiry is _expires, a Date (see cookieFields).
  const storedExpires = stored.expires !== undefined ? stored.expires : stored._expires;
  let expires;
  if (typeof maxAge === 'number') {
    if (!(maxAge > 0)) return false;
    expires = new Date(Date.now() + maxAge);
  } else if (maxAge === null || maxAge === undefined) {
    if (storedExpires === null || storedExpires === undefined) expires = null;
    else if (typeof storedExpires !== 'string' && !(storedExpires instanceof Date)) return false;
    else {
      expires = new Date(storedExpires);
      if (!(expires.getTime() > Date.now())) return false;
    }
  } else return false;
  try {
    cookie.expires = expires;
    cookie.originalMaxAge = typeof maxAge === 'number' ? maxAge : null;
  } catch (err) {
    return false; // a frozen cookie, or one whose setters refuse: the request's own stands
  }
  return true;
}

// withCookie(sess): a parsed session (plain JSON: the cookie's expires a string, no maxAge)
// as express-session would hand it to set(): a shallow copy whose cookie is a Cookie, made as
// express-session's createSession makes it. A ttl function written for connect-redis reads
// sess.cookie.maxAge, which only a Cookie has.
function withCookie(sess) {
  if (!Cookie || !isPlainObject(sess) || !isPlainObject(sess.cookie)) return sess;
  const { expires, originalMaxAge } = sess.cookie;
  const cookie = new Cookie(sess.cookie);
  if (typeof expires === 'string') cookie.expires = new Date(expires);
  cookie.originalMaxAge = originalMaxAge;
  return { ...sess, cookie };
}

// adoptLifetime(cookie, stored): gives the request's express-session Cookie the lifetime of the
// cookie another request saved (stored: its JSON form), which a merged save kept (see
// saveLoaded): its maxAge from now, or none. Before the response (a save made by
// req.session.save()), the response then sends the browser that cookie, not the one the
// request read: a slow save-first request sent a "forget me" user the 30 days back, and its
// flash push (whose ttl may lengthen the session, never shorten it) gave sessd them again.
// Returns whether it changed the cookie; a plain object (the store API) is left as it is.
function adoptLifetime(cookie, stored) {
  if (!Cookie || !(cookie instanceof Cookie)) return false;
  const maxAge = stored.originalMaxAge;
  if (typeof maxAge !== 'number' && maxAge !== null) return false;
  cookie.maxAge = maxAge;
  // Its setter takes originalMaxAge from the clock again (the expiry less now), a millisecond
  // short when the clock ticks between: the other request's own is taken as it is.
  if (maxAge !== null) cookie.originalMaxAge = maxAge;
  return true;
}

// savedExpiry(sess): the expiry (ms since the epoch) the cookie of a parsed session was saved
// with, or NaN when it has none (a browser-session cookie) or is no cookie.
function savedExpiry(sess) {
  const cookie = isPlainObject(sess) && isPlainObject(sess.cookie) ? sess.cookie : null;
  // Under a serializer that writes own fields (MessagePack), the expiry is _expires, a Date
  // (see cookieFields): read as none, every get() of a session of an hour or less asked sessd
  // its TTL besides.
  const expires = cookie && typeof cookie.toJSON === 'function' ? cookie.toJSON().expires : cookie && (cookie.expires !== undefined ? cookie.expires : cookie._expires);
  // Date.parse(s) is new Date(s).getTime() without the Date (every get() asks, see farFromEnd).
  if (typeof expires === 'string') return Date.parse(expires);
  return expires instanceof Date ? new Date(expires).getTime() : NaN;
}

// markSaved(sess, atMs, ttl, whole, cookie): sessd holds sess as this request saved it (see
// SessionState.saved), by a save made at atMs (Date.now() as its ttl was worked out) that gave it ttl ms.
// Not on an object that takes no properties (a serializer's frozen session, say): it is then
// touched as before. whole, for a session saved whole with SET: { key, data } (the sessd key
// and the bytes written), so that the same save again is not sent (see savedWhole). cookie:
// the cookie's JSON form as the save wrote it (a merged save's keyForm, or cookieForm taken
// when the request was sent): never made here, since markSaved runs when the reply comes, and
// a page may have changed its cookie meanwhile (test/touch-pop-cookie.test.js).
function markSaved(sess, atMs, ttl, whole, cookie) {
  const state = stateFor(sess);
  if (state !== null) state.saved = { cookie: cookie === UNKNOWN_FORM ? undefined : cookie, whole, atMs, untilMs: atMs + ttl };
}

// renewCookieAsRead(sess): renews the cookie of a session read from sessd (resetMaxAge) while it
// holds the expiry read, as express-session renews it (req.session.touch()) before its save at
// the end of a request. A save made before that (presave's, or the app's req.session.save()
// before its redirect) wrote the expiry of the session's last save otherwise, kept for good by a
// session all of whose saves are made so: its requests then asked sessd its TTL (see endsSoon),
// as its data said it was ending.
function renewCookieAsRead(sess) {
  const cookie = sess.cookie;
  if (typeof sess.resetMaxAge === 'function' && cookie && cookie.expires === stateOf(sess)?.loadedExpires && typeof cookie.originalMaxAge === 'number') {
    sess.resetMaxAge();
  }
}

// markSaveFailed(sess): set() of sess, or a push to it, failed (see SessionState.saveFailed).
function markSaveFailed(sess) {
  const state = stateFor(sess);
  if (state !== null) state.saveFailed = true;
}

// answeredFailedSave(sess): a save of sess failed in this request, and its response is a
// server error (express-session keeps the session's request on it as sess.req, Express the
// response as req.res). Its user was told the change did not go through: express-session's
// save at the end of the request (after a regenerate(), it saves again) and its touch are not
// made. A request that answered otherwise (an app that went on after the failed save) still
// gets them, waiting for sessd as any request does.
function answeredFailedSave(sess) {
  const state = stateOf(sess);
  if (state === undefined || !state.saveFailed) return false;
  const res = sess.req && sess.req.res;
  return !!res && typeof res.statusCode === 'number' && res.statusCode >= 500;
}

// sentNoCookie(sess): whether the response of the request whose session sess is (an
// express-session Session: its id and req, Express's req.res) has gone out, its headers
// written, without setting the session's cookie. express-session decides (rolling, or the
// session changed) and sets it as the headers go out, which its end does at once after
// calling the store's save or touch: a store call that waits a turn (a pop's page's touch
// waits for the pop's, see touch) finds them written. False when that cannot be told (the
// headers not out yet, no Express response, a plain object).
function sentNoCookie(sess) {
  const id = sess.id;
  const res = sess.req && sess.req.res;
  if (typeof id !== 'string' || !res || res.headersSent !== true || typeof res.getHeader !== 'function') return false;
  const set = res.getHeader('set-cookie');
  if (set === undefined) return true;
  // Its value is 's:' + id + '.' + signature, URI-encoded (express-session's setcookie).
  const value = encodeURIComponent(id);
  return !(Array.isArray(set) ? set : [set]).some((c) => String(c).includes(value));
}

// cookieForm(cookie): the cookie's JSON form, as keyForm makes it; undefined without one.
function cookieForm(cookie) {
  try {
    return cookie === undefined ? undefined : cookieJson(cookie);
  } catch (err) {
    return undefined;
  }
}

// The fields of express-session's Cookie.prototype.data, none of which JSON escapes.
const COOKIE_DATA_KEYS = new Set(['originalMaxAge', 'partitioned', 'priority', 'expires', 'secure', 'httpOnly', 'domain', 'path', 'sameSite']);
const DATE_TO_PRIMITIVE = Date.prototype[Symbol.toPrimitive];

// plainDate(v): whether v is a Date whose JSON form is its toISOString quoted, or null when
// its time is not finite (Date.prototype.toJSON, none of the methods it goes through replaced).
function plainDate(v) {
  return v instanceof Date && v.toJSON === Date.prototype.toJSON && v.toISOString === Date.prototype.toISOString &&
    v.valueOf === Date.prototype.valueOf && v[Symbol.toPrimitive] === DATE_TO_PRIMITIVE;
}

// cookieJson(cookie): JSON.stringify(cookie), written here for an express-session Cookie: its
// JSON form (its data, with the expiry a Date) took JSON.stringify 1.4 us, the Date's toJSON
// most of it, against 0.6 so (a cart add's save makes one). A cookie it cannot write so (of
// another class, a field that is no JSON scalar or plain Date) goes to JSON.stringify, which
// throws what it throws.
function cookieJson(cookie) {
  if (!Cookie || !(cookie instanceof Cookie) || cookie.toJSON !== COOKIE_TO_JSON) return JSON.stringify(cookie);
  const data = cookie.data;
  if (!isPlainObject(data) || Object.getPrototypeOf(data) !== Object.prototype || data.toJSON !== undefined) return JSON.stringify(cookie);
  let out = '';
  for (const k of Object.keys(data)) {
    const v = data[k];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    let f;
    if (!COOKIE_DATA_KEYS.has(k)) return JSON.stringify(cookie);
    if (typeof v === 'string') f = JSON.stringify(v);
    else if (typeof v === 'number') f = Number.isFinite(v) ? String(v) : 'null';
    else if (typeof v === 'boolean' || v === null) f = String(v);
    // valueOf, not getTime: Date's toJSON goes by the time value (through valueOf, which
    // plainDate found to be Date's own), and a Date subclass may have a getTime of its own
    // (one that said NaN wrote "expires":null where JSON.stringify writes the expiry).
    else if (plainDate(v)) f = Number.isFinite(v.valueOf()) ? '"' + v.toISOString() + '"' : 'null';
    else return JSON.stringify(cookie);
    out += (out === '' ? '{"' : ',"') + k + '":' + f;
  }
  return out === '' ? '{}' : out + '}';
}

// writeMark(): 16 bytes of JSON whitespace (space, tab, LF, CR: 2 random bits each) that a
// merged save under the JSON serializer appends to the session it writes. A SET_IF sent again
// after a crash (Client.ownWrite) tells its own first attempt, carried out, from another's
// save by the bytes sessd holds; two app processes that make the same change from the same
// read (a view counted by each) write the same bytes, and the one whose attempt was refused
// took the other's save for its own and dropped its change, answered 200. Every JSON reader
// skips whitespace after the value (RFC 8259, JSON-text = ws value ws), so the session reads
// the same everywhere, sessctl and other languages' apps included.
const JSON_WS = [0x20, 0x09, 0x0a, 0x0d];
const WRITE_MARK_BYTES = 16;
// Random bytes drawn 4 KiB at a time, 4 for each mark: a randomBytes() call per save cost as
// much of the app's CPU as the save's own JSON (bench/e2e/store-ops.js). The marks are no
// secret; they need only differ from save to save, as they still do.
const MARK_POOL_BYTES = 4096;
const markPool = Buffer.alloc(MARK_POOL_BYTES);
let markPoolAt = MARK_POOL_BYTES;
// The mark is a string, put into the session's text before it is encoded: a Buffer of its
// own and a Buffer.concat of the session's bytes with it cost every save two allocations and
// a copy. MARK_CHARS[b]: the 4 characters of a random byte b, its low 2 bits first.
const MARK_CHARS = Array.from({ length: 256 }, (_, b) => [0, 2, 4, 6].map((shift) => String.fromCharCode(JSON_WS[(b >> shift) & 3])).join(''));
function writeMark() {
  if (markPoolAt + WRITE_MARK_BYTES / 4 > MARK_POOL_BYTES) {
    crypto.randomFillSync(markPool);
    markPoolAt = 0;
  }
  const at = markPoolAt;
  markPoolAt += WRITE_MARK_BYTES / 4;
  return MARK_CHARS[markPool[at]] + MARK_CHARS[markPool[at + 1]] + MARK_CHARS[markPool[at + 2]] + MARK_CHARS[markPool[at + 3]];
}

// The marks a merged save carries over from the data it was made over (carriedMarks): one, so
// that a session's data ends with at most 32 bytes of whitespace. Each byte of it counted
// about 400 instructions a cart add under cachegrind (bench/e2e/store-layer.js ONLY=add, a
// 194-byte session, its stand-in client copying and hashing the data as well: 128,252 with 16
// bytes, 137,549 with 32, 146,761 with 64; not found why so many): one save over the first
// send between a break and its resend (a reconnect) is the case to cover; with more, or a
// whole SET, over it, the resend merges as it did before.
const CARRIED_MARK_BYTES = WRITE_MARK_BYTES;

// carriedMarks(basis): the whitespace that ends basis (the data a merged save expects to
// find, as text or bytes: what its request read, or what it read again after a CONFLICT), its
// last CARRIED_MARK_BYTES, for the save to write before its own mark. A SET_IF sent again
// after a break that meets CONFLICT looks for its own mark there (Client.ownWrite): its first
// send, carried out, and then saved over by another request that read it, is under that save
// (its changes in it, newer ones of the same keys over them), and must not be merged again. It
// was: a mergeKey that counts (views + 1) counted twice, and a key both changed took this
// request's older value back over the other's (test/node65-resend-conflict.test.js).
function carriedMarks(basis) {
  if (basis === null || basis === undefined) return '';
  const end = basis.length;
  let at = end;
  if (typeof basis === 'string') {
    while (at > 0 && end - at < CARRIED_MARK_BYTES && jsonSpace(basis.charCodeAt(at - 1))) at--;
    return at === end ? '' : basis.slice(at);
  }
  while (at > 0 && end - at < CARRIED_MARK_BYTES && jsonSpace(basis[at - 1])) at--;
  if (at === end) return '';
  // Whitespace is ASCII: its bytes are its text. Not String.fromCharCode.apply over the
  // bytes: 2 us a save, about 6% of a cart add's instructions under cachegrind.
  return asBuffer(basis).toString('latin1', at, end);
}

// jsonSpace(c): whether the character or byte code c is JSON whitespace (JSON_WS).
function jsonSpace(c) {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

// The tags (dataTag) of sessions' data as last read, by key, so that a page view of a session
// whose data has not changed since the last one this store tagged compares the bytes (a
// tenth of a microsecond for 200 bytes) rather than hashing them again (about 3 us of
// BLAKE2b, a tenth of a page view's store calls). A tag is reused only for the very bytes it
// was computed from (a copy is kept: the data read may be a view of a larger socket buffer),
// so it is always dataTag's. A session's text (see exactText) is kept and compared as it is;
// bytes are copied to a latin1 string (a byte a character, compared exactly): a Buffer of its
// own (allocUnsafeSlow, an ArrayBuffer each) took 1.5-2 us to make on the shared machine,
// against 0.4-0.7 for the string, on every page view after a change;
// a slice of Node's shared pool kept the pool's 8 KiB alive. Bounded by what its entries
// hold: data up to TAG_CACHE_MAX_BYTES is cached, each entry counted as its copy and
// TAG_CACHE_ENTRY_BYTES, and the oldest go first past TAG_CACHE_BUDGET_BYTES. It was 1,024
// entries: a site with more sessions in use than that between two views of one (a few
// thousand visitors at once) hashed on every page view, 1.5 us more of its 16
// (bench/e2e/store-ops.js --sessions 5000), while the cache held 0.8 MiB for sessions of 200
// bytes; it now holds about 5,000 of them in 4 MiB, or 2,500 of 1 KB.
const TAG_CACHE_BUDGET_BYTES = 4 * 1024 * 1024;
// What an entry holds beside its copy: the tag (a Buffer over BLAKE2b's 64 bytes), the
// entry's object, its key and the Map's slot: 600 bytes, measured (heapUsed and arrayBuffers
// after 20,000 entries of 194 bytes: 790 bytes each).
const TAG_CACHE_ENTRY_BYTES = 640;
const TAG_CACHE_MAX_BYTES = 2048;

class TagCache {
  constructor() {
    // key -> { key, bytes (the copy; null once dropped), text (whether bytes is the data
    // given as its UTF-8 text, see exactText; else a latin1 copy of the bytes given), size
    // (what the budget counts for it), tag }
    this.entries = new Map();
    // What the entries hold, as the budget counts it.
    this.bytes = 0;
    // The entries in the order made, from head on, some dropped since (bytes null): the oldest
    // go first. Not the Map's own order: V8 keeps a deleted entry's slot until the table is
    // rebuilt, and a walk from the Map's start to its oldest entry passed every slot deleted
    // since, each page view: with 5,000 sessions cached and more in use, the cache's eviction
    // cost a page view more than the hash it saved.
    this.order = [];
    this.head = 0;
  }

  // tag(key, data): dataTag(data), from the cache when data is the same bytes as last tagged
  // under key. data: bytes, or a string whose UTF-8 is the bytes (a session's text, see
  // exactText), compared as it is: no copy of the bytes to compare them on every page view.
  tag(key, data) {
    const hit = this.entries.get(key);
    const copy = hit !== undefined ? sameCopy(data, hit) : null;
    if (copy === true) return hit.tag;
    const text = typeof data === 'string';
    const bytes = text ? null : asBuffer(data);
    const tag = text ? textTag(data) : dataTag(bytes);
    if (hit !== undefined) this.drop(hit);
    const length = text ? Buffer.byteLength(data, 'utf8') : bytes.length;
    if (length > TAG_CACHE_MAX_BYTES) return tag;
    // A string of characters above 0xff takes two bytes a character.
    const size = !text || length === data.length ? length : 2 * data.length;
    const entry = { key, bytes: text ? data : copy ?? bytes.toString('latin1'), text, size, tag };
    this.bytes += size + TAG_CACHE_ENTRY_BYTES;
    while (this.bytes > TAG_CACHE_BUDGET_BYTES && this.head < this.order.length) {
      const old = this.order[this.head];
      this.order[this.head++] = undefined;
      if (old.bytes !== null) this.drop(old);
    }
    this.entries.set(key, entry);
    this.order.push(entry);
    // The slots before head, and those of entries dropped, are given back once they are most
    // of the array.
    const live = this.order.length - this.head;
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    } else if (live > 1024 && live > 2 * this.entries.size) {
      this.order = this.order.slice(this.head).filter((e) => e.bytes !== null);
      this.head = 0;
    }
    return tag;
  }

  // drop(entry): removes entry from the cache.
  drop(entry) {
    this.entries.delete(entry.key);
    this.bytes -= entry.size + TAG_CACHE_ENTRY_BYTES;
    entry.bytes = null;
    // It stays in order until compacted (up to twice as many slots as live entries), outside
    // the budget: with its key and tag, sessions changed on every view held 1.2-1.3x it.
    entry.key = null;
    entry.tag = null;
  }

  // peek(key, data): tag() for data about to be replaced (a save's SET_IF): a tag cached for
  // it is used, but a new one is not kept.
  peek(key, data) {
    const hit = this.entries.get(key);
    if (hit !== undefined && sameCopy(data, hit) === true) return hit.tag;
    return typeof data === 'string' ? textTag(data) : dataTag(data);
  }

  forget(key) {
    const hit = this.entries.get(key);
    if (hit !== undefined) this.drop(hit);
  }

  clear() {
    this.entries.clear();
    this.bytes = 0;
    this.order = [];
    this.head = 0;
  }
}

// Reads kept by session key (keepReads), for the saves of a framework that copies the session
// store.get() answers into an object of its own, dropping its hidden record of what was read
// (SessionState.loaded): @fastify/session's Session copies the enumerable keys (for...in), as
// express-session's does, but calls no createSession to carry the rest over. Without the read
// such a save was a whole SET: a slow request loaded before a logout wrote the session back
// after it, and a key another request changed meanwhile (a cart) was undone. With it, the save
// is merged over what was read (saveLoaded), as an Express request's is.
// Each read also travels with the session object copied from it, as a token on its cookie
// (READ_TOKEN), which holds it for as long as that object lives: a save finds its own read
// there, whatever the keeper has dropped since. The keeper is for the saves of frameworks
// that carry no token (readOf), and keeps a read from get() until a save claims it (see
// claimRead) or it is KEPT_READ_MS old, the oldest going first past
// KEPT_READS_BUDGET_BYTES (each counted as its data and KEPT_READ_ENTRY_BYTES) and past
// KEPT_READS_PER_KEY reads of one session. With @fastify/session's default rolling: true every
// request saves, so what is kept is mostly the requests in flight; with rolling: false the
// pages that change nothing leave theirs to age out: 100,000 such reads of 166-byte sessions
// took 57 MiB of the heap (measured), past the budget, which then holds the last 52,000 (the
// last 2.6 minutes of a site that reads 333 sessions a second).
const KEPT_READ_MS = 5 * 60 * 1000;
// How long, and for how many sessions at most, a lifetime a save set is kept for the slow
// requests read before it (SessdStore.lifetimes): each is a few dozen bytes.
const LIFETIME_HINT_MS = KEPT_READ_MS;
const LIFETIME_HINTS = 10000;
const KEPT_READS_BUDGET_BYTES = 32 * 1024 * 1024;
// What a kept read holds beside its data: its entry, the session's key, its list and slot in
// the order, the Map's slot (measured: 100,000 reads of 166-byte sessions under 43-byte keys
// took 601 bytes each of the heap, 435 of them beside the data's).
const KEPT_READ_ENTRY_BYTES = 440;
// Reads of one session kept at once: a page's parallel requests. More are polls of a stuck
// page, whose oldest read goes first.
const KEPT_READS_PER_KEY = 16;
// The share of the budget one session's reads may hold (the oldest going first past it), and
// past which a read is not kept at all (its save is whole): without it, a visitor whose
// session is large (a megabyte, sessd's default --max-frame) reading it 16 times at once
// held 16 MiB, two such visitors all 32 (one, under a --max-frame raised for 2 MB sessions),
// and pushed every other session's reads out of the budget (their saves whole, a slow page's
// undoing a logout again).
const KEPT_READS_KEY_SHARE = 16;

class ReadKeeper {
  // maxAgeMs, budgetBytes, keyBudgetBytes: the bounds (KEPT_READ_MS, KEPT_READS_BUDGET_BYTES
  // and its KEPT_READS_KEY_SHARE by default; the tests give smaller ones).
  constructor(maxAgeMs = KEPT_READ_MS, budgetBytes = KEPT_READS_BUDGET_BYTES, keyBudgetBytes = budgetBytes / KEPT_READS_KEY_SHARE) {
    this.maxAgeMs = maxAgeMs;
    this.budgetBytes = budgetBytes;
    this.keyBudgetBytes = keyBudgetBytes;
    // key -> the session's kept reads, oldest first: [{ key, data (the
    // bytes read, or their text when exact: see exactText), text (their text, or null), atMs,
    // size }]
    this.byKey = new Map();
    // What the reads hold, as the budget counts it, and how many there are.
    this.bytes = 0;
    this.count = 0;
    // The reads in the order kept, from head on, a dropped one's slot emptied (undefined): the
    // oldest go first (as TagCache's order). base: the place (KeptRead.at) of order[0].
    this.order = [];
    this.head = 0;
    this.base = 0;
  }

  // add(key, data, text, nowMs): keeps a read of the session key made at nowMs; returns it (a
  // KeptRead, which its token carries: see READ_TOKEN). A read too large for its session's
  // share is not kept here (returned with kept false): its token alone holds it.
  add(key, data, text, nowMs) {
    // Bytes (a session that is not UTF-8, or a raw serializer's) are a view of the socket's
    // read, up to 64 KiB of other replies (or a larger session's frame) that the kept read held
    // alive past its count: copied to their own memory.
    if (typeof data !== 'string' && data.byteLength !== data.buffer.byteLength) {
      const own = Buffer.allocUnsafeSlow(data.byteLength);
      own.set(data);
      data = own;
    }
    const size = keptSize(data) + (text !== null && text !== data ? keptSize(text) : 0) + KEPT_READ_ENTRY_BYTES;
    const read = new KeptRead(this, key, data, text, nowMs, size);
    if (size > this.keyBudgetBytes) {
      read.kept = false;
      return read;
    }
    const list = this.byKey.get(key);
    // A session's first read in an array of one: an empty array's first push makes room for
    // 17, 125 bytes more a read (100,000 sessions read once each).
    if (list === undefined) this.byKey.set(key, [read]);
    else {
      list.push(read);
      let held = 0;
      for (const r of list) held += r.size;
      while (list.length > KEPT_READS_PER_KEY || held > this.keyBudgetBytes) {
        held -= list[0].size;
        this.drop(list[0]);
      }
    }
    read.at = this.base + this.order.length;
    this.order.push(read);
    this.bytes += size;
    this.count++;
    this.expire(nowMs);
    return read;
  }

  // reads(key, nowMs): the reads of the session key still kept at nowMs (oldest first), or
  // undefined. The caller takes the one it claims out with drop().
  reads(key, nowMs) {
    this.expire(nowMs);
    return this.byKey.get(key);
  }

  // expire(nowMs): drops the reads older than maxAgeMs, and the oldest while over the budget.
  expire(nowMs) {
    while (this.head < this.order.length) {
      const old = this.order[this.head];
      if (old !== undefined && this.bytes <= this.budgetBytes && nowMs - old.atMs <= this.maxAgeMs) break;
      if (old !== undefined) this.drop(old);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.base += this.head;
      this.head = 0;
    } else if (this.order.length - this.head > 1024 && this.order.length - this.head > 2 * this.count) {
      this.order = this.order.slice(this.head).filter((r) => r !== undefined);
      this.head = 0;
      this.base = 0;
      for (let i = 0; i < this.order.length; i++) this.order[i].at = i;
    }
  }

  // drop(read): takes a kept read out of the keeper (gone out past its bounds, or claimed). Its
  // token (READ_TOKEN) still holds it, for as long as the session object that carries it
  // lives: the save of a page that stalled or that other visitors' reads pushed out merges
  // over its own read all the same. Its slot in order is emptied at once: since stop 63 a
  // dropped read keeps its data, and one dropped behind the head (past its session's share or
  // KEPT_READS_PER_KEY, a polled page's) stayed in order, uncounted, until the head or a
  // compaction passed it: a session of 1 MiB read 1,000 times behind another visitor's read
  // held 1,001 MiB against a count of 1 (test/node64-keeper-memory.test.js).
  drop(read) {
    if (!read.kept) return;
    const at = read.at - this.base;
    if (this.order[at] === read) this.order[at] = undefined;
    const list = this.byKey.get(read.key);
    if (list !== undefined) {
      const at = list.indexOf(read);
      if (at !== -1) list.splice(at, 1);
      if (list.length === 0) this.byKey.delete(read.key);
    }
    this.bytes -= read.size;
    this.count--;
    read.kept = false;
  }

  // take(read): the read a save claims (see claimRead): out of the keeper, and emptied, so that
  // another object copied from it (it holds the same token) saves whole.
  take(read) {
    this.drop(read);
    read.data = null;
    read.text = null;
  }

  // clear(): drops every read (the store is closing): a token of one still kept claims nothing
  // after. One dropped before is no longer here: its token holds its data, and a save made
  // through it merges over it (a closed client of the store's own fails that save).
  clear() {
    for (let i = this.head; i < this.order.length; i++) {
      const read = this.order[i];
      if (read !== undefined) {
        read.kept = false;
        read.data = null;
        read.text = null;
      }
    }
    this.byKey.clear();
    this.bytes = 0;
    this.count = 0;
    this.order = [];
    this.head = 0;
    this.base = 0;
  }
}

// A read ReadKeeper made: keeper (that ReadKeeper: a token is claimed by its own store only),
// key (the session's), data (the bytes read, or their text when exact: see exactText; null
// once claimed), text (their text, or null), atMs, size (as the budget counts it), kept
// (whether the keeper holds it still), at (its place in the keeper's order, see drop).
class KeptRead {
  constructor(keeper, key, data, text, atMs, size) {
    this.keeper = keeper;
    this.key = key;
    this.data = data;
    this.text = text;
    this.atMs = atMs;
    this.size = size;
    this.kept = true;
    this.at = -1;
  }

  // It is reachable from the session's cookie (READ_TOKEN): an app that logs the cookie, or
  // @fastify/session's cookie options, shows no session data.
  [util.inspect.custom]() {
    return this.data === null ? 'KeptRead (claimed)' : 'KeptRead';
  }
}

// On the cookie of a session get() read while reads are kept (an own enumerable property, which
// JSON leaves out): the KeptRead of that read, so that the save of a session copied from it
// claims that very read (see keptReadOf). @fastify/session spreads the read cookie into the
// cookie options it keeps on its Session (restoredCookieOpts, then sessionCookieOpts), and a
// copy made with Object.assign keeps the cookie itself. The token holds the read while the
// keeper's bounds drop it: before stop 63 they emptied it, and on a busy site (rolling: false,
// every page view's read kept until it aged out: 2,000 page views a second of 2 KB sessions
// filled the 32 MiB in seconds) a slow page's save was whole again, undoing a logout or a
// cart add made in another tab meanwhile (test/node63-fastify-busy-keeper.test.js). What it
// holds beside the keeper is one copy of the session's text per session object of a request in
// flight, which holds the parsed session anyway.
const READ_TOKEN = Symbol('connect-sessd kept read');

// regenerating(sess, sid): whether sess, a session object of another framework (copiedSession)
// saved under the id sid, is the new session of a regenerate() under way: the request it holds
// (under a symbol, as @fastify/session's Session does) still holds another session, of
// another id. @fastify/session's regenerate() saves the new session (store.set) before it
// puts it on the request; every other save of a session is made with it on the request. Its
// login whose keys were set before the regenerate (regenerate(['cart', 'user'])) saves only
// there: sessd counted the session unread until the redirect's page read it, and a full sessd
// with --when-full drop-unread, flooded by a bot, dropped it
// (test/node65-fastify-login-unread.test.js). Taken wrongly, a session costs one LOAD.
function regenerating(sess, sid) {
  let syms;
  try {
    syms = Object.getOwnPropertySymbols(sess);
  } catch (err) {
    return false;
  }
  for (const sym of syms) {
    try {
      const v = sess[sym];
      if (v === null || typeof v !== 'object' || v === sess) continue;
      const held = v.session;
      if (held !== null && typeof held === 'object' && held !== sess && typeof held.sessionId === 'string' && held.sessionId !== sid) return true;
    } catch (err) {
      // A getter that throws says nothing of a regenerate.
    }
  }
  return false;
}

// keptReadOf(sess): the KeptRead whose token (READ_TOKEN) sess carries, on its cookie or on an
// object it holds under a symbol (@fastify/session's cookie options); undefined when none.
function keptReadOf(sess) {
  const own = (o) => (o !== null && typeof o === 'object' && Object.prototype.hasOwnProperty.call(o, READ_TOKEN) && o[READ_TOKEN] instanceof KeptRead ? o[READ_TOKEN] : undefined);
  let read;
  try {
    read = own(sess.cookie);
    if (read !== undefined) return read;
    for (const sym of Object.getOwnPropertySymbols(sess)) {
      read = own(sess[sym]);
      if (read !== undefined) return read;
    }
  } catch (err) {
    // A getter of the app's that throws: no token.
  }
  return undefined;
}

// keptSize(v): what a kept string or Buffer holds: a string of characters above 0xff two bytes
// a character (as TagCache counts).
function keptSize(v) {
  if (typeof v !== 'string') return v.length;
  return Buffer.byteLength(v, 'utf8') === v.length ? v.length : 2 * v.length;
}

// copiedSession(sess): whether sess, given to set() without connect-sessd's hidden record, is
// a session object of another framework's class (@fastify/session's Session), whose saves
// keepReads is for: not a plain object (an app's own store.set(id, { ... })), not
// express-session's Session (a new session's first save), nor one of another copy of
// express-session, which has req as an own property.
function copiedSession(sess) {
  const proto = Object.getPrototypeOf(sess);
  if (proto === Object.prototype || proto === null) return false;
  if (Session !== null && sess instanceof Session) return false;
  return !Object.prototype.hasOwnProperty.call(sess, 'req');
}

// textTag(text): dataTag of text's UTF-8 (a session's text, see exactText), hashed as the string:
// dataTag makes a Buffer of it first, and a cart add's Buffer.from took 0.2-0.4 us of a 1.5 us
// hash, with the pool of small Buffers it fills and replaces. crypto.hash (Node 20.12 and
// later) writes a string as Buffer.from does, lone surrogates as U+FFFD.
const textTag = crypto.hash ? (text) => crypto.hash('blake2b512', text, 'buffer').subarray(0, codec.TAG_BYTES) : dataTag;

// sameCopy(data, entry): true when data (bytes, or their UTF-8 text) is what the cache entry
// was tagged from; else the latin1 copy of data when it was made to compare, or null. A text
// is compared with a text only, bytes with bytes: one string's UTF-8 is one run of bytes (a
// lone surrogate is written as U+FFFD), so a text equal to the entry's is the same bytes.
function sameCopy(data, entry) {
  if (typeof data === 'string') return entry.text && data === entry.bytes;
  if (entry.text || data.length !== entry.bytes.length) return null;
  const copy = asBuffer(data).toString('latin1');
  return copy === entry.bytes ? true : copy;
}

// A key's form in SessionState.loaded's forms that readForms left to be made (see formAt):
// value, the key's value as read.
class ReadForm {
  constructor(value) {
    this.value = value;
  }
}

// How deep sameAsParsed follows a value before it leaves it to the form.
const SAME_AS_PARSED_DEPTH = 64;

// sameAsParsed(read, value, depth): true only when JSON.stringify(value) is
// JSON.stringify(read), read being what JSON.parse made (plain objects, arrays, strings,
// finite numbers, booleans and null), told without writing either: value is the same data,
// its objects plain (Object.prototype, no toJSON) with the same keys in the same order, its
// arrays arrays of the same length. False for anything else, whether its form would differ or
// not (a Date, a class instance, a key whose value JSON leaves out): the caller then makes
// the form, as it did before.
function sameAsParsed(read, value, depth) {
  if (typeof read !== 'object' || read === null) return read === value;
  if (typeof value !== 'object' || value === null || depth > SAME_AS_PARSED_DEPTH || value.toJSON !== undefined) return false;
  if (Array.isArray(read)) {
    if (!Array.isArray(value) || value.length !== read.length) return false;
    for (let i = 0; i < read.length; i++) if (!sameAsParsed(read[i], value[i], depth + 1)) return false;
    return true;
  }
  if (Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) return false;
  const keys = Object.keys(read);
  const valueKeys = Object.keys(value);
  if (keys.length !== valueKeys.length) return false;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (valueKeys[i] !== k || !sameAsParsed(read[k], value[k], depth + 1)) return false;
  }
  return true;
}

// exactText(data, text): text (data decoded as UTF-8) when its UTF-8 is data exactly, else
// data. A session get() read keeps this as the basis of its TOUCH_IF and SET_IF (the tag of
// the bytes read), rather than the bytes: they are a view of the socket's read (up to 64 KiB
// for many replies at once), which a session kept past its request (Socket.IO keeps
// socket.request.session for the socket's life) kept alive whole, and the text is kept for
// the save anyway. Text as long as the bytes without U+FFFD is ASCII: one byte a character,
// each byte of 0x80 or more being one that is not UTF-8 (U+FFFD) or the start of a sequence
// of several (fewer characters).
function exactText(data, text) {
  if (text === null) return data;
  if (text.length === data.length && text.indexOf('\ufffd') === -1) return text;
  return isUtf8 !== undefined && isUtf8(data) ? text : data;
}

// A 503, as for the other failures that a later try may not meet (NO_MEMORY, BUSY, a broken
// connection): express's handler answers err.statusCode, and a 500 would say the app is wrong.
function conflictError(attempts) {
  const err = new Error(`sessd: the session kept changing under this save: ${attempts} attempts to merge it failed`);
  err.code = 'ESESSD_CONFLICT';
  err.statusCode = 503;
  err.status = 503;
  err.expose = false;
  return err;
}

// Runs an async body and answers through cb when given, else returns its promise.
// claim(queued, push): whether the FLASH_POP result ${queued} (type -> array of msg) holds a
// message equal to the push's; it is taken out, so that each queued message answers one push.
// Messages that are not strings are compared as sessd holds them, encoded.
function claim(queued, push) {
  const msgs = Object.prototype.hasOwnProperty.call(queued, push.type) ? queued[push.type] : null;
  const wire = (m) => (typeof m === 'string' ? m : Buffer.from(codec.encodeFlashMessage(m)).toString('base64'));
  const want = wire(push.msg);
  const at = msgs ? msgs.findIndex((m) => typeof m === typeof push.msg && wire(m) === want) : -1;
  if (at === -1) return false;
  msgs.splice(at, 1);
  return true;
}

// idError(sid): the TypeError of a session id that is no string, else null (see key). set(),
// destroy() and regenerate() check it first, so that it reaches their callback or promise.
function idError(sid) {
  return typeof sid === 'string' ? null : new TypeError(`session id must be a string, got ${sid === null ? 'null' : typeof sid}`);
}

// sessionError(sess): the TypeError of a session set() is given that is no object, else null.
// express-session hands set() its Session; null, undefined, a string or a number come from an
// app's own call (store.set(id, null) meant as a logout, say). Stored, the text read back as
// no session, but held the id until its TTL and made every all() fail, setting its id.
function sessionError(sess) {
  return sess !== null && typeof sess === 'object' ? null : new TypeError(`session must be an object, got ${sess === null ? 'null' : typeof sess}`);
}

// parseJson(text): JSON.parse, failing as parse() does (unreadable).
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw unreadable(err);
  }
}

// answerWith(fn, arg, cb): cb's answer from fn(arg) as withCallback gives a promise's: its
// value (a thenable's once settled, as a promise adopts it) or the error it throws, on the
// next tick.
function answerWith(fn, arg, cb) {
  let v;
  let then;
  try {
    v = fn(arg);
    then = v !== null && (typeof v === 'object' || typeof v === 'function') ? v.then : undefined;
  } catch (err) {
    process.nextTick(cb, err);
    return;
  }
  if (typeof then === 'function') withCallback(Promise.resolve(v), cb);
  else process.nextTick(cb, null, v);
}

function withCallback(promise, cb) {
  if (typeof cb !== 'function') return promise;
  // The callback runs outside the promise chain, so an exception it throws is not
  // swallowed as a rejection.
  promise.then((v) => process.nextTick(cb, null, v), (err) => process.nextTick(cb, err));
  return undefined;
}

// withCallbackVoid(promise, cb): withCallback for a call that answers nothing: the value
// promise resolves with is not passed on.
function withCallbackVoid(promise, cb) {
  if (typeof cb !== 'function') return promise.then(noValue);
  promise.then(() => process.nextTick(cb, null, undefined), (err) => process.nextTick(cb, err));
  return undefined;
}

function noValue() {
  return undefined;
}

const SETTLED = Promise.resolve();

// spareTouch(err): renew()'s answer to a touch that failed with err: true when the failure is
// one a touch is spared (TOUCH_SPARED), else err thrown again.
function spareTouch(err) {
  if (err && TOUCH_SPARED.has(err.code)) return true;
  throw err;
}

// unreadable(err): the error a serializer's parse threw, as a SessdStore passes it on. A
// SyntaxError (JSON.parse's) is replaced by one that does not quote the data: V8 puts some
// of it in the message ("Unexpected token 'c', "csrfSecret"... is not valid JSON"), errors
// end in logs, and session data holds secrets (a CSRF secret, a user's details). Any other
// error is the serializer's own, passed on as it is.
function unreadable(err) {
  if (!(err instanceof SyntaxError)) return err;
  const at = /at position (\d+)/.exec(err.message);
  return new SyntaxError('connect-sessd: the session\'s data is not what the serializer reads ' +
    `(written by another program, or with another serializer?)${at ? `; it fails at position ${at[1]}` : ''}`);
}

class SessdStore extends BaseStore {
  // opts: url, namespace (null: "default"), prefix (''), ttl (seconds or function(sess) ->
  // seconds; default 86400), poolSize, timeoutMs, connectTimeoutMs, clientName,
  // serializer ({ stringify, parse }, default JSON), disableTouch, disableTTL, scanCount,
  // auth (the server's shared secret), requireAuth, seal, client (a Client to share instead
  // of opening one), merge (true: a save of a loaded session writes only the keys this
  // request changed, see saveLoaded), mergeKey (function (key, base, mine, theirs) -> value,
  // for a key this request and another both changed; default: mine), mergeAttempts (25),
  // regenerateFlashes ('own' or 'all', see regenerate), migrateFrom (the app's old
  // express-session store, whose sessions move to sessd as they are used: see migrate.js),
  // migrateTimeoutMs (how long one call of it may take, default 5000).
  constructor(opts = {}) {
    super();
    warnUnknownOptions('SessdStore', opts, KNOWN_OPTIONS);
    if (opts.regenerateFlashes !== undefined && !REGENERATE_FLASHES.has(opts.regenerateFlashes)) {
      throw new TypeError(`regenerateFlashes must be 'own' or 'all'; got ${util.inspect(opts.regenerateFlashes)}`);
    }
    this.regenerateFlashes = opts.regenerateFlashes ?? 'own';
    if (opts.merge !== undefined && typeof opts.merge !== 'boolean') throw new TypeError('merge must be a boolean');
    if (opts.mergeKey !== undefined && typeof opts.mergeKey !== 'function') throw new TypeError('mergeKey must be a function (key, base, mine, theirs) -> value');
    if (opts.mergeAttempts !== undefined && !(Number.isInteger(opts.mergeAttempts) && opts.mergeAttempts >= 1)) {
      throw new TypeError('mergeAttempts must be an integer of at least 1');
    }
    this.merge = opts.merge ?? true;
    this.mergeKey = opts.mergeKey || null;
    this.mergeAttempts = opts.mergeAttempts ?? DEFAULT_MERGE_ATTEMPTS;
    // keepReads (see ReadKeeper): true keeps get()'s reads by session key from the start, false
    // never, null (not given) from the first save of a session object of another framework
    // (copiedSession). Only with merge on: a whole save has no use for what was read.
    if (opts.keepReads !== undefined && opts.keepReads !== null && typeof opts.keepReads !== 'boolean') {
      throw new TypeError(`keepReads must be a boolean, got ${util.inspect(opts.keepReads)}`);
    }
    if (opts.keepReads === true && !this.merge) throw new TypeError('keepReads needs merge: a save that writes the session whole has no use for what was read');
    this.keepReads = this.merge ? opts.keepReads ?? null : false;
    this.keptReads = this.keepReads === true ? new ReadKeeper() : null;
    // For benchmarking only (bench/merge-contention.js --compare-cap), not part of the API:
    // the cap of the random wait between merge attempts, in ms (default MERGE_BACKOFF_MAX_MS).
    if (opts.mergeBackoffMaxMs !== undefined && !(Number.isFinite(opts.mergeBackoffMaxMs) && opts.mergeBackoffMaxMs >= 0)) {
      throw new TypeError('mergeBackoffMaxMs must be a number of milliseconds of at least 0');
    }
    this.mergeBackoffMaxMs = opts.mergeBackoffMaxMs ?? MERGE_BACKOFF_MAX_MS;
    this.namespace = opts.namespace ?? null;
    if (this.namespace !== null && (typeof this.namespace !== 'string' || Buffer.byteLength(this.namespace) < 1 || Buffer.byteLength(this.namespace) > 64)) {
      throw new TypeError('namespace must be a string of 1..64 bytes');
    }
    this.prefix = checkPrefix(opts.prefix ?? '');
    this.ttl = opts.ttl ?? DEFAULT_TTL_S;
    // A ttl that is not a number made every save a destroy (NaN is not > 0): refuse it here.
    if (typeof this.ttl !== 'function' && !(typeof this.ttl === 'number' && this.ttl > 0)) {
      throw new TypeError(`ttl must be a number of seconds above 0, or a function returning one; got ${util.inspect(this.ttl)}`);
    }
    // connect-redis 3 called a ttl function as ttl(store, sess, sessionID); such a function,
    // given the session first, failed every save from inside it.
    if (typeof this.ttl === 'function' && this.ttl.length >= 2) {
      process.emitWarning(`connect-sessd SessdStore: the ttl function takes ${this.ttl.length} parameters: it is called as ttl(sess), ` +
        'as connect-redis 7 calls it, not as connect-redis 3 did, ttl(store, sess, sessionID)', { code: 'CONNECT_SESSD_TTL_ARGS' });
    }
    this.serializer = checkSerializer(opts.serializer || JSON);
    this.disableTouch = checkFlag('disableTouch', opts.disableTouch);
    this.disableTTL = checkFlag('disableTTL', opts.disableTTL);
    this.scanCount = checkScanCount(opts.scanCount ?? 1000);
    if (opts.migrateTimeoutMs !== undefined && (opts.migrateFrom === undefined || opts.migrateFrom === null)) {
      throw new TypeError('migrateTimeoutMs is an option of migrateFrom, which is not given');
    }
    this.migration = opts.migrateFrom === undefined || opts.migrateFrom === null ? null
      : new Migration(this, opts.migrateFrom, opts.migrateTimeoutMs, (sess) => Math.min(this.ttlMs(withCookie(sess)), codec.MAX_TTL_MS));
    // A shared client has its own connections and secret: options given here would be
    // ignored, and a requireAuth silently ignored is worse than an error.
    if (opts.client) {
      // A Redis client handed over from a connect-redis setup would answer nothing useful.
      if (typeof opts.client.request !== 'function' || typeof opts.client.flashPush !== 'function') {
        throw new TypeError('client must be a connect-sessd Client (new Client({ url, ... }))');
      }
      // The connections are the client's: a store given one would silently ignore these.
      const ignored = CONNECTION_OPTIONS.filter((name) => opts[name] !== undefined);
      if (ignored.length > 0) {
        throw new TypeError(`${ignored.join(', ')}: options of the shared client, not of a store given one`);
      }
    }
    // Whether get() asks sessd how long it keeps a session with the read (see endsSoon).
    this.ttlWithLoad = false;
    this.tags = new TagCache();
    // By session key: the promise of this process's latest save of that session while one is
    // under way (see set).
    this.savesUnderway = new Map();
    // By session key, while saves of it are under way (savesUnderway): the bytes the latest of
    // them to store data sent in its SET_IF, so that a save queued behind it expects them and
    // merges over them (see saveLoaded) instead of over what its request read, which that save
    // has just changed. Dropped as the session's queue empties.
    this.lastWritten = new Map();
    // Reads of sessions with merge on, counted: SessionState.loaded's seq is the count when the
    // read came, so that a read made before a save was sent is known as one (see lifetimes).
    this.readSeq = 0;
    // By session key: the lifetime (the cookie's originalMaxAge) the latest save from this
    // process that set one wrote, { originalMaxAge, seq (readSeq as that save was sent), atMs },
    // for a request of the same session read before it (see adoptNewerLifetime). Kept
    // LIFETIME_HINT_MS, at most LIFETIME_HINTS of them.
    this.lifetimes = new Map();
    this.ownsClient = !opts.client;
    this.client = opts.client || new Client(opts);
    this.onConnect = (hello) => this.emit('connect', hello);
    this.onDisconnect = (err) => this.emit('disconnect', err);
    this.client.on('connect', this.onConnect);
    this.client.on('disconnect', this.onDisconnect);
  }

  // True from 'connect' until 'disconnect': also in the client's reconnecting window (sessd
  // restarting), when no connection is ready and requests wait for one.
  get connected() {
    return this.client.connected === true;
  }

  // key(sid): the sessd key of session id sid, the prefix before it. Throws a TypeError for an
  // id that is no string: null or undefined (an app's store.destroy(req.sessionID) on a request
  // without a session) named the session "null" or "undefined", one for every such caller, and
  // a Symbol threw from set() and destroy() instead of reaching their callbacks. Every caller
  // that takes a callback or returns a promise reports it there.
  key(sid) {
    const err = idError(sid);
    if (err !== null) throw err;
    return this.prefix + sid;
  }

  // ttlMs(sess): milliseconds the session should live: until its cookie expires, else the
  // ttl option (seconds). May be <= 0: the session has already expired.
  ttlMs(sess) {
    if (this.disableTTL) return codec.MAX_TTL_MS;
    if (typeof this.ttl === 'function') {
      const seconds = this.ttl(sess);
      // 0 or less is an expired session, destroyed on save; anything else would be too.
      if (typeof seconds !== 'number' || Number.isNaN(seconds)) {
        throw new TypeError(`the ttl function must return a number of seconds; it returned ${util.inspect(seconds)}`);
      }
      return Math.ceil(seconds * 1000);
    }
    const expires = sess && sess.cookie && sess.cookie.expires;
    if (expires) return Math.ceil(new Date(expires).getTime() - Date.now());
    return Math.ceil(this.ttl * 1000);
  }

  // requestTtlMs(sess): ttlMs for a session of a request under way, as express-session will
  // renew its cookie as the response goes out: the cookie's originalMaxAge from now while it
  // still holds the expiry it was read with (see SessionState.loadedExpires), else ttlMs. A save made before
  // the response (req.session.save(), as the README recommends) or a flash push sees the
  // cookie as the session's last save left it: an hour of page views after that save, whose
  // touches renewed the session in sessd, its expiry had passed or was near, and such a save
  // destroyed the session or gave it that minute while the response sent the browser an hour.
  requestTtlMs(sess) {
    const cookie = isPlainObject(sess) ? sess.cookie : undefined;
    const asRead = cookie ? stateOf(sess)?.loadedExpires : undefined;
    if (asRead !== undefined && cookie.expires === asRead && typeof cookie.originalMaxAge === 'number') {
      return this.renewedTtlMs(sess);
    }
    return this.ttlMs(sess);
  }

  // parse(data): a promise of the session the serializer reads from data. Its parse may
  // return a promise (connect-redis v7 awaits it): awaited here, every caller must await.
  // A SyntaxError (JSON.parse's) comes back without the data it quotes: see unreadable().
  // data: the bytes, or (not for a raw serializer) their text.
  async parse(data) {
    try {
      return await this.serializer.parse(this.serializer.raw || typeof data === 'string' ? data : data.toString('utf8'));
    } catch (err) {
      throw unreadable(err);
    }
  }

  // get(sid, cb): the session, or null when there is none; errors are errors. With merge on,
  // the session carries (hidden) what a later set() needs to merge, and (LOAD answered) how
  // many flashes were queued in it.
  // A session sessd may end soon is marked for its request to keep (see endsSoon).
  // With cb (express-session's call), the answer goes to it from the LOAD's reply (answerWith):
  // a promise of it, then withCallback's then, cost every page a promise and a turn more.
  get(sid, cb) {
    let key;
    let loading;
    let asked;
    try {
      key = this.key(sid);
      loading = this.client.load(this.namespace, key);
      // Sessions whose data does not say how long sessd keeps them: asked in the same round
      // trip (see endsSoon).
      asked = this.ttlWithLoad && this.keepsAlive() ? this.leftMs(key) : null;
    } catch (err) {
      return withCallback(Promise.reject(err), cb);
    }
    const read = (loaded) => this.loadedSession(sid, key, loaded, asked);
    if (typeof cb !== 'function') return loading.then(read);
    loading.then((loaded) => answerWith(read, loaded, cb), (err) => process.nextTick(cb, err));
    return undefined;
  }

  // loadedSession(sid, key, loaded, asked): get()'s answer from LOAD's (loaded): the session
  // or null, or a promise of it where a serializer's parse, the migration or endsSoon must be
  // waited for. Not an async function: for most pages nothing is, and each await between the
  // socket's reply and express-session's callback cost a page view a promise and a turn of
  // the microtask queue (bench/e2e/store-ops.js).
  loadedSession(sid, key, loaded, asked) {
    // Not in sessd: perhaps still in the old store (migrateFrom), moved now and read again.
    if (loaded === null) return this.migration !== null ? this.migration.miss(sid, key).then((moved) => (moved ? this.get(sid) : null)) : null;
    const { data, flashes } = loaded;
    // The text is kept for a save's forms (see saveLoaded): decoding it again cost a cart add
    // a microsecond.
    const text = this.serializer.raw ? null : data.toString('utf8');
    // JSON's parse is no promise: awaited all the same, it cost each read a turn.
    if (this.serializer !== JSON) return this.parse(text ?? data).then((sess) => this.readSession(key, sess, data, text, flashes, asked));
    return this.readSession(key, parseJson(text), data, text, flashes, asked);
  }

  // readSession(key, sess, data, text, flashes, asked): loadedSession's, once parsed (sess).
  readSession(key, sess, data, text, flashes, asked) {
    if (this.farFromEnd(sess)) return this.withState(key, sess, data, text, flashes, false);
    return this.endsSoon(key, sess, asked).then((soon) => (soon === null ? null : this.withState(key, sess, data, text, flashes, soon)));
  }

  // withState(key, sess, data, text, flashes, soon): the session get() read, with merge on
  // carrying (hidden) what a later set() needs to merge, and how many flashes were queued in
  // it (flashes; null when not known).
  withState(key, sess, data, text, flashes, soon) {
    if (!isPlainObject(sess) || !Object.isExtensible(sess)) return sess;
    if (!soon && !this.merge && flashes === null) return sess;
    const state = this.serializer === JSON ? newState(sess) : stateFor(sess);
    const basis = exactText(data, text);
    if (soon) state.keep = { key, data: basis };
    // The tag and forms are worked out from data when the session is saved: a request that
    // does not save it pays nothing for them.
    if (this.merge) {
      state.loaded = { key, data: basis, text, forms: null, cookie: sess.cookie, stored: null, gone: false, copied: false, seq: this.readSeq++, adopted: false };
      if (this.keptReads !== null) {
        const read = this.keptReads.add(key, basis, text, Date.now());
        const cookie = sess.cookie;
        if (isPlainObject(cookie) && Object.isExtensible(cookie)) Object.defineProperty(cookie, READ_TOKEN, { value: read, enumerable: true, configurable: true });
      }
    }
    if (flashes !== null) state.flashCount = { client: this.client, namespace: this.namespace, key, flashes };
    return sess;
  }

  // keepsAlive(): whether the store renews sessions as requests use them (express-session's
  // touch at the end of each request, and keep).
  keepsAlive() {
    return !this.disableTouch && !this.disableTTL;
  }

  // leftMs(key): a promise of the session's remaining lifetime in sessd (TTL), null when it
  // has none, undefined when that is not known (a daemon older than TTL, or a failure: the
  // request goes on as before).
  leftMs(key) {
    return this.client.ttlIfKnown(this.namespace, key).catch(() => undefined);
  }

  // endsSoon(key, sess, asked): whether sessd may end the session get() read (sess, parsed)
  // before the request that reads it renews it at its end (its touch or save, which renews
  // the browser's cookie too): a session that ended in sessd meanwhile was not there to
  // renew, so the page was served signed in and gave the cookie a whole maxAge, and the next
  // click found no session (bench/soak.js: a user back shortly before the cookie expired, on
  // a loaded machine), a save-first cart add answered 303 was dropped ('gone'). Such a
  // session is kept as its request starts (see keep). Soon is within KEEP_MARGIN_MS, or half
  // the lifetime the request will give it, for a short one. The data tells most sessions
  // apart without asking sessd: the expiry its cookie was saved with is one sessd holds at
  // least (a save gives the cookie's lifetime from the save, a touch since from the touch).
  // A session whose data does not say (no expires in its cookie, a ttl function) or which
  // says soon is asked with TTL (asked: the promise of leftMs, when it was asked with the
  // read); a store that met one asks with every read from then on (ttlWithLoad), in the same
  // round trip, unless its lifetime is over ASK_LIFETIME_MAX_MS (then it is not kept early).
  // Resolves true, false, or null when the session ended since the read.
  async endsSoon(key, sess, asked) {
    if (this.farFromEnd(sess)) return false;
    const saved = typeof this.ttl === 'function' ? NaN : savedExpiry(sess);
    let ttl;
    try {
      ttl = this.renewedTtlMs(sess);
    } catch (err) {
      return false; // a ttl function that fails: the request's save will say so
    }
    if (!(ttl > 0)) return false;
    const margin = Math.min(KEEP_MARGIN_MS, ttl / 2);
    if (Number.isNaN(saved)) {
      if (ttl > ASK_LIFETIME_MAX_MS) return false;
      this.ttlWithLoad = true;
    } else if (saved - Date.now() >= margin) return false;
    const left = await (asked || this.leftMs(key));
    if (left === null) return null;
    return left !== undefined && left < margin && left < ttl;
  }

  // farFromEnd(sess): endsSoon's false for most pages, known from the data alone and without
  // an await (get() asks it first): the store does not renew sessions, or the cookie was saved
  // with an expiry more than KEEP_MARGIN_MS away, which sessd holds at least.
  farFromEnd(sess) {
    if (!this.keepsAlive()) return true;
    return typeof this.ttl !== 'function' && savedExpiry(sess) - Date.now() >= KEEP_MARGIN_MS;
  }

  // keep(sess): the touch of a session endsSoon found sessd may end before its request does,
  // as its request starts: the lifetime the request's end would give it (renewedTtlMs), with
  // TOUCH_IF over the data read, so that a session destroyed meanwhile (a logout in another
  // tab) stays destroyed and a CONFLICT (a save just made, which chose the lifetime) changes
  // nothing. Sent at once, ahead of the request's own requests of the session on its
  // connection; not waited for: a session it finds ended was ending as the request came.
  keep(sess, k) {
    let ttl;
    try {
      ttl = this.renewedTtlMs(sess);
    } catch (err) {
      return;
    }
    if (!(ttl > 0)) return;
    this.client.touchIf(this.namespace, k.key, ttl, this.tags.tag(k.key, k.data)).catch(() => {});
  }

  // presave(sid, sess, changes): starts the save express-session makes at the end of the
  // request now, behind a flash request flash() has just sent: a push whose response is held
  // until it is stored (changes true: SET_IF of this request's changes, or TOUCH_IF when there
  // are none), or a pop whose page is yet to render (changes false: the TOUCH_IF of a session
  // this request has not changed; nothing when it has). sessd answers a connection's requests
  // in order and the pool sends a session's requests on one connection, so both replies come
  // in one round trip, where the save went out only once the flash's reply was in (a cart add
  // or a page showing a flash: three round trips, now two). Only for a session read from sessd
  // with merge on, whose save is conditional on the data read (it undoes no other request's
  // change and brings back no session destroyed meanwhile), or one this request made (made). express-session's own save or
  // touch at the end then finds it saved (SessionState.saved) and sends nothing, unless the request changed
  // the session since. When this one failed, express-session's save at the end fails with its
  // error, which reaches the app as that save's own did: not made again, since a save that
  // timed out may still be carried out by a stuck sessd that wakes, and merged over, a
  // mergeKey counter would count the change twice; a change of the cookie alone, which
  // express-session leaves to its touch, is not saved again either, its error taken as
  // saveCookie takes it (see touch). One that finds the session gone sends nothing more, and
  // 'gone' is said by the request's end, if it still has the session (see lostEarly).
  // Resolves once settled, never rejects; null when it does not apply. made: sess is one this
  // request made (a first visit, a regenerate(): a logout's new session) that express-session
  // will save, flash() having marked it: it is saved whole now (SET behind the FLASH_PUSH that
  // created it), and express-session's save of the same session at the end sends nothing (see
  // savedWhole).
  presave(sid, sess, changes, made = false) {
    if (!this.keepsAlive() || !isPlainObject(sess) || !Object.isExtensible(sess)) return null;
    const state = stateFor(sess);
    if (state.presave !== undefined || state.saved !== undefined || answeredFailedSave(sess)) return null;
    // The app's own save under way (req.session.save() not awaited before the redirect): a
    // second beside it met its write as a CONFLICT, read the session again and wrote it twice.
    if (state.saving > 0) return null;
    const key = this.key(sid);
    const st = state.loaded;
    if (made ? state.stored || (st && st.key === key) : !this.merge || !st || st.gone || st.key !== key) return null;
    const pre = { done: null, err: null };
    // A save of the session from this process under way is waited for, as set() waits (see
    // there): sent beside it, each round of CONFLICTs let one through, and on a slow sessd an
    // early save lost round after round (a model-check hang: seven rounds, past 15 s).
    // Waited for by saveLoaded once it has changes to write (a push's page that changed nothing
    // touches at once, as below).
    const queued = changes && !made;
    const before = queued ? this.savesUnderway.get(key) : undefined;
    pre.done = (async () => {
      // A push's save starts as the route ends its response (flash.js holds the end): what the
      // route changes after that in the same tick (res.redirect(req.session.returnTo || '/');
      // delete req.session.returnTo) is this save's too. Taken at once, it was not, and
      // express-session saved the session again at the end: a second SET_IF.
      if (changes && !made) {
        await undefined;
        renewCookieAsRead(sess);
      }
      const atMs = Date.now();
      const ttl = Math.min(this.requestTtlMs(sess), codec.MAX_TTL_MS);
      // A session that ends with this request: express-session's save destroys it.
      if (!(ttl > 0)) return;
      if (made) {
        await this.saveSession(sid, sess);
        return;
      }
      await this.saveLoaded(sid, sess, st, ttl, atMs, changes ? 'save' : 'touch', before);
    })().catch((err) => {
      if (changes) pre.err = err;
    });
    if (queued) this.underway(key, pre.done, before);
    state.presave = pre;
    return pre.done;
  }

  // set(sid, sess, cb): stores the session until its cookie expires; an already expired
  // session is destroyed instead. A session get() read (with merge on) is merged: only the
  // keys this request changed are written, see saveLoaded.
  // A save of the same session from this process under way is waited for first. The same
  // session object's (the app's req.session.save() not awaited, then a change and the
  // response: express-session saves again): only what is left is written; sent beside it,
  // expecting the same data, this save met its write as a CONFLICT, read the session again and
  // wrote a third time. Another request's (tabs saving at once): this one then meets at most
  // that save's write as a CONFLICT; sent together, each round of CONFLICTs let one through,
  // the newest first (the random wait grows with the attempts), and on a slow sessd the
  // oldest lost round after round, past the page's patience or mergeAttempts.
  // Only with merge on, whose saves are conditional: a whole SET (merge: false) meets no
  // CONFLICT, and queued behind another it went out after a logout's DESTROY made after it,
  // and brought the session back. Another request's save is waited for only by a save with
  // changes to write (saveLoaded): one that changed nothing (resave: true) touches at once, as
  // before; queued, a page's parallel requests (XHRs) of one session touched one after another,
  // a round trip each.
  set(sid, sess, cb) {
    const err = idError(sid) ?? sessionError(sess);
    if (err !== null) return withCallback(Promise.reject(err), cb);
    if (this.keepReads !== false && stateOf(sess) === undefined) this.claimRead(sid, sess);
    // A session no read is claimed for (a new one) that another framework's own regenerate()
    // is saving: read back after its save, as one of this store's regenerate() is (see
    // SessionState.regenerated).
    if (stateOf(sess) === undefined && Object.isExtensible(sess) && copiedSession(sess) && regenerating(sess, sid)) stateFor(sess).regenerated = true;
    if (this.lifetimes.size !== 0) this.adoptNewerLifetime(sid, sess);
    const key = this.merge ? this.key(sid) : null;
    const before = key !== null ? this.savesUnderway.get(key) : undefined;
    const own = stateOf(sess)?.lastSave !== undefined;
    return this.whileSaving(sess, key, before, (async () => {
      if (before !== undefined && own) await before.then(noValue, noValue);
      const pre = stateOf(sess)?.presave;
      if (pre !== undefined) await pre.done;
      if (answeredFailedSave(sess)) return undefined;
      // The app's own save before the response (req.session.save(cb), then the redirect).
      if (isPlainObject(sess)) renewCookieAsRead(sess);
      try {
        if (pre !== undefined && pre.err !== null) {
          const err = pre.err;
          pre.err = null;
          throw err;
        }
        await this.saveSession(sid, sess, own ? undefined : before);
      } catch (err) {
        markSaveFailed(sess);
        throw err;
      }
      return undefined;
    })(), cb);
  }

  // adoptNewerLifetime(sid, sess): before express-session sends the cookie of a request that
  // set no lifetime of its own (it writes the response's headers as soon as set() or touch()
  // returns, before sessd answers), the lifetime a save from this process set since the
  // request read the session (lifetimes): a "remember me" ticked or unticked in another tab
  // while this slow page ran. The merge of its save keeps that lifetime in sessd (see
  // saveLoaded); the browser, sent the slow page's cookie, dropped it after the hour that
  // page read (rolling, or a page that changed the session), and a visitor who then only read
  // pages was signed out with sessd holding the session for 30 days. A save from another
  // process is not seen here: its lifetime reaches the browser with the next cookie sent.
  adoptNewerLifetime(sid, sess) {
    const st = stateOf(sess)?.loaded;
    if (st === undefined || st.copied || st.gone || typeof sid !== 'string' || st.key !== this.prefix + sid) return;
    const hint = this.lifetimes.get(st.key);
    if (hint === undefined || !(st.seq < hint.seq)) return;
    if (Date.now() - hint.atMs > LIFETIME_HINT_MS) {
      this.lifetimes.delete(st.key);
      return;
    }
    const cookie = sess.cookie;
    if (!Cookie || !(cookie instanceof Cookie)) return;
    const mine = cookie.originalMaxAge;
    const theirs = hint.originalMaxAge;
    if (mine === theirs || (typeof mine === 'number' && typeof theirs === 'number' && Math.abs(mine - theirs) <= COOKIE_MAXAGE_SLACK_MS)) return;
    if (this.cookieChanged(sess, st)) return;
    if (theirs === false) {
      // A cookie for the browser's session, as express-session's own setter makes it.
      try {
        cookie.expires = false;
      } catch (err) {
        return;
      }
    } else if (!adoptLifetime(cookie, hint)) return;
    // The lifetime is that save's, not this request's: the save compares its cookie with it as
    // if read so (saveLoaded), and merges over sessd's cookie as over any other request's. Taken
    // for this request's own, it was written over a newer one another process had saved since
    // (a "forget me" there undone by the slow page: 30 days in sessd).
    st.cookie = JSON.parse(JSON.stringify(cookie));
    if (st.forms !== null) st.forms.set('cookie', new ReadForm(st.cookie));
    st.adopted = true;
  }

  // noteLifetime(key, cookie, seq): a save of the session key from this process set its
  // cookie (cookie: its JSON form as written) when readSeq was seq (see lifetimes).
  noteLifetime(key, cookie, seq) {
    let maxAge;
    try {
      maxAge = JSON.parse(cookie).originalMaxAge;
    } catch (err) {
      maxAge = undefined;
    }
    this.lifetimes.delete(key);
    // A lifetime it cannot hand over leaves none: an older one noted would outlive this newer
    // decision (false, the browser's session's own: req.session.cookie.expires = false, is
    // handed over).
    if (typeof maxAge !== 'number' && maxAge !== null && maxAge !== false) return;
    const nowMs = Date.now();
    this.lifetimes.set(key, { originalMaxAge: maxAge, seq, atMs: nowMs });
    // Oldest first (the Map's order): past the count or the age. Saves that set a lifetime are
    // few (a login's "remember me"), so the walk passes few deleted slots.
    for (const [k, hint] of this.lifetimes) {
      if (this.lifetimes.size <= LIFETIME_HINTS && nowMs - hint.atMs <= LIFETIME_HINT_MS) break;
      this.lifetimes.delete(k);
    }
  }

  // claimRead(sid, sess): for a session object of another framework (copiedSession) that
  // set() is given without connect-sessd's hidden record (see ReadKeeper): the read of the
  // session sid it was copied from, if kept, is taken out of the keeper and put on sess as a
  // read of its own (SessionState.loaded), so that its save merges over it. The first such
  // object turns keeping on when keepReads was not given: the saves of the reads made before
  // are whole. Not a plain object (the app's own store.set(id, { ... })), which is saved whole
  // as before: taking the read of a request in flight, it left that request's save whole.
  claimRead(sid, sess) {
    if (!Object.isExtensible(sess) || !copiedSession(sess)) return;
    if (this.keptReads === null) {
      if (this.keepReads !== null) return;
      this.keptReads = new ReadKeeper();
      process.emitWarning('connect-sessd SessdStore: a session object that is not express-session\'s (@fastify/session\'s?) was saved: ' +
        'from now on the store keeps its reads so that such saves merge and do not undo a logout (keepReads); give keepReads: true ' +
        'to keep them from the first request, or false for whole saves', { code: 'CONNECT_SESSD_KEEP_READS' });
      return;
    }
    const key = this.key(sid);
    // The read sess was copied from, known by its token, which holds it whether the keeper
    // still does or not. Claimed already (another object copied from the same read saved
    // first) or the store closed: no other read is taken for it, whose keys may be what this
    // request changed them back to (readOf's match): the save is whole. One of another session
    // (@fastify/session's regenerate() carries the old session's cookie options over) or store
    // says nothing of this one.
    const token = keptReadOf(sess);
    let read;
    if (token !== undefined && token.keeper === this.keptReads && token.key === key) {
      if (token.data === null) return;
      read = token;
    } else {
      const reads = this.keptReads.reads(key, Date.now());
      if (reads === undefined) return;
      read = reads.length === 1 ? reads[0] : this.readOf(reads, sess);
    }
    const { data, text } = read;
    this.keptReads.take(read);
    // The cookie the read held is not needed: the loop of saveLoaded takes a copied session's
    // cookie for changed, and its touch paths read the forms that save leaves.
    stateFor(sess).loaded = { key, data, text, forms: null, cookie: undefined, stored: null, gone: false, copied: true };
  }

  // readOf(reads, sess): of several kept reads of one session (requests of it in flight at
  // once, with saves between their reads), the one sess was most likely copied from: the one
  // whose top-level keys differ from sess's in fewest (the cookie aside), the oldest of those
  // that tie; differing only by the keys its request changed, the read it came from differs
  // less than one made before or after another request's change. Merged over another's read,
  // sess's stale value of a key changed between the two reads looked like a change of its own
  // and was written back over the newer one. Under another serializer, or when all read the
  // same bytes, the oldest.
  readOf(reads, sess) {
    if (this.serializer !== JSON) return reads[0];
    // A page's parallel requests, with no save between their reads, read the same: any of them
    // is the basis, and none need be parsed.
    const first = reads[0].data;
    if (reads.every((read) => read.data === first)) return reads[0];
    const now = this.forms(sess);
    let best = reads[0];
    let fewest = Infinity;
    for (const read of reads) {
      let parsed;
      try {
        parsed = JSON.parse(read.text ?? asBuffer(read.data).toString('utf8'));
      } catch (err) {
        continue;
      }
      if (!isPlainObject(parsed)) continue;
      let differ = 0;
      for (const k of Object.keys(parsed)) if (k !== 'cookie' && this.keyForm(k, parsed[k]) !== now.get(k)) differ++;
      for (const k of now.keys()) if (k !== 'cookie' && !Object.prototype.hasOwnProperty.call(parsed, k)) differ++;
      if (differ < fewest) {
        best = read;
        fewest = differ;
      }
    }
    return best;
  }

  // whileSaving(sess, key, before, saving, cb): withCallback(saving, cb) (saving: set()'s
  // promise), with sess counted as being saved (SessionState.saving, for presave) and as the
  // latest save of sess and of the session key (SessionState.lastSave, savesUnderway unless key
  // is null, see underway: what a save or touch that comes meanwhile waits for) until it settles.
  whileSaving(sess, key, before, saving, cb) {
    if (!isPlainObject(sess) || !Object.isExtensible(sess)) return withCallback(saving, cb);
    const state = stateFor(sess);
    state.saving++;
    const settled = () => {
      state.saving--;
      if (state.lastSave === counted) state.lastSave = undefined;
      if (key !== null && this.savesUnderway.get(key) === counted) this.queueEmptied(key);
    };
    // Not finally(): its callback's promise is chained again, a turn more for every save. With
    // cb (express-session's call), cb is answered here and counted resolves either way: what
    // waits for it (lastSave, savesUnderway) takes a failed save as a done one, and a then of
    // withCallback's after this one cost every save a promise and a turn more.
    const answer = typeof cb === 'function';
    const counted = saving.then((v) => {
      settled();
      if (answer) process.nextTick(cb, null, v);
      return v;
    }, (err) => {
      settled();
      if (!answer) throw err;
      process.nextTick(cb, err);
    });
    state.lastSave = counted;
    if (key !== null && before === undefined) this.savesUnderway.set(key, counted);
    else if (key !== null) this.underway(key, counted, before);
    return answer ? undefined : counted;
  }

  // underway(key, done, before): done (a save of the session key from this process) as the
  // latest under way (savesUnderway) until it and before (the one under way before it, if any)
  // have settled: a save that changed nothing does not wait for the one before it (see set),
  // and one that waits for it must wait for that one too.
  underway(key, done, before) {
    const entry = before === undefined ? done : done.then(() => before, () => before);
    this.savesUnderway.set(key, entry);
    const settled = () => {
      if (this.savesUnderway.get(key) === entry) this.queueEmptied(key);
    };
    entry.then(settled, settled);
  }

  // queueEmptied(key): no save of the session key from this process is under way any more.
  queueEmptied(key) {
    this.savesUnderway.delete(key);
    this.lastWritten.delete(key);
  }

  // saveSession(sid, sess, before): a promise of set()'s work, settled when it is done (its
  // value is no answer: its callers wait for it); before: another save of the session under
  // way, which a merge with changes to write waits for (see set). The save of a session get()
  // read is saveLoaded's promise as it is: an async function around it cost every cart add a
  // promise and a turn of the microtask queue.
  saveSession(sid, sess, before = undefined) {
    let key;
    let atMs;
    let ttl;
    try {
      key = this.key(sid);
      atMs = Date.now();
      ttl = Math.min(this.requestTtlMs(sess), codec.MAX_TTL_MS);
    } catch (err) {
      return Promise.reject(err);
    }
    const state = stateOf(sess);
    const st = ttl > 0 && this.merge && state !== undefined ? state.loaded : undefined;
    if (st && st.key === key) return this.saveLoaded(sid, sess, st, ttl, atMs, null, before);
    return this.saveOther(sid, sess, before, key, atMs, ttl, state);
  }

  // saveOther(sid, sess, before, key, atMs, ttl, state): saveSession's work for any other
  // session, or an expired one (ttl not above 0: destroyed); state: stateOf(sess).
  async saveOther(sid, sess, before, key, atMs, ttl, state) {
    if (!(ttl > 0)) {
      await this.client.destroy(this.namespace, key);
      return;
    }
    const data = this.serializer.stringify(sess);
    // The cookie as written, taken with the data: one the app set while the save was on its way
    // (req.session.save(cb), then cookie.maxAge) was taken for saved (see saveLoaded's touch).
    const cookie = cookieForm(sess && sess.cookie);
    // Awaited only after a save of this request (the await would let a request made after
    // this save in the same tick go out before it).
    if (state !== undefined && state.saved !== undefined) {
      if (await this.savedWhole(sess, key, data)) {
        if (this.savedShort(state.saved, sess)) await this.renewSaved(key, ttl, null, state.saved);
        return;
      }
      const made = this.merge ? await this.madeState(sess, key) : null;
      if (made !== null) {
        await this.saveLoaded(sid, sess, made, ttl, atMs, null, before);
        return;
      }
    }
    await this.client.set(this.namespace, key, data, ttl);
    markSaved(sess, atMs, ttl, { key, data }, cookie);
    if (state !== undefined && state.regenerated) {
      state.regenerated = false;
      // A read (LOAD) changes nothing; sent before the response, it reaches sessd long before
      // the browser's next request. Its failure costs the session only that protection.
      this.client.load(this.namespace, key).catch(noValue);
    }
  }

  // madeState(sess, key): for a session this store saved whole under key (one it made: a first
  // visit, a regenerate()) and that has changed since, the merge state (SessionState.loaded) of what that
  // save wrote, put on sess, so that this save and the next merge over it as over a session
  // read from sessd; null when there is no such save or it is not a session object. A session
  // object that lives on past its request saves it again later: Socket.IO's socket.request.session
  // (io.engine.use(sessionMiddleware)), made by the handshake of a visitor without a cookie
  // yet. Saved whole again with SET, it wrote back its stale copy over a login made over HTTP
  // meanwhile, and brought a logged-out (destroyed) session back, logged in again.
  async madeState(sess, key) {
    const whole = stateOf(sess).saved.whole;
    if (!whole || whole.key !== key || !isPlainObject(sess) || !Object.isExtensible(sess)) return null;
    const before = await this.wholeRead(whole);
    if (before === null) return null;
    const st = { key, data: asBuffer(whole.data), text: null, forms: before.forms, cookie: before.cookie, stored: null, gone: false, copied: false };
    stateFor(sess).loaded = st;
    return st;
  }

  // wholeRead(whole): a promise of { forms, cookie } (see SessionState.loaded) of the session a whole save
  // wrote (SessionState.saved's whole), null when it is not a session object the serializer reads back.
  async wholeRead(whole) {
    let before;
    try {
      before = await this.parse(whole.data);
    } catch (err) {
      return null;
    }
    return isPlainObject(before) ? { forms: this.forms(before), cookie: before.cookie } : null;
  }

  // savedShort(saved, sess): whether the request's end must renew the expiry its save (saved,
  // see SessionState.saved) gave the session sess: the save was made over SAVED_RENEW_AFTER_MS ago, or the
  // browser keeps the cookie the response sends (sess.cookie, renewed by express-session as
  // the response goes out) past that expiry. A cookie's Expires has whole seconds: the browser
  // keeps it until the start of the second its exact expiry falls in, which a lifetime given
  // a few hundred ms earlier, by a save made that long before the response, may not reach
  // (such a session was gone in sessd while the browser still sent its cookie). Only where
  // the lifetime is the cookie's (no ttl function, no disableTTL).
  // Never when the response has gone out without the cookie (sentNoCookie), the lifetime the
  // cookie's: the browser keeps the one an earlier response sent, whose end the save's
  // lifetime (its maxAge from the save) reaches. A flash's page answered over a second after
  // its pop was touched at its end all the same, one round trip more (test/touch-pop-end).
  savedShort(saved, sess) {
    const fromCookie = typeof this.ttl !== 'function' && !this.disableTTL;
    const expires = fromCookie ? savedExpiry(sess) : NaN;
    if (!Number.isNaN(expires) && sentNoCookie(sess)) return false;
    if (Date.now() - saved.atMs > SAVED_RENEW_AFTER_MS) return true;
    if (!fromCookie) return false;
    const browserEnd = Math.floor(expires / 1000) * 1000;
    return browserEnd - saved.untilMs > SAVED_EXPIRES_SLACK_MS;
  }

  // savedWhole(sess, key, data): whether this request saved sess whole under key already,
  // with the same data (the cookie's expiry aside, which express-session renews as the
  // response goes out: see sameCookie). After regenerate() and req.session.save() (a login,
  // passport's too), express-session saves the session again at the end of the request (the
  // id changed, so it takes the session for unsaved): that second SET, a round trip of every
  // login, wrote the same session again.
  async savedWhole(sess, key, data) {
    const saved = stateOf(sess)?.saved;
    const whole = saved !== undefined ? saved.whole : null;
    if (!whole || whole.key !== key) return false;
    if (typeof data === 'string' && typeof whole.data === 'string') {
      if (data === whole.data) return true;
    } else if (asBuffer(data).equals(asBuffer(whole.data))) {
      return true;
    }
    const before = await this.wholeRead(whole);
    if (before === null) return false;
    const mine = this.forms(sess);
    const theirs = before.forms;
    if (mine.size !== theirs.size) return false;
    for (const [k, f] of mine) {
      if (!theirs.has(k) || !this.sameForm(k, f, theirs.get(k))) return false;
    }
    return true;
  }

  // keyForm(key, value): how a top-level key's value serializes, to tell whether it changed:
  // undefined for a value the session would not keep (undefined; under JSON, functions), a
  // string (or Buffer, from a serializer that writes bytes) otherwise. The cookie is compared
  // as JSON (see sameCookie).
  keyForm(key, value) {
    if (value === undefined) return undefined;
    try {
      if (key === 'cookie') return cookieJson(value);
      if (this.serializer === JSON) return JSON.stringify(value);
      const one = {};
      put(one, key, value);
      const out = this.serializer.stringify(one);
      return typeof out === 'string' ? out : asBuffer(out);
    } catch (err) {
      return UNKNOWN_FORM;
    }
  }

  // forms(sess): Map of each top-level key to its keyForm (keys without one left out).
  forms(sess) {
    const out = new Map();
    for (const k of Object.keys(sess)) {
      const f = this.keyForm(k, sess[k]);
      if (f !== undefined) out.set(k, f);
    }
    return out;
  }

  // readForms(read, sess, now): forms(read) for read, the session as JSON.parse read it from
  // sessd, whose keys' forms in sess (the request's session) are now (forms(sess)). A key whose
  // value is the same JSON data as read (sameAsParsed) takes its form from now, which is the
  // one JSON.stringify would write for read's value: a cart add wrote the form of every key it
  // had not changed twice, read and now, a fifth of its store calls' CPU with the parse. The
  // cookie's is left to be made when asked for (a ReadForm, see formAt): saveLoaded compares
  // the cookies without it (sameCookieAsRead), and a save that goes through replaces the read
  // forms with now, so a cart add made it for nothing (2% of its store calls' CPU).
  readForms(read, sess, now) {
    if (!isPlainObject(read)) return this.forms(read);
    const out = new Map();
    for (const k of Object.keys(read)) {
      const value = read[k];
      const mine = now.get(k);
      let same = false;
      try {
        same = typeof mine === 'string' && k !== 'cookie' && sameAsParsed(value, sess[k], 0);
      } catch (err) {
        // A getter or a proxy of the app's that throws: its form says what it is.
      }
      const f = same ? mine : k === 'cookie' ? new ReadForm(value) : this.keyForm(k, value);
      if (f !== undefined) out.set(k, f);
    }
    return out;
  }

  // formAt(st, k): st.forms' form of key k, made now and kept if readForms left it to be made.
  formAt(st, k) {
    const f = st.forms.get(k);
    if (!(f instanceof ReadForm)) return f;
    const made = this.keyForm(k, f.value);
    st.forms.set(k, made);
    return made;
  }

  sameForm(key, a, b) {
    if (a === undefined || b === undefined) return a === b;
    if (a === UNKNOWN_FORM || b === UNKNOWN_FORM) return false;
    if (key === 'cookie') return sameCookie(a, b);
    if (typeof a === 'string' && typeof b === 'string') return a === b;
    return asBuffer(a).equals(asBuffer(b));
  }

  // serialize(sess, forms, mark): the serializer's bytes of sess, whose forms(sess) are given
  // (under JSON, followed by mark, see writeMark). Under JSON they are put together from the
  // forms (JSON.stringify would write the same bytes: own enumerable keys in the same order,
  // those without a form left out).
  serialize(sess, forms, mark = '') {
    if (this.serializer !== JSON) return asBuffer(this.serializer.stringify(sess));
    const parts = [];
    for (const [k, f] of forms) {
      if (typeof f !== 'string') return asBuffer(JSON.stringify(sess) + mark); // throws what it threw
      parts.push(JSON.stringify(k) + ':' + f);
    }
    return Buffer.from('{' + parts.join(',') + '}' + mark, 'utf8');
  }

  // formValue(key, form): a promise of the value a form was made from (a fresh copy), for
  // mergeKey's base.
  async formValue(key, form) {
    if (form === undefined || form === UNKNOWN_FORM) return undefined;
    try {
      if (this.serializer === JSON || key === 'cookie') return JSON.parse(form);
      const one = await this.serializer.parse(this.serializer.raw ? asBuffer(form) : typeof form === 'string' ? form : asBuffer(form).toString('utf8'));
      return isPlainObject(one) ? ownValue(one, key) : undefined;
    } catch (err) {
      return undefined;
    }
  }

  // lostEarly(sess, st, changed): an early save or touch (see saveLoaded) found the session
  // gone: marked so; false. The 'gone' event is left to the request's end: its save says it (see
  // saveLoaded), and so does its touch for a save of changes (changed: the cookie alone, which
  // express-session leaves to its touch, see saveCookie), if the request still has the session.
  lostEarly(sess, st, changed) {
    st.gone = true;
    st.goneUnsaid = changed;
    const state = stateOf(sess);
    if (state !== undefined) state.saved = undefined;
    return false;
  }

  // gone(sid, sess, st): a save found the session destroyed (or expired) since this request read
  // it: nothing was written, and the 'gone' event says so.
  gone(sid, sess, st) {
    st.gone = true;
    // Said: the request's end says it no more (see touchAfterPresave).
    st.goneSaid = true;
    // An earlier save of this request no longer stands.
    const state = stateOf(sess);
    if (state !== undefined) state.saved = undefined;
    this.emit('gone', sid, sess);
  }

  // saveLoaded(sid, sess, st, ttl, atMs): saves a session read from sessd without undoing what
  // other requests wrote to it meanwhile. The keys this request changed (set, replaced or
  // deleted, compared with what it read) are written with SET_IF, expecting the data it read;
  // none changed: a TOUCH_IF instead (see renewLoaded). On CONFLICT (another request saved
  // meanwhile) it reads the session again, applies the same changes to it (a key both
  // changed: mergeKey, default this request's value) and tries again after a short random
  // wait, up to mergeAttempts SET_IFs, then fails with ESESSD_CONFLICT. A session gone
  // meanwhile (destroyed, as at logout, or expired) is not written back: the save ends
  // without error, 'gone' is emitted. Resolves the lifetime the save gave the session, in ms
  // (ttl, or the one of the cookie another request saved, below), when sessd holds the session
  // as saved (or touched: ttl), false when it was gone; the session is then marked saved at
  // atMs (markSaved), with the cookie's form as written.
  // A SET_IF whose connection broke (sessd crashed) is sent again by the client, and one that
  // meets its own first attempt's data resolves 'ok' (Client.ownWrite): merged here, its
  // changes would be applied twice (mergeKey would get them as "theirs" too).
  // early (presave's): 'touch' for a pop's, which sends nothing when the request changed a key
  // (null); 'save' for a push's. An early save or touch that finds the session gone says
  // nothing (false), and marks it gone (st.gone), so that the request's end sends nothing more
  // for it: the session may be one the request itself destroys or regenerates next
  // (res.redirect(); req.session.destroy()), and the end's save, made only when the request
  // still has the session and changed it, says 'gone' as it would have (see lostEarly).
  // before: another save of the session under way in this process, waited for once there are
  // changes to write (see set).
  async saveLoaded(sid, sess, st, ttl, atMs, early = null, before = undefined) {
    const ns = this.namespace;
    if (st.gone) {
      this.gone(sid, sess, st);
      return false;
    }
    // A pop's touch, the cookie as read: sent without comparing the other keys, which cost every
    // page showing a flash (every flash.locals() page on a sessd without LOAD counts) a second
    // parse and each key's form (8 us a 1 KB session, 30 at 8 KB). A key changed before the pop
    // is saved at the end all the same, the touch then one request more, pipelined with the pop.
    if (early === 'touch' && st.forms === null && this.serializer === JSON && sameCookieAsRead(st.cookie, sess.cookie) === true) {
      // The cookie as touched, taken now: the page runs while the touch is on its way (its reply
      // comes behind the pop's), and one that set its cookie's maxAge meanwhile had that cookie
      // taken for saved, so its end only touched and sessd kept the old one (see touchNow).
      const cookie = cookieForm(sess.cookie);
      if (await this.renew(ns, st.key, ttl, st)) {
        markSaved(sess, atMs, ttl, null, cookie);
        return ttl;
      }
      return this.lostEarly(sess, st, false);
    }
    // The forms of what get() read: its cookie is st.cookie, as parsed (see sameCookieAsRead).
    const asRead = st.forms === null && this.serializer === JSON;
    const now = this.forms(sess);
    // JSON's parse is no promise: awaited, it cost each save a turn (see get).
    if (st.forms === null) {
      st.forms = asRead ? this.readForms(parseJson(st.text ?? asBuffer(st.data).toString('utf8')), sess, now) : this.forms(await this.parse(st.text ?? st.data));
      // Its cookie as read, but for the lifetime adopted (see adoptNewerLifetime).
      if (st.adopted && st.forms.has('cookie')) st.forms.set('cookie', new ReadForm(st.cookie));
    }
    const changed = [];
    for (const [k, f] of st.forms) {
      // A copied session's cookie is always written: @fastify/session ends a session whose
      // stored cookie has expired, by the expiry the data holds, which a touch does not renew.
      const same = k !== 'cookie' ? null : st.copied ? false : asRead ? sameCookieAsRead(st.cookie, sess.cookie) : null;
      if (!(same ?? this.sameForm(k, f instanceof ReadForm ? this.formAt(st, k) : f, now.get(k)))) changed.push(k);
    }
    for (const k of now.keys()) if (!st.forms.has(k)) changed.push(k);
    // A copied session whose request set no lifetime writes its cookie only to renew the stored
    // expiry: merged over another request's save, it takes that save's lifetime (see
    // applyChanges), as an Express request's merge does (theirCookie, below). Written as it
    // was, a slow page loaded before a "remember me" set in another tab wrote its hour back.
    const renewCookie = st.copied && now.has('cookie') && st.forms.has('cookie') && sameLifetimeSet(this.formAt(st, 'cookie'), now.get('cookie'));
    if (early === 'touch' && changed.length > 0) return null;
    if (changed.length === 0) {
      // Saved already in this request (presave, or req.session.save()) and not changed since:
      // sessd holds it, and a touch would cost a round trip (see touch).
      const saved = stateOf(sess)?.saved;
      if (saved !== undefined && !this.savedShort(saved, sess)) return saved.untilMs - atMs;
      if (await this.renew(ns, st.key, ttl, st)) {
        markSaved(sess, atMs, ttl, null, now.get('cookie'));
        return ttl;
      }
      if (early !== null) return this.lostEarly(sess, st, false);
      this.gone(sid, sess, st);
      return false;
    }
    if (before !== undefined) await before.then(noValue, noValue);
    // Queued behind this process's save of the session, which changed what this request read:
    // the bytes that save wrote are what sessd holds unless another writer came since (then
    // SET_IF says CONFLICT, as it would have). Expecting what was read always met that
    // CONFLICT: a GET and a second SET_IF, three round trips where one does.
    const basis = before !== undefined ? this.lastWritten.get(st.key) : undefined;
    let expect = basis !== undefined ? dataTag(basis) : this.tags.peek(st.key, st.data);
    // The data whose tag expect is: its marks are carried (carriedMarks).
    let expected = basis !== undefined ? basis : st.text ?? st.data;
    const theirs = basis !== undefined ? basis : st.stored;
    let merged = theirs === null ? null : await this.applyChanges(await this.parse(theirs), sess, changed, st, now, renewCookie);
    for (let attempt = 1; ; attempt++) {
      // Under JSON, bytes no other save writes, so that a resend after a crash knows its own
      // (writeMark), after the marks of the data it expects, so that it knows its own under
      // another's save too (carriedMarks).
      const mark = this.serializer === JSON ? carriedMarks(expected) + writeMark() : '';
      const bytes = merged === null ? this.serialize(sess, now, mark)
        : mark === '' ? asBuffer(this.serializer.stringify(merged)) : Buffer.from(JSON.stringify(merged) + mark, 'utf8');
      // The cookie another request saved meanwhile (this one did not change it) is the newer
      // decision on the lifetime, a longer one ("remember me") or a shorter one ("forget me"):
      // renewed from now, as express-session's touch renews this request's. Taking the longer
      // of the two kept a forgotten session for the 30 days the slow request had read.
      let writeTtl = ttl;
      let theirCookie = null;
      // The lifetime a copied session's cookie took from the stored one (applyChanges).
      if (merged !== null && renewCookie) {
        const adopted = Math.min(this.ttlMs(sess), codec.MAX_TTL_MS);
        if (adopted > 0) writeTtl = adopted;
      } else if (merged !== null && !changed.includes('cookie') && isPlainObject(merged.cookie) &&
          !this.sameForm('cookie', this.keyForm('cookie', merged.cookie), now.get('cookie'))) {
        // One that has expired (a ttl function's 0) was that save's to act on: it stands.
        const theirs = this.renewedTtlMs(merged);
        if (theirs > 0) {
          writeTtl = theirs;
          theirCookie = merged.cookie;
        }
      }
      const sentSeq = this.readSeq;
      const outcome = await this.client.setIf(ns, st.key, bytes, writeTtl, expect);
      if (outcome === 'ok') {
        if (!st.copied && changed.includes('cookie')) this.noteLifetime(st.key, now.get('cookie'), sentSeq);
        // Only while a queue holds the session, which drops it as it empties (queueEmptied).
        if (this.savesUnderway.has(st.key)) this.lastWritten.set(st.key, bytes);
        st.data = bytes;
        st.text = null;
        if (merged === null) {
          st.forms = now;
          st.stored = null;
        } else {
          for (const k of changed) {
            if (now.has(k)) st.forms.set(k, now.get(k));
            else st.forms.delete(k);
          }
          st.stored = bytes;
        }
        let cookie = now.get('cookie');
        if (theirCookie !== null && adoptLifetime(sess.cookie, theirCookie)) {
          cookie = this.keyForm('cookie', sess.cookie);
          st.forms.set('cookie', cookie);
        }
        markSaved(sess, atMs, writeTtl, null, cookie);
        return writeTtl;
      }
      if (outcome === 'not_found') {
        if (early !== null) return this.lostEarly(sess, st, true);
        this.gone(sid, sess, st);
        return false;
      }
      if (attempt >= this.mergeAttempts) throw conflictError(attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 ** attempt, this.mergeBackoffMaxMs)));
      const current = await this.client.get(ns, st.key);
      if (current === null) {
        if (early !== null) return this.lostEarly(sess, st, true);
        this.gone(sid, sess, st);
        return false;
      }
      expect = dataTag(current);
      expected = current;
      merged = await this.applyChanges(await this.parse(current), sess, changed, st, now, renewCookie);
    }
  }

  // applyChanges(theirs, sess, changed, st, now, renewCookie): a promise of theirs (the session
  // as another request left it, parsed) with this request's changed keys applied: set to this
  // request's value, or deleted. A key the other request changed too goes through mergeKey
  // when given. renewCookie: the cookie of a copied session whose request set no lifetime (see
  // saveLoaded), which takes the lifetime of theirs (adoptStoredLifetime; now's form of it
  // follows) and is written renewed, without mergeKey.
  async applyChanges(theirs, sess, changed, st, now, renewCookie = false) {
    const out = isPlainObject(theirs) ? theirs : {};
    for (const k of changed) {
      if (k === 'cookie' && renewCookie) {
        if (adoptStoredLifetime(sess.cookie, ownValue(out, 'cookie'))) now.set('cookie', this.keyForm('cookie', sess.cookie));
        put(out, k, sess.cookie);
        continue;
      }
      let value = now.has(k) ? sess[k] : undefined;
      if (this.mergeKey) {
        const other = ownValue(out, k);
        if (!this.sameForm(k, this.keyForm(k, other), this.formAt(st, k))) {
          value = this.mergeKey(k, await this.formValue(k, this.formAt(st, k)), value, other);
        }
      }
      if (value === undefined) delete out[k];
      else put(out, k, value);
    }
    return out;
  }

  // touch(sid, sess, cb): renews the expiry; a session that is gone stays gone. A session
  // get() read (with merge on) is touched only while it holds what this request read (see
  // renewLoaded): express-session touches at the end of a request that changed nothing, with
  // the cookie it read, and another request may have saved a newer cookie meanwhile. A
  // session this request saved is not touched again (see SessionState.saved), unless the request set its
  // cookie after that save: express-session takes the cookie for no change and only touches,
  // and a touch writes no data, so that "remember me" lasted until the next page's touch
  // with the stored cookie (the browser holding the 30-day cookie the response sent). It is
  // saved as a cookie changed alone is (saveCookie).
  // A save of sess under way is waited for first (see set): the touch then finds it saved.
  touch(sid, sess, cb) {
    if (this.lifetimes.size !== 0) this.adoptNewerLifetime(sid, sess);
    const state = stateOf(sess);
    const go = () => (state !== undefined && state.presave !== undefined
      ? state.presave.done.then(() => this.touchAfterPresave(sid, sess, state))
      : this.touchNow(sid, sess, state));
    const before = state !== undefined ? state.lastSave : undefined;
    return withCallbackVoid(before !== undefined ? before.then(go, go) : go(), cb);
  }

  // touchAfterPresave(sid, sess, state): touch()'s work for a session whose early save
  // (state.presave, see presave) has settled: a promise.
  async touchAfterPresave(sid, sess, state) {
    if (this.disableTouch || this.disableTTL || answeredFailedSave(sess)) return undefined;
    const pre = state.presave;
    const loaded = this.merge ? state.loaded : undefined;
    if (loaded && loaded.key === this.key(sid)) {
      // The early save found the session gone: nothing more is sent for it. A change of the
      // cookie (its own, or one set after a pop's touch) is a save that says so (saveCookie).
      if (loaded.gone) {
        // Not when a save since said it (the app's req.session.save() before its response).
        if (!loaded.goneSaid && (loaded.goneUnsaid || this.cookieChanged(sess, loaded))) this.gone(sid, sess, loaded);
        loaded.goneUnsaid = false;
        return undefined;
      }
      // The early save of the cookie failed: not made again (see presave), its error taken
      // as saveCookie takes it.
      if (pre.err !== null) {
        const err = pre.err;
        pre.err = null;
        await this.cookieSaveFailed(err, sid, Math.min(this.ttlMs(sess), codec.MAX_TTL_MS), loaded);
        return undefined;
      }
    }
    return this.touchNow(sid, sess, state);
  }

  // touchNow(sid, sess, state): touch()'s work, once an early save of sess (state: its hidden
  // state) is settled: a promise. Not an async function, nor are renew and the first attempt
  // of its TOUCH_IF: a page view's touch went through four of them on its way to the socket
  // and back, a promise and a turn of the microtask queue each (bench/e2e/store-ops.js).
  touchNow(sid, sess, state) {
    try {
      if (this.disableTouch || this.disableTTL || answeredFailedSave(sess)) return SETTLED;
      const saved = state !== undefined ? state.saved : undefined;
      const savedAsIs = saved !== undefined && this.sameForm('cookie', saved.cookie, cookieForm(sess.cookie));
      if (savedAsIs && !this.savedShort(saved, sess)) return SETTLED;
      const atMs = Date.now();
      const key = this.key(sid);
      const ttl = Math.min(this.ttlMs(sess), codec.MAX_TTL_MS);
      const loaded = this.merge && state !== undefined ? state.loaded : undefined;
      const st = loaded && loaded.key === key && !loaded.gone ? loaded : null;
      // Saved as it is, but long before the response gave the browser its cookie.
      if (savedAsIs) return ttl > 0 ? this.renewSaved(key, ttl, st, saved) : SETTLED;
      if (!(ttl > 0)) return this.client.destroy(this.namespace, key);
      if (st && this.cookieChanged(sess, st)) return this.saveCookie(sid, sess, st, ttl, atMs);
      // Saved whole by this request (a session it made, or merge off): whole again. Not one
      // read with merge on: a SET would bring it back if it was destroyed since.
      if (saved !== undefined && !loaded) return this.saveCookie(sid, sess, null, ttl, atMs);
      return this.renew(this.namespace, key, ttl, st);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // cookieChanged(sess, st): whether this request set the cookie of the session it read (its
  // maxAge, say) beyond what express-session changes by itself (see sameCookie).
  // While forms is null sessd holds what was read, and its cookie is the one get() parsed
  // (st.cookie): a page that changed nothing is touched without parsing its session again
  // and writing every key's form, which cost each page view as much as its read.
  cookieChanged(sess, st) {
    if (st.forms === null && this.serializer === JSON) {
      const same = sameCookieAsRead(st.cookie, sess.cookie);
      if (same !== null) return !same;
    }
    const stored = st.forms === null ? this.keyForm('cookie', st.cookie) : this.formAt(st, 'cookie');
    return !this.sameForm('cookie', stored, this.keyForm('cookie', sess.cookie));
  }

  // saveCookie(sid, sess, st, ttl): the touch of a session whose cookie alone this request set.
  // express-session leaves the cookie out of its change check and only touches, and a touch
  // writes no data: the next page would touch with the stored cookie's lifetime, so a
  // "remember me" made by cookie.maxAge alone lasted one page (MemoryStore stores the cookie
  // on touch). The cookie is saved as saveLoaded saves any change, merged over what other
  // requests saved meanwhile. express-session takes it for a touch, whose error would reach
  // the app after the page went out: a save that fails for the link's sake leaves the session
  // as it was (see renew), and one that sessd refuses (NO_MEMORY at --max-memory, the longer
  // cookie growing the data: reads and touches work there; LIMIT or TOO_LARGE near max_data)
  // or that runs out of attempts falls back to the touch it replaces.
  // Without st (a session this request saved whole with SET): SET whole again. atMs: when ttl
  // was worked out.
  async saveCookie(sid, sess, st, ttl, atMs) {
    try {
      if (st) await this.saveLoaded(sid, sess, st, ttl, atMs);
      else {
        const cookie = cookieForm(sess.cookie);
        await this.client.set(this.namespace, this.key(sid), this.serializer.stringify(sess), ttl);
        markSaved(sess, atMs, ttl, null, cookie);
      }
    } catch (err) {
      await this.cookieSaveFailed(err, sid, ttl, st);
    }
  }

  // cookieSaveFailed(err, sid, ttl, st): after saveCookie's save failed with err: one that failed
  // for the link's sake leaves the session as it was, one sessd refused is touched instead, any
  // other error is thrown.
  async cookieSaveFailed(err, sid, ttl, st) {
    if (!err || !(TOUCH_SPARED.has(err.code) || COOKIE_SAVE_TOUCHED.has(err.code))) throw err;
    if (COOKIE_SAVE_TOUCHED.has(err.code)) await this.renew(this.namespace, this.key(sid), ttl, st);
  }

  // renew(ns, key, ttl, st): TOUCH, or with st (SessionState.loaded of a session this request
  // read) a TOUCH_IF over what it read (see renewLoaded); resolves to false when the session
  // is gone. A touch that fails for the daemon's sake (a full or failing disk: IO_ERROR,
  // which sessd logs) or the link's (lost or timed out mid-request, as when sessd restarts;
  // 'disconnect' reports an outage) leaves the session with its earlier expiry and resolves
  // true: express-session hands a touch error to next() after the page has gone out, which
  // resets the browser's connection, and an expiry with hours to run is not worth a broken
  // page.
  renew(ns, key, ttl, st = null) {
    try {
      if (st) return this.renewLoaded(ns, st, ttl);
      return this.client.touch(ns, key, ttl).catch(spareTouch);
    } catch (err) {
      try {
        return Promise.resolve(spareTouch(err));
      } catch (thrown) {
        return Promise.reject(thrown);
      }
    }
  }

  // renewSaved(key, ttl, st, saved): the touch of a session this request saved long before its
  // end (see SAVED_RENEW_AFTER_MS), as it is since: over what it read and saved (st, with merge
  // on), or what it saved whole (saved.whole), as renewLoaded touches, so that a lifetime
  // another request's save gave the session meanwhile stands; else a plain TOUCH.
  async renewSaved(key, ttl, st, saved) {
    const basis = st || (saved.whole && saved.whole.key === key ? { key, data: saved.whole.data } : null);
    await this.renew(this.namespace, key, ttl, basis);
  }

  // renewLoaded(ns, st, ttl): the touch of a session this request read and did not change:
  // TOUCH_IF to ttl, expecting the data it read (st.data). On CONFLICT another request saved
  // the session after this one read it, and that save's cookie is the newer decision (a
  // "remember me" that lengthened the session, a "forget me" that shortened it): the session
  // is read again and touched with the ttl its own stored cookie gives (touchTtlMs), expecting
  // that data, up to mergeAttempts times with the saves' random wait between; then it is left
  // with the expiry the last save gave it. Resolves false when the session is gone
  // (NOT_FOUND: destroyed, expired, or flashes only), else true. A daemon older than TOUCH_IF
  // gets a plain TOUCH (Client.touchIf).
  // Its failures are renew()'s (spareTouch).
  renewLoaded(ns, st, ttl) {
    return this.client.touchIf(ns, st.key, ttl, this.tags.tag(st.key, st.data)).then(
      (outcome) => (outcome !== 'conflict' ? outcome === 'ok' : this.renewConflicted(ns, st).catch(spareTouch)),
      spareTouch,
    );
  }

  // renewConflicted(ns, st): renewLoaded's attempts after the first, which met a CONFLICT.
  async renewConflicted(ns, st) {
    for (let attempt = 1; ; attempt++) {
      if (attempt >= this.mergeAttempts) return true;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 ** attempt, this.mergeBackoffMaxMs)));
      const current = await this.client.get(ns, st.key);
      if (current === null) return false;
      const touchTtl = await this.touchTtlMs(current);
      // Stored data that is no session this store can read, or a cookie that has expired:
      // the save that wrote it chose its expiry, and it stands.
      if (touchTtl === null || !(touchTtl > 0)) return true;
      const outcome = await this.client.touchIf(ns, st.key, touchTtl, dataTag(current));
      if (outcome !== 'conflict') return outcome === 'ok';
    }
  }

  // touchTtlMs(data): a promise of the ttl in ms that express-session's touch at the end of a
  // request that read the session stored as data would give it: its cookie reset to
  // originalMaxAge from now (Session.touch), through ttlMs (the ttl option's function, or
  // with no maxAge the ttl option, as for a save). null when data does not parse.
  async touchTtlMs(data) {
    let sess;
    try {
      sess = await this.parse(data);
    } catch (err) {
      return null;
    }
    return this.renewedTtlMs(sess);
  }

  // renewedTtlMs(sess): the ttl in ms that express-session's touch would give the parsed
  // session sess (a plain object, its cookie as stored): the cookie's originalMaxAge from now,
  // through ttlMs. Throws what a ttl function throws.
  renewedTtlMs(sess) {
    if (isPlainObject(sess) && isPlainObject(sess.cookie)) {
      // An express-session Cookie keeps its fields behind accessors: its JSON form has them.
      const cookie = typeof sess.cookie.toJSON === 'function' ? sess.cookie.toJSON() : sess.cookie;
      const maxAge = cookie.originalMaxAge;
      const expires = typeof maxAge === 'number' ? new Date(Date.now() + maxAge).toISOString() : null;
      sess = { ...sess, cookie: { ...cookie, expires } };
    }
    return Math.min(this.ttlMs(withCookie(sess)), codec.MAX_TTL_MS);
  }

  // destroy(sid, cb): removes the session, its data and its flashes (with migrateFrom, from
  // the old store too: see Migration.destroy). No id (null or undefined: an app's
  // store.destroy(req.sessionID) on a request without a session) is nothing to remove, as with
  // connect-redis and MemoryStore: a rejection there, in a logout's call not awaited, would be
  // an unhandled one and end the process.
  destroy(sid, cb) {
    if (sid === null || sid === undefined) return withCallback(Promise.resolve(), cb);
    const err = idError(sid);
    if (err !== null) return withCallback(Promise.reject(err), cb);
    const key = this.key(sid);
    this.tags.forget(key);
    if (this.migration !== null) return withCallback(this.migration.destroy(sid, key), cb);
    return withCallback(this.client.destroy(this.namespace, key).then(() => undefined), cb);
  }

  // regenerate(req, fn): express-session's (destroy the session, start a new one under a new
  // id), except that the flashes this request pushed to the old session (flash() lists them
  // on req[FLASH_PUSHES]) are pushed again to the new one, in their order: passport pushes
  // successFlash just before req.logIn regenerates the session. Flashes pushed by earlier
  // requests go with the old session, as its data does: passport's logOut regenerates too,
  // and the logged-out page (a shared computer's next user) must not show the last user's
  // unread messages. A push sessd dropped (it resolved 0: the old session was destroyed by
  // another request, or expired) is moved all the same: it was made for this visitor, and
  // the new id is not one another request ended. A push that failed is not: its caller had
  // the error, and sessd would refuse the same message again. The DESTROY goes out on the
  // old id's connection after every push made to it, so none outlives it; fn runs once the
  // moved messages are stored.
  // With regenerateFlashes 'all', every flash still queued for the old id moves, as passport's
  // keepSessionInfo carries the old session's data (and connect-flash's in-session flashes)
  // over: a FLASH_POP of them all goes out just before the DESTROY, on the same connection,
  // so it takes this request's pushes too; those sessd dropped are added after them. A pop
  // that fails moves this request's pushes only: the DESTROY's outcome decides the call's.
  // 'own' moves a push of this request only if the pop still found it: another request of
  // the visitor (a second tab) may have shown it meanwhile, and it must not show twice.
  // A flash pushed while this runs waits and goes to the new session (see REGENERATING).
  // Without fn, a promise (rejected as fn would be called with an error).
  regenerate(req, fn) {
    const err = idError(req.sessionID);
    if (err !== null) return withCallbackVoid(Promise.reject(err), fn);
    const oldKey = this.key(req.sessionID);
    let regenerated;
    const regenerating = new Promise((resolve) => {
      regenerated = () => {
        if (req[REGENERATING] === regenerating) delete req[REGENERATING];
        resolve();
      };
    });
    req[REGENERATING] = regenerating;
    const pushed = req[FLASH_PUSHES] || [];
    const mine = (p) => p.namespace === this.namespace && p.key === oldKey;
    const moving = pushed.filter(mine);
    if (moving.length > 0) req[FLASH_PUSHES] = pushed.filter((p) => !mine(p));
    // A pop that fails moves this request's pushes only (null).
    const all = this.regenerateFlashes === 'all';
    const popped = all || moving.length > 0 ? this.client.flashPop(this.namespace, oldKey, null).catch(() => null) : null;
    const destroyed = this.client.destroy(this.namespace, oldKey);
    this.tags.forget(oldKey);
    if (this.migration !== null) this.migration.forget(req.sessionID);
    return withCallbackVoid((async () => {
      const queued = await popped;
      let destroyErr = null;
      try {
        await destroyed;
      } catch (err) {
        destroyErr = err;
      }
      const outcomes = await Promise.allSettled(moving.map((p) => p.result));
      const messages = [];
      if (queued && all) for (const type of Object.keys(queued)) for (const msg of queued[type]) messages.push({ type, msg });
      moving.forEach((p, i) => {
        if (outcomes[i].status !== 'fulfilled') return;
        // Popped with the rest unless sessd dropped it.
        if (queued && outcomes[i].value !== 0 && (all || !claim(queued, p))) return;
        messages.push(p);
      });
      this.generate(req);
      const made = stateFor(req.session);
      if (made !== null) made.regenerated = true;
      // express-session makes the new session whatever the outcome (an app that ignores the
      // error must not go on in the old one), but after a failed DESTROY its save would fail
      // the same way: answered an error page, it is not saved (see answeredFailedSave).
      if (destroyErr) markSaveFailed(req.session);
      const newKey = this.key(req.sessionID);
      const ttl = Math.min(Math.max(this.ttlMs(req.session), 1), codec.MAX_TTL_MS);
      const pushes = messages.map(({ type, msg }) => {
        const result = this.client.flashPush(this.namespace, newKey, type, msg, ttl);
        // Pushed by this request still: a second regenerate in it moves them again.
        if (req[FLASH_PUSHES]) req[FLASH_PUSHES].push({ namespace: this.namespace, key: newKey, type, msg, result });
        return result;
      });
      // The pushes that waited go out now, after the moved ones (one connection per id).
      regenerated();
      try {
        await Promise.all(pushes);
      } catch (err) {
        // A moved flash lost (its push broke with its connection): the regenerate fails, and
        // as after a failed DESTROY, its error page does not save the new session (a login's
        // second save, with sessd still down, reached Express's final handler).
        markSaveFailed(req.session);
        throw err;
      }
      if (destroyErr) throw destroyErr;
    })().finally(regenerated), fn);
  }

  // createSession(req, sess): express-session's, for a session read from sessd; marks it as
  // stored, so that flash() need not make express-session save it again.
  createSession(req, sess) {
    const read = stateOf(sess);
    if (read !== undefined && read.keep) this.keep(sess, read.keep);
    const session = super.createSession(req, sess);
    const state = Session !== null && session instanceof Session ? newState(session) : stateFor(session);
    state.stored = true;
    if (session.cookie) state.loadedExpires = session.cookie.expires;
    // express-session's Session copies the enumerable keys only: carry the merge state and
    // the flash count over.
    if (read !== undefined) {
      if (read.loaded) state.loaded = read.loaded;
      if (read.flashCount) state.flashCount = read.flashCount;
    }
    return session;
  }

  // ids(cb): the ids (without prefix) of the namespace's sessions, flash-only ones included.
  ids(cb) {
    return withCallback((async () => {
      const ids = await this.client.ids(this.namespace, this.scanCount);
      const out = [];
      for (const id of ids) if (id.startsWith(this.prefix)) out.push(id.slice(this.prefix.length));
      return out;
    })(), cb);
  }

  // all(cb): an array of every session, each with its `id` set (connect-redis v7's shape);
  // sessions that vanish during the scan, and flash-only sessions, are left out.
  // The GETs go ALL_WINDOW at a time: all of them at once queued ahead of the app's own
  // requests on the pool they share (60,000 sessions: pages waited 1.4 s) and held every
  // session twice, read and parsed. A record the serializer cannot read fails the call with
  // its error, which names the session by err.sessionId.
  all(cb) {
    return withCallback((async () => {
      const ids = await this.ids();
      const out = [];
      const one = async (id) => {
        const data = await this.client.get(this.namespace, this.key(id));
        if (data === null) return null;
        try {
          const sess = await this.parse(data);
          sess.id = id;
          return sess;
        } catch (err) {
          // An accessor, not enumerable: the caller reads it, but console.error, util.inspect,
          // JSON and loggers' error serializers show only enumerable properties, and
          // util.inspect with showHidden (console.log('%o', err)) shows an accessor as
          // [Getter/Setter], not its value: a full id in a log lets whoever reads it take the
          // session.
          if (err !== null && typeof err === 'object') {
            let sessionId = id;
            Object.defineProperty(err, 'sessionId', {
              get: () => sessionId,
              set: (v) => {
                sessionId = v;
              },
              enumerable: false,
              configurable: true,
            });
          }
          throw err;
        }
      };
      for (let at = 0; at < ids.length; at += ALL_WINDOW) {
        const got = await Promise.all(ids.slice(at, at + ALL_WINDOW).map(one));
        for (const sess of got) if (sess !== null) out.push(sess);
      }
      return out;
    })(), cb);
  }

  // length(cb): how many sessions the namespace holds (with a prefix: how many ids carry
  // it). Counts flash-only sessions too.
  length(cb) {
    return withCallback((async () => {
      if (this.prefix === '') return this.client.count(this.namespace);
      return (await this.ids()).length;
    })(), cb);
  }

  // clear(cb): removes every session of the namespace (with a prefix: those with it), and
  // with migrateFrom every session of the old store (its clear()).
  clear(cb) {
    return withCallback((async () => {
      if (this.migration !== null) await this.migration.clear();
      if (this.prefix === '') {
        await this.client.clear(this.namespace);
        return undefined;
      }
      const ids = await this.ids();
      for (let at = 0; at < ids.length; at += ALL_WINDOW) {
        await Promise.all(ids.slice(at, at + ALL_WINDOW).map((id) => this.client.destroy(this.namespace, this.key(id))));
      }
      return undefined;
    })(), cb);
  }

  // migrateAll(opts, cb): with migrateFrom, moves every session of the old store to sessd now
  // (opts.concurrency at a time, default 16): { moved, already, none } (see
  // Migration.moveAll).
  migrateAll(opts = {}, cb = undefined) {
    if (typeof opts === 'function') return this.migrateAll({}, opts);
    // null is no options; whatever else is wrong is a rejection (or cb's error), not a throw.
    const concurrency = opts === null || opts === undefined ? 16 : opts.concurrency ?? 16;
    const checked = this.migration === null ? new TypeError('migrateAll() needs the store\'s migrateFrom option')
      : typeof opts !== 'object' && opts !== undefined ? new TypeError(`migrateAll() takes an object of options, got ${util.inspect(opts)}`)
      : !(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 1024) ? new RangeError(`concurrency must be a whole number of 1..1024, got ${util.inspect(concurrency)}`) : null;
    return withCallback(checked ? Promise.reject(checked) : this.migration.moveAll(concurrency), cb);
  }

  // close(): if this store opened its connections, lets the requests in flight finish and
  // closes them; no new requests are taken.
  close() {
    this.client.off('connect', this.onConnect);
    this.client.off('disconnect', this.onDisconnect);
    this.tags.clear(); // the copies of sessions' data go with the store
    if (this.keptReads !== null) this.keptReads.clear();
    this.lifetimes.clear();
    if (this.ownsClient) this.client.close();
  }
}

module.exports = { SessdStore, ReadKeeper, sameCookieAsRead, DEFAULT_TTL_S, stateOf, FLASH_PUSHES, REGENERATING, markSaveFailed, warnUnknownOptions };
