'use strict';
// flash(): connect-flash's req.flash on sessd. Flash queues live beside the session (one
// FIFO per type, PROTOCOL.md "Flashes"), so every push and pop is one atomic request and a
// concurrent whole-session save cannot drop a message. Every call returns a promise.

const util = require('util');
const { MAX_TTL_MS } = require('./codec');
const { SessdStore, stateOf, DEFAULT_TTL_S, FLASH_PUSHES, REGENERATING, markSaveFailed, warnUnknownOptions } = require('./store');
const { unavailableError } = require('./connection');

// The options flash() and flash.locals() know; others draw a warning (warnUnknownOptions).
const FLASH_OPTIONS = new Set(['store', 'client', 'namespace', 'prefix', 'markSession', 'onError', 'unsafe']);
const LOCALS_OPTIONS = new Set(['methods']);

const DEFAULT_MARK = '_flash';
// How many of a request's pushes it keeps for regenerate() to move (FLASH_PUSHES), the latest.
// A page pushes a few before a login's regenerate(); a request object that lives on, Socket.IO's
// socket.request (io.engine.use(flash())), pushed for its pages to show and never popped them
// itself, and held every push (its message and promise) for as long as the socket was open:
// 10.9 MiB of heap after 40,000 pushes of one socket (bounded: 3.9).
const PUSHES_KEPT = 128;

// On every req.flash a flash() sets: a flash() that finds one (mounted on the app and again in
// a router, as connect-flash apps do) leaves it without the warning meant for another library's.
const SESSD_FLASH = Symbol('connect-sessd req.flash');

// The methods that change a response's head, and the verb of Node's error for each.
const HEAD_METHODS = { setHeader: 'set', writeHead: 'write', removeHeader: 'remove', appendHeader: 'append' };

// headersSentError(verb): the error Node throws for a change of a response's head once it has
// gone out.
function headersSentError(verb) {
  const err = new Error(`Cannot ${verb} headers after they are sent to the client`);
  err.code = 'ERR_HTTP_HEADERS_SENT';
  return err;
}

// freezeHead(res): makes res behave as if its head had gone out, as it has for the app (it
// called res.end): headersSent is true, a change of the head throws as Node's does, a change
// of the status and a write are ignored. Without this, the classic missing return
// (res.redirect(...); res.json(...)) rewrote the held redirect's headers under it, and an
// error handler saw headersSent false and answered over it. Returns a function that undoes
// it, for the held end to go out exactly as first called.
function freezeHead(res) {
  const saved = [];
  const hold = (name, descriptor) => {
    saved.push([name, Object.getOwnPropertyDescriptor(res, name)]);
    Object.defineProperty(res, name, { configurable: true, enumerable: false, ...descriptor });
  };
  for (const [name, verb] of Object.entries(HEAD_METHODS)) {
    if (typeof res[name] !== 'function') continue;
    hold(name, { writable: true, value: function headersSent() { throw headersSentError(verb); } });
  }
  hold('headersSent', { get: () => true });
  for (const name of ['statusCode', 'statusMessage']) {
    const value = res[name];
    hold(name, { get: () => value, set: () => {} });
  }
  // Node's write after end: nothing goes out, the callback has the error.
  hold('write', {
    writable: true,
    value: function writeAfterEnd(chunk, encoding, cb) {
      const done = typeof encoding === 'function' ? encoding : cb;
      if (typeof done === 'function') {
        const err = new Error('write after end');
        err.code = 'ERR_STREAM_WRITE_AFTER_END';
        process.nextTick(done, err);
      }
      return false;
    },
  });
  return () => {
    for (const [name, descriptor] of saved.reverse()) {
      if (descriptor) Object.defineProperty(res, name, descriptor);
      else delete res[name];
    }
  };
}

// holdEnd(res, pending): until every push in ${pending} has settled, keep res.end (and so the
// headers: express-session sends them at res.end, before its own save completes) from going
// out. A browser follows a redirect as soon as it has the headers, and the next page may be
// served by another process on another connection: it must find the flash already stored.
// Meanwhile the response is frozen (freezeHead); an end called again is ignored, as Node
// ignores an end after end. An end that throws once it goes out is handed to failedEnd.
// onHold(): called as the end is held (FlashRequest.presave: the session's save goes out now,
// behind the pushes, and the end waits for it too).
function holdEnd(res, pending, onHold) {
  const end = res.end;
  let ended = false;
  res.end = function endAfterFlashes(...args) {
    if (ended) return this;
    if (pending.size === 0) return end.apply(this, args);
    ended = true;
    const thaw = freezeHead(res);
    onHold();
    const settleAll = () => {
      if (pending.size === 0) {
        thaw();
        try {
          end.apply(this, args);
        } catch (err) {
          // Later ends reach what is under this one, as after an end that threw at once.
          ended = false;
          failedEnd(res, err);
        }
        return;
      }
      Promise.allSettled([...pending]).then(settleAll);
    };
    settleAll();
    return this;
  };
}

// failedEnd(res, err): the error ${err} of a held end (holdEnd) that threw as it went out: a
// status code Node refuses (Express 4's res.status(err.status) of an error without one), a
// chunk that is not a string or bytes. Not held, that end throws into the route, and Express
// hands the error to the app's error handler; thrown here, inside a promise callback, it was an
// unhandled rejection, which ends the process (every request it serves) in Node 15 and later.
// So it goes to the route's next (Express keeps it as req.next), as the throw would have; a
// response without one (plain connect or http) is destroyed, so that its client is not left
// waiting, and the error is a process warning.
function failedEnd(res, err) {
  const next = res.req && res.req.next;
  if (typeof next === 'function') {
    next(err);
    return;
  }
  res.destroy();
  process.emitWarning(`connect-sessd flash(): the response's end threw once its flashes were stored: ${err && err.message}`, { code: 'CONNECT_SESSD_END_FAILED' });
}

// pushTo(backend, stored, sid, type, msg, ttlMs): pushes one message. A session this request
// made (a first visit, a regenerate) is not in sessd yet, and FLASH_PUSH creates it, so the
// flash survives the redirect. One read from sessd (stored) must still be there: if another
// request destroyed it meanwhile (a logout) or it expired, FLASH_PUSH would bring its id back
// as a record holding only flashes, shown to nobody, counted by store.length() and ids()
// until its ttl ends. FLASH_PUSH_EXISTING pushes only to a session that still has data; else
// the message is dropped, as a save of that session is, and the promise resolves to 0. The
// store's 'gone' event is left to saves, which it reports (the request's own save still does).
async function pushTo(b, stored, sid, type, msg, ttlMs) {
  const key = b.prefix + sid;
  if (!stored) return b.client.flashPush(b.namespace, key, type, msg, ttlMs);
  return (await b.client.flashPushExisting(b.namespace, key, type, msg, ttlMs)) ?? 0;
}

// findBackend(opts, req): where this request's flashes go: sessd ({ client, namespace,
// prefix, store }), or, with any other store (express-session's MemoryStore in an app's
// tests), req.session.flash as connect-flash keeps them ({ inSession: true }).
function findBackend(opts, req) {
  const store = opts.store || req.sessionStore;
  if (opts.client) {
    return { client: opts.client, namespace: opts.namespace ?? null, prefix: opts.prefix ?? '', store };
  }
  if (store && store.client && typeof store.client.flashPush === 'function') {
    return { client: store.client, namespace: store.namespace, prefix: store.prefix, store };
  }
  return { inSession: true, store };
}

// The in-session flashes: connect-flash's req.session.flash ({ type: [msgs] }), with the
// results the sessd path gives. Not atomic: a concurrent whole-session save can drop or bring
// back a message, which is why sessd keeps them beside the session. For tests and development.
function sessionFlashes(req) {
  const all = req.session.flash;
  if (all !== null && typeof all === 'object' && !Array.isArray(all)) return all;
  req.session.flash = {};
  return req.session.flash;
}

function sessionPush(req, type, msg) {
  const all = sessionFlashes(req);
  if (!Object.hasOwn(all, type) || !Array.isArray(all[type])) {
    // Not all[type] = []: a type may be "__proto__", a valid type like any other.
    Object.defineProperty(all, type, { value: [], enumerable: true, writable: true, configurable: true });
  }
  return all[type].push(msg);
}

function sessionPop(req, type) {
  const all = sessionFlashes(req);
  if (type === null) {
    req.session.flash = {};
    return all;
  }
  const msgs = Object.hasOwn(all, type) && Array.isArray(all[type]) ? all[type] : [];
  delete all[type];
  return msgs;
}

// Without req.session, express-session either is not mounted or passed the request on
// because its store is disconnected (it then sets neither req.session nor req.sessionStore):
// say which, with sessd's own code for an outage.
function noSession(opts, seenStore, req) {
  // express-session sets req.sessionStore only on requests it gave a session: this one's
  // was destroyed since (req.session.destroy(), or a logout that does not regenerate).
  if (req.sessionStore && !req.session) {
    const err = new Error('req.flash(): this request destroyed its session, so a flash has nowhere to go; regenerate it (req.session.regenerate()) to flash after a logout');
    err.code = 'ESESSD_NO_SESSION';
    return err;
  }
  const store = opts.store || seenStore;
  const client = opts.client || (store && store.client);
  if (client && client.connected !== true) {
    const refused = client.lastError && client.lastError.code === 'ESESSD_AUTH';
    const message = 'req.flash(): sessd is not connected' + (refused ? ' (it refused the auth secret)' : '') + ', so this request has no session';
    if (!refused) return unavailableError(message);
    const err = new Error(message);
    err.code = 'ESESSD_AUTH';
    return err;
  }
  return new Error('req.flash() requires a session (is express-session mounted before it, and is sessd up?)');
}

// ttlFor(req, backend): the ttl in ms of a push for req's session, or 0 when the store's rule
// gives the session no lifetime (an expired cookie, a maxAge of 0 or below, a ttl function
// returning 0 or less): its save destroys it at the end of the request, and the push is
// dropped (see push).
function ttlFor(req, backend) {
  // The store's rule first (its ttl function, as its saves use it): a push must not stretch
  // the session past what a save would give it (with disableTouch nothing shortens it again).
  if (backend.store && typeof backend.store.ttlMs === 'function') {
    let ms = NaN;
    try {
      // As express-session will renew the cookie at the response (requestTtlMs), not the
      // expiry the session's last save wrote: past, it gave the push the ttl option's day.
      ms = typeof backend.store.requestTtlMs === 'function' ? backend.store.requestTtlMs(req.session) : backend.store.ttlMs(req.session);
    } catch (err) {
      ms = NaN; // a ttl function that fails the save: the cookie's expiry, as before
    }
    if (ms > 0) return Math.min(ms, MAX_TTL_MS);
    // A session whose lifetime has ended: given the ttl option's day, the message outlived
    // it, a record of flashes only (or, under disableTouch, the whole session kept a day)
    // that the browser, told to drop its cookie, never asks for again.
    if (ms <= 0) return 0;
  }
  const cookie = req.session && req.session.cookie;
  if (cookie && cookie.expires) {
    const ms = Math.ceil(new Date(cookie.expires).getTime() - Date.now());
    if (ms > 0) return Math.min(ms, MAX_TTL_MS);
  }
  return DEFAULT_TTL_S * 1000;
}

// flashType(type): the queue a type names. connect-flash uses the type as a key of
// req.session.flash, so a number (an HTTP status, say) names the queue String(type), "404",
// and so do a bigint and true. An object would name "[object Object]" and a symbol a key the
// session's JSON drops (the message is lost): both are refused here.
function flashType(type) {
  if (typeof type === 'string') return type;
  if (typeof type === 'number' || typeof type === 'bigint' || typeof type === 'boolean') return String(type);
  throw new TypeError('req.flash(): a flash type must be a string (or a number, which names the queue String(type))');
}

// sessd's longest flash type (PROTOCOL.md, "Limits"). connect-flash takes a type of any length.
const MAX_FLASH_TYPE_BYTES = 64;

// longType(queue): whether sessd cannot hold a queue of that name. A pop of one resolves []
// without asking (nothing can be queued under it): it rejected with the client's RangeError,
// so a page reading a form field's errors under a long type ("form:signup:" + a field name)
// answered 500 where connect-flash gives []. A push of one rejects (flashCall): on every
// store, so that an app's tests on MemoryStore meet what sessd would do.
function longType(queue) {
  return Buffer.byteLength(queue) > MAX_FLASH_TYPE_BYTES;
}

function longTypeError(queue) {
  return new RangeError(`req.flash(): a flash type is at most ${MAX_FLASH_TYPE_BYTES} bytes (UTF-8) in sessd, and this one is ` +
    `${Buffer.byteLength(queue)} (connect-flash takes any length): nothing was pushed`);
}

// jsonForm(msg): the message connect-flash gives back for msg. It keeps messages in
// req.session, which express-session's stores save as JSON, so what the next page reads is the
// message's JSON form, as an element of the session's array: toJSON is honoured (a Date
// becomes its ISO string, a mongoose ValidatorError the fields its toJSON gives), functions,
// symbols and undefined properties are dropped, NaN and Infinity become null, and a message
// that is itself a function or a symbol becomes null. A string is its own JSON form. Throws a
// TypeError, at the push, for a message JSON cannot hold (a BigInt, a cycle): connect-flash
// fails the session's save with it, after the response has said it worked. Any other error
// (an app's toJSON that throws) is passed on as it is.
// A "__proto__" key anywhere in it is dropped.
function jsonForm(msg) {
  if (typeof msg === 'string') return msg;
  let text;
  try {
    text = JSON.stringify([msg]);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    throw new TypeError(`req.flash(): a flash message must be JSON data, as connect-flash keeps it in the session: ${err.message}`, { cause: err });
  }
  // A "__proto__" key (a JSON request body flashed back, sent by whoever posted it) is
  // dropped: MessagePack's decoder refuses it, so the message would come back as raw bytes.
  return JSON.parse(text, (key, value) => (key === '__proto__' ? undefined : value))[0];
}

// flash(opts): middleware that sets req.flash. opts: store (a SessdStore; default
// req.sessionStore; with any other store, the flashes are kept in req.session.flash, as
// connect-flash keeps them), or client + namespace + prefix; markSession (default true: the first
// push sets req.session._flash = true so express-session saves the session and sends its
// cookie even with saveUninitialized: false; a string names another property; false turns
// this off); onError(err, req): called for every req.flash call that fails, awaited or not;
// unsafe (connect-flash's: true replaces a req.flash an earlier middleware set).
function flash(opts = {}) {
  warnUnknownOptions('flash()', opts, FLASH_OPTIONS);
  if (opts.unsafe !== undefined && typeof opts.unsafe !== 'boolean') {
    throw new TypeError('connect-sessd flash(): unsafe must be a boolean');
  }
  const unsafe = opts.unsafe === true;
  const mark = opts.markSession === false ? null : typeof opts.markSession === 'string' ? opts.markSession : DEFAULT_MARK;
  if (opts.onError !== undefined && typeof opts.onError !== 'function') {
    throw new TypeError('connect-sessd flash(): onError must be a function');
  }
  const onError = opts.onError || null;

  // The state every request's flashes share (see FlashRequest), made once.
  const shared = { opts, mark, onError, seenStore: null };

  let warnedTaken = false;

  return function sessdFlash(req, res, next) {
    if (req.flash && !unsafe) {
      // Another req.flash (connect-flash left mounted after a move to connect-sessd, say)
      // came first and stays: say so once, since its flashes live in req.session. One of
      // connect-sessd's own stays without a word, as connect-flash leaves any.
      if (!warnedTaken && !req.flash[SESSD_FLASH]) {
        warnedTaken = true;
        process.emitWarning('connect-sessd flash(): req.flash is already set by an earlier middleware (connect-flash?); this one leaves it in place', { code: 'CONNECT_SESSD_FLASH_TAKEN' });
      }
      return next();
    }
    if (req.sessionStore) shared.seenStore = req.sessionStore;
    const state = new FlashRequest(shared, req, res);
    // req.flash(type, msg) / (type, [msgs]) / (type, fmt, ...args): push, resolves to the
    // queue's length after the push, or 0 when the message was dropped (the session was read
    // from sessd and is gone since: see pushTo). req.flash(type) (or a msg of undefined or
    // null, with or without more arguments): pop that type, resolves to an array.
    // req.flash() (or any falsy type: '', 0): pop every type, resolves to { type: [msgs] }.
    // A message that is not a string is pushed as its JSON form (jsonForm).
    // One function a request, the rest shared (FlashRequest): seven closures a request cost
    // a sixth of connect-sessd's share of the app's CPU.
    req.flash = function reqFlash(...args) {
      return state.call(args);
    };
    req.flash[SESSD_FLASH] = state;
    next();
  };
}

// FlashRequest: one request's flashes (flash() makes one per request, req.flash calls it).
// shared: { opts, mark, onError, seenStore } of its flash().
class FlashRequest {
  constructor(shared, req, res) {
    this.shared = shared;
    this.req = req;
    this.res = res;
    this.backend = null;
    this.pending = null;
    // Whether this request has pushed a flash (any type, any id): its pops then ask sessd.
    this.pushedAny = false;
    // The session express-session made for this request because none was read (no cookie,
    // or one naming no session): its id is new and random, so nothing can be queued for it
    // but what this request pushes. A session regenerated later is another object. Only a
    // SessdStore marks the sessions it read (stored, in its hidden state): under another
    // store (flash({ client }) beside express-session's MemoryStore or connect-redis) a
    // session it read looks the same as a new one, and taken for new, every pop of a
    // returning visitor found nothing.
    this.freshSession = req.session && req.sessionStore instanceof SessdStore && !stateOf(req.session)?.stored ? req.session : null;
  }

  // call(args): req.flash(...args). connect-flash code and passport (failureFlash,
  // successFlash) call req.flash without using its result. A failure (sessd down, the flash
  // limit) must not then become an unhandled rejection, which ends the process; callers that
  // await still get it.
  call(args) {
    const p = this.flashCall(args);
    p.catch((err) => this.report(err));
    return p;
  }

  // The one place a push that nobody awaits can make its failure known. A hook that throws
  // must not end the process from inside a promise callback: it becomes a warning.
  report(err) {
    const onError = this.shared.onError;
    if (!onError) return;
    try {
      onError(err, this.req);
    } catch (hookErr) {
      process.emitWarning(`connect-sessd flash() onError threw: ${hookErr && hookErr.message}`);
    }
  }

  ctx() {
    const req = this.req;
    if (typeof req.sessionID !== 'string' || !req.session) throw noSession(this.shared.opts, this.shared.seenStore, req);
    if (!this.backend) this.backend = findBackend(this.shared.opts, req);
    return this.backend;
  }

  // push(type, msg): a promise of the queue's length after the push, or of 0 when the
  // message was dropped, for a stored session that is gone (see pushTo). msg is already in
  // its JSON form (jsonForm): what regenerate() moves and compares is what sessd holds.
  push(type, msg) {
    const b = this.ctx();
    const req = this.req;
    if (b.inSession) return Promise.resolve(sessionPush(req, type, msg));
    // A regenerate() of this request's session under way (req.session.regenerate(cb);
    // req.flash(...) before cb): the message is for the visitor, whose session is the new one.
    if (req[REGENERATING]) return this.hold(req[REGENERATING].then(() => this.push(type, msg)));
    // Only a session that is not in sessd yet needs the mark: on a stored one it would make
    // express-session save this request's copy over a concurrent request's changes. One this
    // request saved already (a login's regenerate and save() before its "Welcome") is in
    // sessd too: marked, it kept a stray key for its life and cost one more save. Such a
    // session with a key of its own is one express-session sees as changed (a new id, or
    // data an empty new session lacked), so its cookie goes out unmarked; an empty one saved
    // is still marked, or with saveUninitialized: false the browser would never learn its id.
    const state = stateOf(req.session);
    const savedWithData = state?.saved !== undefined && Object.keys(req.session).some((k) => k !== 'cookie');
    const inSessd = state?.stored === true || savedWithData;
    const mark = this.shared.mark;
    if (mark && !req.session[mark] && !inSessd) req.session[mark] = true;
    const ttlMs = ttlFor(req, b);
    // The session ends with this request (ttlFor): the message is dropped, as a push to a
    // session gone meanwhile is (resolves 0), rather than kept a day for nobody.
    if (ttlMs === 0) return Promise.resolve(0);
    this.pushedAny = true;
    const p = pushTo(b, inSessd, req.sessionID, type, msg, ttlMs);
    // A push that failed as a save does (sessd down or stuck, NO_MEMORY: 503) is one the app
    // answers with its error page: express-session's save of a session the mark above made
    // "changed" (a logout's new session) must not follow it, as after a failed save.
    const sess = req.session;
    p.catch((err) => {
      if (err && err.statusCode === 503) markSaveFailed(sess);
    });
    // What the store's regenerate() moves to the new id: this request's pushes, no others,
    // the last PUSHES_KEPT of them.
    if (!req[FLASH_PUSHES]) req[FLASH_PUSHES] = [];
    const pushes = req[FLASH_PUSHES];
    pushes.push({ namespace: b.namespace, key: b.prefix + req.sessionID, type, msg, result: p });
    if (pushes.length > PUSHES_KEPT) pushes.splice(0, pushes.length - PUSHES_KEPT);
    return this.hold(p);
  }

  // hold(p): p, a push's promise, which the response's end waits for (holdEnd).
  hold(p) {
    let pending = this.pending;
    if (!pending) {
      pending = this.pending = new Set();
      holdEnd(this.res, pending, () => {
        const saving = this.presave(true);
        if (saving === null) return;
        pending.add(saving);
        saving.then(() => pending.delete(saving));
      });
    }
    pending.add(p);
    const done = () => pending.delete(p);
    p.then(done, done);
    return p;
  }

  // nothingQueued(b): whether a pop of this request may answer "nothing" without asking
  // sessd: its session was read by a LOAD (on b's client, namespace and key) that found no
  // flash queued, it is still that session (same id, neither regenerated nor replaced), and
  // this request has pushed nothing. A flash another request pushes after that LOAD is
  // concurrent with this page: the pop is as if made at the LOAD, before that push, which
  // stays queued for the next page. So nothing is lost or shown twice, and most pages, which
  // have no flash, cost no round trip for it (connect-flash reads the loaded session). The
  // same holds, with no LOAD, for the session express-session made for this request
  // (freshSession): a visitor without a session, a crawler, pays no pop either.
  nothingQueued(b) {
    if (this.pushedAny) return false;
    const req = this.req;
    if (this.freshSession !== null && req.session === this.freshSession && !stateOf(req.session)?.stored) return true;
    const seen = stateOf(req.session)?.flashCount;
    return seen !== undefined && seen.flashes === 0 && seen.client === b.client &&
      seen.namespace === b.namespace && seen.key === b.prefix + req.sessionID;
  }

  // pop(b, type): pops one type (null: all). The pop goes out after this request's pushes
  // to the id (one connection serves one id), so it takes them: a regenerate must not
  // bring them back.
  pop(b, type) {
    const req = this.req;
    if (b.inSession) return Promise.resolve(sessionPop(req, type));
    if (this.nothingQueued(b)) return Promise.resolve(type === null ? {} : []);
    const key = b.prefix + req.sessionID;
    const pushed = req[FLASH_PUSHES];
    if (pushed) req[FLASH_PUSHES] = pushed.filter((p) => p.namespace !== b.namespace || p.key !== key || (type !== null && p.type !== type));
    const popped = b.client.flashPop(b.namespace, key, type);
    // The touch of a session the request has not changed goes out with the pop (presave).
    this.presave(false);
    return popped;
  }

  // presave(changes): the session's end-of-request save or touch, started now behind this
  // request's flash requests (the store's presave), when the session is the one its store read
  // and the flashes go over the store's own client; null when not.
  presave(changes) {
    const b = this.backend;
    const req = this.req;
    if (!b || b.inSession || !req.session || req[REGENERATING] || b.store !== req.sessionStore) return null;
    if (!(b.store instanceof SessdStore) || b.client !== b.store.client) return null;
    // A session this request made and pushed to, marked for express-session to save.
    const mark = this.shared.mark;
    const made = changes && mark !== null && req.session[mark] === true && !stateOf(req.session)?.stored;
    return b.store.presave(req.sessionID, req.session, changes, made);
  }

  // popsNothing(): whether req.flash() would resolve {} without asking sessd (nothingQueued),
  // for flash.locals to answer at once; false whenever it cannot tell.
  popsNothing() {
    let b;
    try {
      b = this.ctx();
    } catch (err) {
      return false;
    }
    return !b.inSession && this.nothingQueued(b);
  }

  // The forms are connect-flash's (if (type && msg) push; else if (type) read one type; else
  // read every type), so code written for it does what it did there, with one exception: a
  // falsy message other than undefined and null ('', 0, false) is a message here (README).
  flashCall(args) {
    const [type, msg] = args;
    try {
      if (!type) return this.pop(this.ctx(), null);
      const queue = flashType(type);
      // An i18n t() that finds no text returns undefined: req.flash('info', t(key), name)
      // then reads in connect-flash, rather than pushing "undefined ada".
      if (args.length === 1 || msg === undefined || msg === null) {
        const b = this.ctx();
        return longType(queue) ? Promise.resolve([]) : this.pop(b, queue);
      }
      if (longType(queue)) {
        this.ctx(); // without a session, that error first, as for any push
        throw longTypeError(queue);
      }
      if (args.length > 2) return this.push(queue, util.format(...args.slice(1)));
      if (Array.isArray(msg)) {
        // All or none: a message JSON cannot hold refuses the whole array, as connect-flash's
        // save of the session would.
        const msgs = msg.map(jsonForm);
        // One connection serves one session id, so these pipelined pushes keep their order.
        const pushes = msgs.map((m) => this.push(queue, m));
        return Promise.all(pushes).then((lengths) => (lengths.length ? lengths[lengths.length - 1] : undefined));
      }
      return this.push(queue, jsonForm(msg));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

// flash.locals(opts): middleware that pops every pending flash into res.locals.flash
// ({ type: [msgs] }, {} when none) before the route renders. opts.methods: the request
// methods it pops on (default ['GET']: a POST that redirects must not eat the flashes
// meant for the page after it). Mount it after flash().
flash.locals = function locals(opts = {}) {
  warnUnknownOptions('flash.locals()', opts, LOCALS_OPTIONS);
  const names = opts.methods ?? ['GET'];
  if (!Array.isArray(names) || !names.every((m) => typeof m === 'string')) {
    throw new TypeError(`connect-sessd flash.locals(): methods must be an array of method names (['GET']), got ${util.inspect(names)}`);
  }
  const methods = new Set(names.map((m) => m.toUpperCase()));
  return function sessdFlashLocals(req, res, next) {
    res.locals = res.locals || {};
    if (!methods.has(req.method) || typeof req.flash !== 'function' || !req.session) {
      res.locals.flash = {};
      next();
      return;
    }
    // Most pages have no flash, and sessd was not asked (popsNothing): {} at once, without
    // the promise and the turn of the event loop.
    const state = req.flash[SESSD_FLASH];
    if (state instanceof FlashRequest && state.req === req && state.popsNothing()) {
      res.locals.flash = {};
      next();
      return;
    }
    req.flash().then((all) => {
      res.locals.flash = all;
      next();
    }, (err) => {
      // A full or failing disk refuses a pop that would remove messages: the page is still
      // worth showing, and the messages stay queued for a later one (onError has the error).
      if (err && err.code === 'ESESSD_IO_ERROR') {
        res.locals.flash = {};
        next();
        return;
      }
      next(err);
    });
  };
};

module.exports = { flash };
