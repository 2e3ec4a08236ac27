'use strict';
// Migration: SessdStore's migrateFrom, a lazy move of sessions from the app's old
// express-session store (connect-redis, MemoryStore, ...) to sessd, so that switching stores
// logs no one out. A session sessd does not hold is looked up in the old store; found there,
// it is written to sessd with the lifetime it had left, its connect-flash messages
// (sess.flash = { type: [msg, ...] }) become sessd flashes, and it is removed from the old
// store. The store calls miss() from get() on a miss, destroy() and clear() from its own, and
// forget() from regenerate().

const crypto = require('crypto');
const util = require('util');

// The namespace of the move locks: one flash-only session per session being moved, keyed by
// a hash of its namespace and key (see lockKey), so that a full session id never appears in
// it (sessctl list, a snapshot) and the store's own namespace (ids, length, COUNT) never
// counts a lock.
const LOCK_NAMESPACE = 'connect-sessd.migrating';
const LOCK_TYPE = 'move';
const DEFAULT_TIMEOUT_MS = 5000;
// A request waiting for another's move looks again after 5, 10, 20, 40, 50 ... ms.
const WAIT_MIN_MS = 5;
const WAIT_MAX_MS = 50;
// Refusals of a flash push that the same push would meet again (a message or type past
// sessd's limits): that message is dropped, the move goes on.
const FLASH_REFUSED = new Set(['ESESSD_LIMIT', 'ESESSD_TOO_LARGE']);
// A lock's removal that failed (sessd down, the connection cut) is tried again after 50, 100,
// 200 ... 1000 ms, until the lock would have ended anyway.
const RELEASE_RETRY_MIN_MS = 50;
const RELEASE_RETRY_MAX_MS = 1000;
// A mover writes to sessd only while its lock has this long left (by this process's clock,
// from when its push was sent): the round trip of the write itself, with room to spare.
const LOCK_MARGIN_MS = 1000;

// checkOldStore(old): the migrateFrom option, an express-session store: get and destroy are
// what the move uses. Anything else (a Redis client handed over instead of its RedisStore, a
// URL) is refused at construction rather than failing every first page after the switch.
function checkOldStore(old) {
  if (old === null || typeof old !== 'object' || typeof old.get !== 'function' || typeof old.destroy !== 'function') {
    const what = old === null || typeof old !== 'object' ? util.inspect(old) : `an object without get() and destroy() (${old.constructor ? old.constructor.name : 'no class'})`;
    throw new TypeError(`migrateFrom must be the app's old express-session store (such as new RedisStore({ client }) of connect-redis), got ${what}`);
  }
  return old;
}

// The longest wait a Node timer makes: a longer one ends after 1 ms (TimeoutOverflowWarning),
// and every call of the old store would fail at once, as if it had waited that long.
const MAX_TIMER_MS = 2 ** 31 - 1;

function checkTimeout(v) {
  if (v === undefined || v === null) return DEFAULT_TIMEOUT_MS;
  if (typeof v !== 'number' || !(v > 0 && v <= MAX_TIMER_MS)) throw new TypeError(`migrateTimeoutMs must be a number of milliseconds above 0, at most ${MAX_TIMER_MS}, got ${util.inspect(v)}`);
  return v;
}

// What a failed call of the old store leaves, for its error's message.
const LEFT = {
  get: 'the session stays in the old store, and a later request moves it',
  destroy: 'the session is gone from sessd, but the old store may still hold it: try again',
  clear: 'sessd was not cleared',
  ids: 'nothing was moved',
  all: 'nothing was moved',
};

// migrateError(method, what, cause): the error a request gets when a call of the old store
// failed (method: get, destroy or clear): a 503 (a later try may work), with the old store's
// error as its cause. The message names no session id: errors end in logs.
function migrateError(method, what, cause = undefined) {
  const err = new Error(`connect-sessd migrateFrom: ${what}; ${LEFT[method]}`, cause === undefined ? undefined : { cause });
  err.code = 'ESESSD_MIGRATE';
  err.statusCode = 503;
  err.status = 503;
  err.expose = false;
  return err;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// connectFlashes(sess): the messages of connect-flash's sess.flash ({ type: [msg, ...] }) as
// [[type, msg], ...], in order, or null when sess.flash is not that shape (left in the data
// as it is).
function connectFlashes(sess) {
  const f = sess.flash;
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return null;
  const out = [];
  for (const type of Object.keys(f)) {
    if (!Array.isArray(f[type])) return null;
    for (const msg of f[type]) out.push([type, msg]);
  }
  return out;
}

class Migration {
  // store: the SessdStore; old: its migrateFrom; timeoutMs: how long one call of the old store
  // may take before the request gets an error (migrateTimeoutMs); ttlMs(sess): the lifetime in
  // ms the store gives a session read from the old store (plain JSON), capped at sessd's most.
  constructor(store, old, timeoutMs, ttlMs) {
    this.store = store;
    this.ttlMs = ttlMs;
    this.old = checkOldStore(old);
    this.timeoutMs = checkTimeout(timeoutMs);
    // A move makes at most three calls of the old store (each within timeoutMs) and a few
    // round trips to sessd; a lock left by a process that died mid-move ends after this.
    this.lockTtlMs = 4 * this.timeoutMs + 2000;
  }

  // oldCall(method, sid): a promise of what the old store's method(sid, cb) answers, rejected
  // with an ESESSD_MIGRATE error when it fails or takes longer than timeoutMs (a Redis that is
  // down: node-redis queues commands while it reconnects, and the page would hang).
  oldCall(method, sid) {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err, v) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(migrateError(method, `the old store's ${method}() failed`, err));
        else resolve(v);
      };
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        reject(migrateError(method, `the old store's ${method}() did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      // A removal nobody waits for (forget) must not hold the process's exit.
      timer.unref();
      try {
        const r = this.old[method](sid, (err, v) => finish(err || null, v));
        // connect-redis 7+ also returns a promise; one that rejects without calling back.
        if (r && typeof r.then === 'function') r.then(undefined, (err) => finish(err || new Error('rejected')));
      } catch (err) {
        finish(err || new Error('threw'));
      }
    });
  }

  async oldGet(sid) {
    const sess = await this.oldCall('get', sid);
    return sess !== null && typeof sess === 'object' && !Array.isArray(sess) ? sess : null;
  }

  // lockKey(key): the move lock's key for the store's session key.
  lockKey(key) {
    return crypto.createHash('sha256').update(`${this.store.namespace ?? 'default'}\0${key}`).digest('base64url');
  }

  // miss(sid, key): called by get() when sessd has no session key (sid with the prefix).
  // Resolves 'moved' when this call moved it, 'already' when sessd holds it otherwise (moved
  // by another request meanwhile; get() reads it again either way), null when there is none
  // to move (a new or expired session, or one destroyed meanwhile). Rejects with
  // ESESSD_MIGRATE when the old store fails or is slow: nothing is lost, the session stays
  // there.
  // Two requests of one visitor (two tabs, or an image and a page, on one app process or
  // several) may miss at once: one takes the session's move lock, a FLASH_PUSH to it whose
  // result (the queue's length) is 1 only for the first push into an empty queue, an atomic
  // test-and-set on the daemon. The others wait until the lock is gone, so the session is
  // written and its flashes pushed once, and no request's save lands under a later copy of
  // the old data.
  async miss(sid, key) {
    const client = this.store.client;
    // A move by another request may have ended between get()'s read of sessd and this one of
    // the old store (it removes the old copy after writing sessd's): sessd is read again. Taken
    // for no session, the page was served logged out and its save went to a new session: 2
    // of 360 cart adds lost (bench/e2e/switch.js --eager, 48 visitors at a time).
    if ((await this.oldGet(sid)) === null) return (await client.load(this.store.namespace, key)) !== null ? 'already' : null;
    const lockKey = this.lockKey(key);
    const deadline = Date.now() + this.lockTtlMs + this.timeoutMs;
    let wait = WAIT_MIN_MS;
    for (;;) {
      // Pushed only when no lock is held: a push to a held lock lengthens it to lockTtlMs from
      // now, and one left by a process that died mid-move was kept for as long as the
      // visitor's pages kept coming, each waiting lockTtlMs and failing.
      const held = await client.ttlIfKnown(LOCK_NAMESPACE, lockKey);
      const pushedAt = Date.now();
      const token = typeof held !== 'number' ? await this.takeLock(lockKey) : null;
      if (token !== null) {
        try {
          return await this.move(sid, key, pushedAt + this.lockTtlMs);
        } finally {
          await this.releaseLock(lockKey, token);
        }
      }
      // Another request holds the lock: wait until it is done, its flashes pushed and the old
      // copy removed (the lock gone), then read sessd; no session there (the mover found none,
      // or it was destroyed since, or the mover failed), try to take the lock again. A daemon
      // older than TTL cannot tell when the lock goes: sessd is read each time, and while it has
      // no session the lock is pushed to again (a push to a held lock answers more than 1 and
      // lengthens it, as every page's first push there does). Read until the deadline instead,
      // a request whose mover failed or found nothing waited 27 s there and failed, saying the
      // move took too long.
      for (;;) {
        if (Date.now() > deadline) throw migrateError('get', 'another request has been moving this session for too long');
        await sleep(wait);
        wait = Math.min(wait * 2, WAIT_MAX_MS);
        const lock = await client.ttlIfKnown(LOCK_NAMESPACE, lockKey);
        if (typeof lock === 'number') continue;
        if ((await client.load(this.store.namespace, key)) !== null) return 'already';
        break;
      }
    }
  }

  // takeLock(lockKey): the token this request holds the move lock by, or null when another
  // request holds it. The lock's first message is a random token (PROTOCOL.md, "Locks on a
  // flash queue"), so that only its holder removes it (releaseLock). A push whose reply was
  // lost (sessd killed after it made the push, the connection cut) may have taken the lock:
  // taken for not taken, it held every page of the visitor for lockTtlMs (22 s), as nobody's;
  // taken for taken, two requests would move at once if it was not. Its outcome is settled by
  // removing the lock if it holds this token first (undoLock, begun here and not waited for),
  // and the page fails with the push's error as before (a 503: sessd failed under it).
  async takeLock(lockKey) {
    const token = crypto.randomBytes(16).toString('base64url');
    let queued;
    try {
      queued = await this.store.client.flashPush(LOCK_NAMESPACE, lockKey, LOCK_TYPE, token, this.lockTtlMs);
    } catch (err) {
      if (!(err instanceof RangeError || err instanceof TypeError)) this.undoLock(lockKey, token, Date.now() + this.lockTtlMs);
      throw err;
    }
    return queued === 1 ? token : null;
  }

  // releaseLock(lockKey, token): removes the move lock while it is still this token's
  // (DESTROY_IF_FLASH): once at once, waited for, as the plain DESTROY was; failed, it is
  // tried again in the background for up to lockTtlMs (about when the lock ends on its own),
  // so that a lock that survived a restart is removed as soon as sessd is back, not after its
  // 22 s; a try that finds the lock taken by another request since removes nothing. A sessd
  // older than DESTROY_IF_FLASH gets the plain DESTROY, as before: not tried again here (it
  // could remove a lock another request took meanwhile), though the client sends it again
  // once after a break, as every DESTROY, which leaves that race open there; its failure
  // leaves the lock to its TTL.
  async releaseLock(lockKey, token) {
    const until = Date.now() + this.lockTtlMs;
    const client = this.store.client;
    try {
      if ((await client.destroyIfFlash(LOCK_NAMESPACE, lockKey, LOCK_TYPE, token)) === null) await client.destroy(LOCK_NAMESPACE, lockKey).catch(() => {});
    } catch (err) {
      this.undoLock(lockKey, token, until);
    }
  }

  // undoLock(lockKey, token, until): the background tries of releaseLock and takeLock: removes
  // the lock if token is its first message, trying again after a failure until the instant
  // until (after which the lock has ended on its own, or is another's) or the client closes.
  // Never rejects; nothing waits for it, and its timers hold no process open. Not ended by an
  // ESESSD_CLOSED while the client is open: that is a try queued behind a request that timed
  // out on a stalled connection, and the lock stayed its TTL (the visitor's pages waiting).
  undoLock(lockKey, token, until) {
    const client = this.store.client;
    let waitMs = RELEASE_RETRY_MIN_MS;
    const attempt = () => {
      if (client.closed) return;
      client.destroyIfFlash(LOCK_NAMESPACE, lockKey, LOCK_TYPE, token).then(() => {}, () => {
        if (client.closed || Date.now() + waitMs > until) return;
        setTimeout(attempt, waitMs).unref();
        waitMs = Math.min(waitMs * 2, RELEASE_RETRY_MAX_MS);
      });
    };
    attempt();
  }

  // move(sid, key): the move, under the lock; resolves as miss(). Looks again at both stores:
  // the copy read before the lock may be stale (moved, then destroyed, by requests that held
  // it meanwhile). When sessd holds the session, an old copy is stale (a move whose removal
  // failed, a write of an app process still on the old store): sessd's stands, and the old
  // one is removed here, under the lock. Removed without it (migrateAll's first form), it was
  // taken by a move under way, which looks at the old store after its write, for a destroy()
  // and undid the move: 5 of 270 visitors logged out (bench/e2e/switch.js --eager).
  // lockEnds: the instant the lock ends at the soonest (its push sent lockTtlMs before); a
  // request to sessd may wait timeoutMs (restartWaitMs more while sessd restarts), longer
  // than a short lock lasts (migrateTimeoutMs 100: 2.4 s), and one that came back after it
  // ended moved beside the request that took the lock meanwhile (a flash pushed twice, a save
  // overwritten). So the writes wait for nothing past it (checkLock).
  async move(sid, key, lockEnds = Infinity) {
    const store = this.store;
    const client = store.client;
    const ns = store.namespace;
    if ((await client.load(ns, key)) !== null) {
      await this.oldCall('destroy', sid).catch(() => {});
      return 'already';
    }
    const sess = await this.oldGet(sid);
    if (sess === null) return null;
    const flashes = connectFlashes(sess);
    const data = { ...sess };
    if (flashes !== null) delete data.flash;
    // A session without a cookie (written by an app or a store that keeps none) would fail
    // every page in express-session (500: it reads sess.cookie.expires): it gets the cookie
    // express-session gives by default, a browser-session one, and so the store's lifetime.
    if (data.cookie === null || typeof data.cookie !== 'object' || Array.isArray(data.cookie)) {
      data.cookie = { originalMaxAge: null, expires: null, httpOnly: true, path: '/' };
    }
    // The lifetime it had left: its cookie's expiry, else the store's ttl option (a ttl
    // function gets the session as express-session would hand it over).
    const ttl = this.ttlMs(data);
    if (!(ttl > 0)) return null;
    this.checkLock(lockEnds);
    // The flashes before the data, on the session's connection, in order: sessd breaking
    // between the two leaves no session with data (the next page moves it again, from the old
    // copy, which is removed only at the end). Pushed after the data, they were lost: sessd
    // held the session then, no page moved it again. A session of flashes only under this
    // key is what such a broken move left (nothing else pushes to an id sessd has no data
    // for): dropped first, or its flashes would be shown twice.
    await client.destroy(ns, key);
    this.checkLock(lockEnds);
    await Promise.all((flashes || []).map(([type, msg]) => client.flashPush(ns, key, type, msg, ttl).catch((err) => {
      if (!(err instanceof RangeError || err instanceof TypeError || (err && FLASH_REFUSED.has(err.code)))) throw err;
    })));
    // A logout since the destroy above (its removal from sessd before this write) is undone
    // below, as one since the read.
    this.checkLock(lockEnds);
    await client.set(ns, key, store.serializer.stringify(data), ttl);
    // A destroy() since the read (a logout by an app process that did not wait for this
    // lock: destroy() removes the old copy first) must not be undone.
    let still;
    try {
      still = await this.oldGet(sid);
    } catch (err) {
      still = undefined; // unknown: the old copy is removed below all the same
    }
    if (still === null) {
      await client.destroy(ns, key);
      return null;
    }
    // The move stands once sessd holds the session: a failed removal leaves a stale copy
    // there, which destroy(), regenerate() and clear() remove too, and which ends no later
    // than the copy in sessd (it was given the lifetime the old one had left).
    await this.oldCall('destroy', sid).catch(() => {});
    return 'moved';
  }

  // checkLock(lockEnds): throws (a 503; the session stays in the old store, and a later
  // request moves it) when the move's lock may end before a write made now is carried out.
  checkLock(lockEnds) {
    if (Date.now() + LOCK_MARGIN_MS > lockEnds) throw migrateError('get', 'the move took longer than its lock (sessd or the old store was slow)');
  }

  // destroy(sid, key): destroy() with migrateFrom: the old copy first, then sessd's (see the
  // end of move), both tried; the old store's failure is the call's, so that a logout it
  // could not complete is not answered as done.
  async destroy(sid, key) {
    const old = await this.oldCall('destroy', sid).then(() => null, (err) => err);
    await this.store.client.destroy(this.store.namespace, key);
    if (old !== null) throw old;
  }

  // forget(sid): regenerate()'s removal of a stale old copy of the id it ends; not waited
  // for, its failure ignored (the session was moved, so the old store has no copy as a rule).
  forget(sid) {
    this.oldCall('destroy', sid).catch(() => {});
  }

  // oldWhole(method): a promise of what the old store's method(cb) answers (clear, ids,
  // all: calls of the whole store, which an admin makes; not timed).
  oldWhole(method) {
    return new Promise((resolve, reject) => {
      const fail = (err) => reject(migrateError(method, `the old store's ${method}() failed`, err));
      try {
        const r = this.old[method]((err, v) => (err ? fail(err) : resolve(v)));
        if (r && typeof r.then === 'function') r.then(undefined, fail);
      } catch (err) {
        fail(err);
      }
    });
  }

  // clear(): clear() with migrateFrom: the old store's sessions too (when it has clear()), or
  // those not moved yet would come back on their next page.
  async clear() {
    if (typeof this.old.clear === 'function') await this.oldWhole('clear');
  }

  // oldIds(): the ids of the old store's sessions: its ids() (connect-redis), else those of
  // its all() (an array of sessions with their id, as connect-redis's, or an object of id
  // to session, as MemoryStore's).
  async oldIds() {
    if (typeof this.old.ids === 'function') return (await this.oldWhole('ids')) || [];
    if (typeof this.old.all !== 'function') throw new TypeError('migrateAll() needs an old store with ids() or all()');
    const all = (await this.oldWhole('all')) || {};
    return Array.isArray(all) ? all.map((sess) => sess && sess.id).filter((id) => typeof id === 'string') : Object.keys(all);
  }

  // moveAll(concurrency): the eager move of a planned cutover (SessdStore.migrateAll): every
  // session of the old store, concurrency at a time, each as a page of its visitor would
  // move it, under the same lock (pages under way meanwhile are safe). A session sessd
  // already holds keeps sessd's copy, and its old copy is removed (see move). Resolves
  // { moved, already, none } (none: gone or expired since the listing); the first failure
  // rejects, with the counts so far as err.progress.
  async moveAll(concurrency) {
    const ids = await this.oldIds();
    const progress = { moved: 0, already: 0, none: 0 };
    try {
      for (let at = 0; at < ids.length; at += concurrency) {
        await Promise.all(ids.slice(at, at + concurrency).map(async (sid) => {
          progress[(await this.miss(sid, this.store.key(sid))) || 'none']++;
        }));
      }
    } catch (err) {
      if (err !== null && typeof err === 'object') err.progress = progress;
      throw err;
    }
    return progress;
  }
}

module.exports = { Migration, LOCK_NAMESPACE };
