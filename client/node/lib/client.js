'use strict';
// Client: a small pool of sessd connections with reconnection, and one method per
// operation of PROTOCOL.md. A request that names a session goes to the connection that has
// the session's requests pending, if one has, so the operations one process makes on one
// session are answered in the order they were made even when the caller does not wait (a
// flash push and the session save that follows it); else to the connection the pass's other
// requests go to (see passConnection), so that a pass's frames leave in one write. A
// connection that is down is skipped. When the last ready connection is lost (sessd restarting or crashed), the pool
// reconnects for up to restartWaitMs before it says 'disconnect' (see startRestartWait):
// requests made meanwhile wait for it (see request), and those a SHUTTING_DOWN or a crash left
// unanswered are sent again (see resend). Once 'disconnect' is said, requests fail at once
// (express-session then serves requests without a session) until the pool reconnects.

const { EventEmitter } = require('events');
const crypto = require('crypto');
const codec = require('./codec');
const { CHANGE_OPS, Connection, flightKey, SessdError, checkAuth, checkRequireAuth, checkSeal, connectionError, unavailableError, AUTH_CODE } = require('./connection');

const { OP, STATUS } = codec;

const DEFAULT_URL = 'tcp://127.0.0.1:7077';
// The least timeout of COUNT and CLEAR (see adminRequest).
const ADMIN_TIMEOUT_MS = 60000;

// A result of the wrong shape is the server's fault: never hand it on as a success.
function badResult(what) {
  return new codec.ProtocolError(`the server's ${what} has the wrong shape`);
}

// uintResult(v, what): v as a number (a bigint past 2^53), if it is an unsigned integer.
function uintResult(v, what) {
  const n = codec.normalizeInt(v);
  if ((typeof n === 'number' && Number.isInteger(n) && n >= 0) || (typeof n === 'bigint' && n >= 0n)) return n;
  throw badResult(what);
}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.length);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  throw new TypeError('expected bytes or a string');
}

// dataTag(data): SET_IF's tag of a session's data: the first 16 bytes of BLAKE2b-512 of the
// bytes exactly as GET returned them (or as SET stored them), as a Buffer.
function dataTag(data) {
  const bytes = toBuffer(data);
  // crypto.hash (Node 20.12 and later) skips the Hash object: a few microseconds less.
  const digest = crypto.hash ? crypto.hash('blake2b512', bytes, 'buffer') : crypto.createHash('blake2b512').update(bytes).digest();
  return digest.subarray(0, codec.TAG_BYTES);
}

function checkTag(tag) {
  if (!(tag instanceof Uint8Array) || tag.length !== codec.TAG_BYTES) {
    throw new TypeError(`expect must be a tag of ${codec.TAG_BYTES} bytes (see dataTag)`);
  }
  return tag;
}

function checkTtl(ttlMs) {
  if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > codec.MAX_TTL_MS) {
    throw new RangeError(`ttl must be an integer 1..${codec.MAX_TTL_MS} ms, got ${ttlMs}`);
  }
  return ttlMs;
}

// withinBytes(v, min, max): whether v, a string (as UTF-8) or bytes, is min..max bytes long. A
// string of n UTF-16 units is n to 3n bytes (a pair of surrogates: 4): counted only when those
// bounds do not settle it. Counted for every id and namespace, Buffer.byteLength (a call into
// C++) cost a page view's four requests about 0.3 us.
function withinBytes(v, min, max) {
  if (typeof v === 'string') {
    const n = v.length;
    if (n >= min && 3 * n <= max) return true;
    if (n > max || 3 * n < min) return false;
    const bytes = Buffer.byteLength(v, 'utf8');
    return bytes >= min && bytes <= max;
  }
  return v instanceof Uint8Array && v.length >= min && v.length <= max;
}

// Arguments the server would answer with BAD_REQUEST (which closes the connection under
// every other pending request) are refused here instead.
function checkNs(ns) {
  if (ns === null || ns === undefined) return null;
  if (typeof ns !== 'string' || !withinBytes(ns, 1, 64)) throw new RangeError('namespace must be null or a string of 1..64 bytes');
  return ns;
}

function checkId(id) {
  if (!withinBytes(id, 1, 128)) throw new RangeError('session id must be a string or bytes of 1..128 bytes');
  return id;
}

// checkUint(name, v): a LIST cursor or page size: a whole number of at least 0 (a cursor
// as list returned it, perhaps a bigint). A string went out as a str, which sessd answers
// BAD_REQUEST and closes the connection under the requests queued behind it.
function checkUint(name, v) {
  if ((Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n && v < 2n ** 64n)) return v;
  throw new RangeError(`${name} must be a whole number of at least 0, got ${typeof v === 'string' ? `the string '${v}'` : String(v)}`);
}

// The arguments of FLASH_PUSH and FLASH_PUSH_EXISTING, checked; msg in its wire form.
function flashPushArgs(ns, id, type, msg, ttlMs) {
  return [checkNs(ns), checkId(id), checkType(type), codec.encodeFlashMessage(msg), checkTtl(ttlMs)];
}

function checkType(type) {
  if (typeof type !== 'string' || !withinBytes(type, 1, 64)) throw new RangeError('flash type must be a string of 1..64 bytes');
  return type;
}

// FNV-1a over the id's UTF-16 code units: cheap and stable; only spreads sessions.
function hashId(id) {
  let h = 0x811c9dc5;
  if (typeof id === 'string') {
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  } else {
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id[i], 0x01000193);
  }
  return h >>> 0;
}

// ttlResult(r): a TTL reply's { status, result } as ttl() resolves it: the remaining ms, or
// null when there is no such session.
function ttlResult(r) {
  if (r.status !== STATUS.OK) return null;
  const ms = uintResult(r.result, 'TTL result');
  // A live session has at least 1 ms left; 0 is no answer at all.
  if (ms === 0) throw badResult('TTL result');
  return ms;
}

// The requests that change nothing, and so are sent again after a break like the changes of
// REPEATABLE_OPS: carried out twice, they answer twice. Not FLASH_POP, which removes what it
// answers.
const READ_OPS = new Set([OP.PING, OP.GET, OP.LOAD, OP.TTL, OP.COUNT, OP.LIST, OP.STATS, OP.NAMESPACES]);

// The longest delay a Node timer holds: setTimeout takes anything longer, Infinity
// included, as 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

// optionNumber(v): a numeric option as given, a string of one (read from the environment)
// as its number; anything else as it is, for the caller to refuse.
function optionNumber(v) {
  return typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
}

// checkMs(name, v): a timing option as a number of milliseconds, 0..MAX_TIMER_MS (a number,
// or a string of one, as read from the environment); else a RangeError: Infinity would end
// each wait after 1 ms (timeoutMs: 0 is "no timeout").
function checkMs(name, v) {
  const n = optionNumber(v);
  if (typeof n !== 'number' || !(n >= 0 && n <= MAX_TIMER_MS)) {
    throw new RangeError(`${name} must be a number of milliseconds from 0 to ${MAX_TIMER_MS}${name === 'timeoutMs' ? ' (0: no timeout)' : ''}, got ${String(v)}`);
  }
  return n;
}

// checkCount(name, v): a whole number (or a string of one), taken as 1 when lower; else a
// RangeError: NaN made a pool of no connection, which never connected.
function checkCount(name, v) {
  const n = optionNumber(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${name} must be a whole number, got ${String(v)}`);
  return Math.max(1, n);
}

// Symbol events: POOL_READY at each pool connection's 'ready', what ready() waits for;
// POOL_CLOSED when close() or terminate() is called, which ends that wait.
const POOL_READY = Symbol('pool ready');
const POOL_CLOSED = Symbol('pool closed');

// The changes sent again when their connection broke before their reply was read (sessd
// crashed: ECONNRESET or EOF, no SHUTTING_DOWN; see resend). Each may have been carried out
// already, even logged to --data-dir, and the repeat leaves the session as one would: SET
// stores the same bytes again (its flashes kept), TOUCH sets the same ttl from a moment later,
// and so does a TOUCH_IF (a touch leaves the data, and so the tag, as it was), DESTROY finds
// nothing left (NOT_FOUND: destroy() resolves false), and a SET_IF meets its own first
// attempt's data (see ownWrite), and a DESTROY_IF_FLASH removes only what it names (a lock
// still its own: PROTOCOL.md, "Flashes"). Not FLASH_PUSH nor FLASH_PUSH_EXISTING: a push carried
// out twice queues its message twice, and the page shows it twice; a push stays at most once
// and fails (a 503). Nor FLASH_POP: a pop carried out whose reply was lost has taken its
// messages. The reads of READ_OPS are sent again too, unless restartWaitMs is 0.
const REPEATABLE_OPS = new Set([OP.SET, OP.SET_IF, OP.TOUCH, OP.TOUCH_IF, OP.DESTROY, OP.DESTROY_IF_FLASH]);

// maybeCarriedOut(err, why): the error of a request whose connection broke under it (err, or
// later a SHUTTING_DOWN) and that is not sent again (why): it may or may not have been carried
// out. A 503 with the socket's code (ECONNRESET), as a break fails the other requests.
function maybeCarriedOut(err, why) {
  const code = !(err instanceof SessdError) && typeof err.code === 'string' ? err.code : 'ECONNRESET';
  const out = connectionError(code, `sessd connection broke under the request (${err.message}), and ${why}: it may or may not have been carried out`);
  out.cause = err;
  return out;
}

// The statuses with which sessd refuses a request for want of room, disk or time, changing
// nothing: to a change sent again after a break, see refusedResend.
const RESEND_REFUSALS = new Set([STATUS.NO_MEMORY, STATUS.IO_ERROR, STATUS.BUSY]);

// refusedResend(err): the error of a change sent again after its connection broke (see
// resend) and answered err. A refusal (RESEND_REFUSALS) says its second send changed nothing,
// but the first may have been carried out before the break: sessd makes the change that meets
// a disk as it fills in memory and closes its connection unanswered (sessd(8), "Durability"),
// so its IO_ERROR's "nothing changed" would be untrue of the call, and an app that believed it
// would tell the visitor to do again what is done. The same status, code and statusCode, a
// message that says the outcome is not known, sessd's own on cause. Other errors stand.
function refusedResend(err) {
  if (!(err instanceof SessdError) || !RESEND_REFUSALS.has(err.sessdStatus)) throw err;
  const out = new SessdError(err.sessdStatus, 'the change was sent again after its connection broke and refused: the first send may or may not have been carried out', err.op);
  out.cause = err;
  throw out;
}

// The whitespace mark that ends a merged save's data under connect-sessd's JSON serializer
// (store.js writeMark), and the most whitespace such data ends with (its mark and the one
// carried from the data it was made over: store.js carriedMarks).
const MARK_BYTES = 16;
const MARKS_END_BYTES = 2 * MARK_BYTES;

// builtOn(held, sent): whether the data held (what sessd holds now) was saved over sent (a
// SET_IF's data): sent ends with a mark (MARK_BYTES of JSON whitespace, not all one byte, as
// a text padded with spaces or newlines would be), and it is among the whitespace held ends
// with, where a save over sent carried it. Marks are random: another's cannot be it.
function builtOn(held, sent) {
  if (sent.length < MARK_BYTES) return false;
  const mark = sent.subarray(sent.length - MARK_BYTES);
  let uniform = true;
  for (let i = 0; i < MARK_BYTES; i++) {
    if (!JSON_SPACE.has(mark[i])) return false;
    if (mark[i] !== mark[0]) uniform = false;
  }
  if (uniform) return false;
  let at = held.length;
  while (at > 0 && held.length - at < MARKS_END_BYTES && JSON_SPACE.has(held[at - 1])) at--;
  return held.subarray(at).indexOf(mark) !== -1;
}
const JSON_SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

// heldChange(err): the error of a change held behind a RETIRE that failed with err (see
// beforeChange): it was not sent. The code of err when it has one (the pool is down, the
// connection that carried the RETIRE broke), so that it fails as a broken connection's do.
function heldChange(err) {
  const code = typeof err.code === 'string' ? err.code : 'ECONNRESET';
  const out = connectionError(code, `sessd: a connection given up on with a change in flight could not be retired (${err.message}); this change was not sent`);
  out.cause = err;
  out.notCarriedOut = true;
  return out;
}

// afterRetires(gate, go): go()'s promise once gate (Client.beforeChange) resolves; the
// change's heldChange error when it rejects.
function afterRetires(gate, go) {
  return gate.then(go, (err) => {
    throw heldChange(err);
  });
}

// Events: 'connect' (hello) when the first connection is ready after none was (after a
// flapping server's 'disconnect', once one is healthy: see lostReady);
// 'disconnect' (err) when the last ready connection closed and none was ready again within
// restartWaitMs, or none healthy while the server flaps (at once when it is 0, or when err or a later attempt's error is
// ESESSD_AUTH), or before any was ready when an attempt failed, and once more while down
// when attempts start failing with ESESSD_AUTH (the daemon refuses the secret) though the
// last 'disconnect' said otherwise; 'error' is never emitted (errors reach the callers of
// the requests they fail). A pool that reconnects within restartWaitMs says nothing.
class Client extends EventEmitter {
  // The shared secret (a Buffer, or null): private, so that util.inspect never shows it.
  #auth;

  // opts: url (default env SESSD_URL or tcp://127.0.0.1:7077), poolSize (2), timeoutMs
  // (5000; 0 disables), connectTimeoutMs (5000), clientName, reconnectMinMs (50),
  // reconnectMaxMs (2000), restartWaitMs (timeoutMs, else 5000: how long after losing its
  // last ready connection the pool reconnects before it says 'disconnect', requests made
  // meanwhile and those the loss left unanswered waiting for it; 0: 'disconnect' and fail at
  // once), auth (the server's shared secret: a string or 16..1024 bytes, as sessd's --auth-file),
  // requireAuth (false; true: refuse a server that did not check the secret), seal (true
  // when auth is given: sealed connections, PROTOCOL.md "Sealed connections"; false: the
  // plain HELLO, which sends the secret).
  constructor(opts = {}) {
    super();
    this.#auth = checkAuth(opts.auth);
    this.requireAuth = checkRequireAuth(opts.requireAuth, this.#auth);
    this.seal = checkSeal(opts.seal, this.#auth);
    this.url = opts.url || process.env.SESSD_URL || DEFAULT_URL;
    this.poolSize = checkCount('poolSize', opts.poolSize ?? 2);
    this.connOpts = {
      url: this.url,
      timeoutMs: checkMs('timeoutMs', opts.timeoutMs ?? 5000),
      connectTimeoutMs: checkMs('connectTimeoutMs', opts.connectTimeoutMs ?? 5000),
      clientName: opts.clientName ?? 'connect-sessd',
    };
    this.reconnectMinMs = checkMs('reconnectMinMs', opts.reconnectMinMs ?? 50);
    this.reconnectMaxMs = checkMs('reconnectMaxMs', opts.reconnectMaxMs ?? 2000);
    this.restartWaitMs = checkMs('restartWaitMs', opts.restartWaitMs ?? (this.connOpts.timeoutMs || 5000));
    // Called at the next 'ready' of any pool connection (with true), or (with false) when the
    // reconnecting window ends without one or the client closes (see whenReady).
    this.readyWaiters = new Set();
    // The reconnecting window (see startRestartWait): its timer, null when none is open.
    this.restartTimer = null;
    // When (performance.now()) the pool lost its last ready connection with none healthy since
    // (see healthy): a flapping server's short 'ready's do not move it, so the window they
    // reopen ends restartWaitMs after it; null while the pool has had a healthy connection
    // since its last loss.
    this.outageSinceMs = null;
    // A ready connection was lost before it was healthy, leaving the pool none ready: the next
    // 'connect' waits for a healthy connection, not a 'ready' (see healthy).
    this.flapping = false;
    // 'ready's of pool connections so far: each connection is numbered (conn.readyGen), so that
    // resend tells a connection made since a break from one that was ready before it.
    this.readyGens = 0;
    this.slots = [];
    this.readyCount = 0;
    this.connected = null; // null: not yet known
    this.closed = false;
    this.rr = 0;
    this.hello = null;
    // The s_pk of sealed connections given up on with a change in flight, to RETIRE before
    // the next change (see owe, beforeChange); the RETIRE under way, if one is; and whether
    // the server answered RETIRE UNKNOWN_OP (an older sessd: nothing to wait for).
    this.owedRetires = [];
    this.retireGate = null;
    this.retireUnsupported = false;
    for (let i = 0; i < this.poolSize; i++) {
      // attempts: the failed attempts since the slot's last healthy connection, whose loss counts
      // as the first; retryMs: the wait before the retry timer's attempt (see retryMs).
      const slot = { index: i, conn: null, attempts: 0, retryTimer: null, retryMs: 0 };
      this.slots.push(slot);
      this.open(slot);
    }
  }

  open(slot) {
    slot.retryTimer = null;
    if (this.closed) return;
    const conn = this.newConnection(this.connOpts);
    slot.conn = conn;
    conn.onNotCarriedOut = (entry, err) => this.resend(entry, err);
    conn.onBroken = (entry, err) => {
      if (!(REPEATABLE_OPS.has(entry.op) || (READ_OPS.has(entry.op) && this.restartWaitMs > 0)) || this.closed) return false;
      this.resend(entry, err, conn);
      return true;
    };
    conn.on('ready', (hello) => {
      conn.readyGen = ++this.readyGens;
      // Not slot.attempts = 0: a connection lost soon after is a failed attempt (see retryMs).
      conn.readyAtMs = performance.now();
      this.hello = hello;
      this.readyCount++;
      // Back within restartWaitMs: nobody was told of the loss, and nobody is told of this.
      this.endRestartWait();
      this.wakeWaiters(true);
      conn.healthyTimer = setTimeout(() => this.healthy(conn), this.reconnectMaxMs);
      conn.healthyTimer.unref?.();
      if (this.connected !== true && !this.flapping) {
        this.connected = true;
        this.emit('connect', hello);
      }
      this.emit(POOL_READY, hello);
      // Sealed: sessd counts a connection as authenticated only once a record from it has
      // opened (a recorded HELLO can be replayed), and closes it at its --hello-timeout
      // (SHUTTING_DOWN) until then: a pool connection, opened ahead of use, would be closed
      // and opened again every few seconds while idle. A PING is that record.
      if (conn.sealed && conn.pendingCount === 0) conn.request(OP.PING, []).catch(() => {});
    });
    // A ready connection whose write failed is read on until its end (see Connection,
    // readOnAfterWriteError) and takes no request meanwhile: ready no more. Counted as ready
    // until its 'close', it kept the reconnecting window shut while no connection was ready
    // (sessd killed, the others closed), and the requests made then failed at once with
    // ESESSD_DISCONNECTED (a crash review: 22 reads and saves in 40 kill -9s).
    conn.on('unready', (err) => {
      if (conn.uncounted || !conn.announcedReady) return;
      conn.uncounted = true;
      this.readyCount--;
      this.lastError = err;
      this.lostReady(conn);
      if (this.connected === true && this.readyCount === 0 && this.restartTimer === null && this.mayRestart()) this.startRestartWait();
    });
    conn.on('close', (err, wasReady) => {
      if (wasReady && !conn.uncounted) {
        this.readyCount--;
        this.lostReady(conn);
      }
      this.lastError = err;
      // Down: the last ready connection closed, or (never connected yet) an attempt
      // failed, so express-session stops waiting on a store that is not there. Waiting for
      // every slot's attempt to fail could wait for ever: a hanging attempt (connect or HELLO
      // unanswered) keeps its slot open while the others fail and retry. A slot that
      // connects later says 'connect'. But the loss of the last ready connection of a pool
      // that was connected is first a restart (a deploy's SIGTERM, a crash that systemd
      // restarts): the pool reconnects for up to restartWaitMs before it says so. A daemon
      // that refuses the secret is no restart: that is said at once.
      const refused = err && err.code === AUTH_CODE;
      if (this.connected === true && this.readyCount === 0 && this.restartTimer === null && !refused && this.mayRestart()) {
        this.startRestartWait();
      } else if (this.restartTimer !== null && refused) {
        this.endRestartWait(err);
      } else if (this.restartTimer !== null) {
        // An attempt of the reconnecting window failed (sessd not back yet): it waits on.
      } else if ((this.connected === true && this.readyCount === 0) || this.connected === null) {
        this.connected = false;
        this.reported = err ? err.code : undefined;
        this.emit('disconnect', err);
      } else if (this.connected === false && err && err.code === AUTH_CODE && this.reported !== AUTH_CODE) {
        // Still down, and now because the daemon refuses the secret (it came back with
        // another one, or closed the connections of a retired one after --auth-grace): a
        // configuration error the operator must hear of, though the 'disconnect' said
        // earlier carried another reason. Once, not once per attempt.
        this.reported = AUTH_CODE;
        this.emit('disconnect', err);
      }
      if (this.closed) return;
      slot.retryMs = this.retryMs(slot, wasReady ? performance.now() - conn.readyAtMs : null);
      slot.retryTimer = setTimeout(() => this.open(slot), slot.retryMs);
      slot.retryTimer.unref?.();
    });
  }

  // retryMs(slot, readyForMs): how long the slot waits before its next attempt, its connection
  // having closed after it had been ready for readyForMs (null: it never was). A connection
  // ready for reconnectMaxMs or more was healthy, and its loss is most often a restart: the
  // slot tries again within reconnectMinMs, its backoff starting over. Any other close is a
  // failed attempt, one lost soon after its HELLO too (a daemon crash-looping after its start,
  // a proxy or firewall that cuts connections once they are up): the wait doubles from
  // reconnectMinMs with each, up to reconnectMaxMs (full jitter in its upper half). A slot so
  // opens at most about one connection per reconnectMaxMs / 2 however its server fails, where
  // retrying each ready connection's loss at once made it some 40 a second for ever.
  retryMs(slot, readyForMs) {
    if (readyForMs !== null && readyForMs >= this.reconnectMaxMs) {
      slot.attempts = 1;
      return Math.random() * this.reconnectMinMs;
    }
    const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(slot.attempts, 20));
    slot.attempts++;
    return base / 2 + Math.random() * (base / 2);
  }

  // healthy(conn): conn has been ready for reconnectMaxMs (see retryMs): the pool's outage, if
  // it had one, is over, and a pool that said 'disconnect' says 'connect' if it did not at the
  // 'ready' (flapping).
  healthy(conn) {
    conn.healthyTimer = null;
    if (conn.state !== 'ready' || this.closed) return;
    this.outageSinceMs = null;
    this.flapping = false;
    if (this.connected !== true) {
      this.connected = true;
      this.emit('connect', this.hello);
    }
  }

  // lostReady(conn): conn, counted ready, is ready no more. The last one lost starts the
  // pool's outage unless one had started with no healthy connection since; lost before it was
  // healthy, it makes the pool's next 'connect' wait for a healthy connection. A server that
  // answers HELLO and then closes (a crash loop, a proxy cutting connections) so ends in
  // 'disconnect' restartWaitMs after the last healthy connection's loss, as an outage does,
  // where each short 'ready' ended the window and 'disconnect' never came, express-session
  // sending every request to a store whose requests failed one by one.
  lostReady(conn) {
    const wasHealthy = conn.healthyTimer === null;
    clearTimeout(conn.healthyTimer);
    conn.healthyTimer = null;
    if (this.readyCount > 0) return;
    if (this.outageSinceMs === null) this.outageSinceMs = performance.now();
    if (!wasHealthy) this.flapping = true;
  }

  // mayRestart(): whether the loss of the pool's last ready connection opens a reconnecting
  // window (see startRestartWait) rather than a 'disconnect' at once.
  mayRestart() {
    return this.restartWaitMs > 0 && !this.closed;
  }

  // startRestartWait(): opens the reconnecting window: the pool lost its last ready
  // connection, and has restartWaitMs to get one again. Meanwhile 'disconnect' is not said
  // (express-session would serve every request without a session, and the app answer 503),
  // requests wait for a ready connection (see request), and the store stays connected. One
  // timer for the window, none per waiting request: the window bounds how many wait. The
  // timer holds the process up only while a request waits (see whenReady).
  startRestartWait() {
    const since = this.outageSinceMs ?? performance.now();
    const leftMs = Math.max(0, this.restartWaitMs - (performance.now() - since));
    this.restartTimer = setTimeout(() => this.endRestartWait(this.lastError), leftMs);
    // The requests the loss left unanswered wait already (see resend).
    if (this.readyWaiters.size === 0) this.restartTimer.unref?.();
  }

  // endRestartWait(err): closes the reconnecting window, if one is open. Without err the pool
  // has a ready connection again (the caller wakes the waiting requests); with err (the last
  // error: restartWaitMs passed, or the daemon refused the secret) it is down: 'disconnect'
  // (err) is said, the requests waiting fail with ESESSD_DISCONNECTED (see refuse), and the
  // next ones fail at once until the pool reconnects ('connect').
  endRestartWait(err) {
    if (this.restartTimer === null) return;
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (err === undefined) return;
    this.connected = false;
    this.reported = err ? err.code : undefined;
    this.wakeWaiters(false);
    this.emit('disconnect', err);
  }

  // reconnecting: whether the pool is in its reconnecting window (see startRestartWait).
  get reconnecting() {
    return this.restartTimer !== null;
  }

  // newConnection(connOpts): a new Connection, given the secret (kept out of connOpts, which
  // util.inspect shows).
  newConnection(connOpts) {
    const conn = new Connection({ ...connOpts, auth: this.#auth, requireAuth: this.requireAuth, seal: this.seal });
    conn.onGiveUp = (serverKey) => this.owe(serverKey);
    return conn;
  }

  // owe(serverKey): a sealed connection (named by its s_pk) was given up on with a change in
  // flight whose outcome is unknown. A record of it held on the path could still be carried
  // out, after a later change (a logout's DESTROY: the session back): the connection is
  // retired before any change this pool sends next (PROTOCOL.md "RETIRE").
  owe(serverKey) {
    if (this.retireUnsupported || this.closed) return;
    this.owedRetires.push(Buffer.from(serverKey));
  }

  // beforeChange(): null when a change may go out now; else a promise that resolves once
  // every connection owed a RETIRE is retired (answered), and rejects when one could not be
  // (the change must then not be sent; that connection stays owed, tried again by the next
  // change). Reads do not wait.
  beforeChange() {
    if (this.retireGate) return this.retireGate;
    if (this.owedRetires.length === 0) return null;
    const gate = this.retireOwed().finally(() => {
      if (this.retireGate === gate) this.retireGate = null;
    });
    this.retireGate = gate;
    return gate;
  }

  async retireOwed() {
    // Begun from inside a connection's fail: once it returns, the pool has heard of the close
    // (its reconnecting window open when it was the last ready connection), where request()
    // looks.
    await null;
    while (this.owedRetires.length > 0) {
      const key = this.owedRetires[0];
      try {
        // true or false: either way nothing more of that connection will be carried out.
        await this.request(OP.RETIRE, [key]);
      } catch (err) {
        if (!(err instanceof SessdError && err.sessdStatus === STATUS.UNKNOWN_OP)) throw err;
        // An older sessd cannot retire a connection: go on as before (PROTOCOL.md "RETIRE").
        this.retireUnsupported = true;
        this.owedRetires = [];
        return;
      }
      if (this.owedRetires[0] === key) this.owedRetires.shift();
    }
  }

  // The ready connection for a request: passConnection's in a pool of more than one; else
  // (or when it has none) the session's hashed one if it is ready, else the next ready one;
  // null when none is. Every request goes out by it (pick, resend, a reconnection's waiters),
  // so a session's requests held for a while follow its pending ones.
  pickReady(key) {
    const n = this.slots.length;
    if (n > 1) {
      const c = this.passConnection(key);
      if (c) return c;
    }
    const start = this.firstSlot(key);
    for (let i = 0; i < n; i++) {
      const c = this.slots[(start + i) % n].conn;
      if (c && c.state === 'ready') return c;
    }
    return null;
  }

  // firstSlot(key): the slot a request of the session key (undefined: none) tries first.
  firstSlot(key) {
    const start = key === undefined ? this.rr++ % this.slots.length : hashId(key) % this.slots.length;
    if (this.rr > 1e9) this.rr = 0;
    return start;
  }

  // The connection for a request: pickReady's, else the session's hashed one if it is
  // connecting, else the next one that is; null when none is usable.
  pick(key) {
    // Prefer ready connections; a connecting one queues the request behind its HELLO, but
    // only before the first 'connect' or 'disconnect': once the daemon is known to be down,
    // requests fail at once rather than wait on an attempt that may hang, and in the
    // reconnecting window they wait for a ready connection (an attempt that then fails would
    // fail them: sent on a socket that never connected, they were not carried out).
    const ready = this.pickReady(key);
    if (ready) return ready;
    if (this.connected === false || this.restartTimer !== null) return null;
    const n = this.slots.length;
    const start = this.firstSlot(key);
    for (let i = 0; i < n; i++) {
      const c = this.slots[(start + i) % n].conn;
      if (c && c.isOpen) return c;
    }
    return null;
  }

  // passConnection(key): the ready connection for a request of session key (undefined: none):
  // the one with the session's requests pending, if
  // any; else the one that already has frames to write in this pass, else the pool's first,
  // unless either is moving a large frame (Connection.transferring: the others would wait
  // behind its bytes), else the one with the fewest requests pending. Node writes each
  // connection's frames of a pass in one writev and reads its replies in one read: spread
  // over the pool by a hash of the id, a pass's requests took a write and a read per
  // connection (bench/README.md, stop 49b). null when the session's requests are pending on
  // a connection that is not ready (draining), or none is ready: pickReady then hashes.
  passConnection(key) {
    const k = key === undefined ? undefined : flightKey(key);
    let passing = null;
    let first = null;
    let fewest = null;
    for (const slot of this.slots) {
      const c = slot.conn;
      if (!c) continue;
      if (k !== undefined && c.inFlight.has(k)) return c.state === 'ready' ? c : null;
      if (c.state !== 'ready') continue;
      if (!c.transferring) {
        if (passing === null && c.passBytes > 0) passing = c;
        if (first === null) first = c;
      }
      if (fewest === null || c.pendingCount < fewest.pendingCount) fewest = c;
    }
    return passing || first || fewest;
  }

  // request(op, args, key): { status, result } (OK or NOT_FOUND); rejects on other statuses
  // and transport errors. With no connection to take it, a request made while the pool
  // reconnects (sessd restarting: the reconnecting window, see startRestartWait) waits for
  // it, a read as a change: the app's pages wait out a restart instead of answering 503, and
  // express-session saves after it has sent the response, so a save failed then would lose a
  // change the user was already told about. Else (the pool is down: 'disconnect' was said)
  // it fails at once.
  request(op, args, key) {
    return this.onConnection(op, key, (conn) => conn.request(op, args, key));
  }

  // onConnection(op, key, send): send(conn)'s promise, conn the pool's connection for key. A
  // change (op) waits first for the connections owed a RETIRE; with no connection to take it,
  // the call waits for a reconnecting pool or fails at once, as request() says.
  onConnection(op, key, send) {
    const gate = CHANGE_OPS.has(op) ? this.beforeChange() : null;
    if (gate) return afterRetires(gate, () => this.onConnection(op, key, send));
    const conn = this.closed ? null : this.pick(key);
    if (conn) return send(conn);
    if (!this.mayWait()) return this.refuse();
    return this.whenReady(key).then((ready) => (ready ? send(ready) : this.refuse()));
  }

  // mayWait(): whether a request with no connection to take it waits for the pool to
  // reconnect: while the reconnecting window is open.
  mayWait() {
    return this.restartTimer !== null && !this.closed;
  }

  // whenReady(key, waitMs): a promise of the session's ready connection once the pool has one
  // again, or null when the reconnecting window ends without one, or none is ready within
  // waitMs (when given: a timer of its own, for the requests resend() holds, which are as
  // many as were in flight), or the client closes.
  whenReady(key, waitMs = null) {
    return new Promise((resolve) => {
      let timer = null;
      const wake = (ok) => {
        clearTimeout(timer);
        resolve(ok && !this.closed ? this.pickReady(key) : null);
      };
      if (waitMs !== null) {
        timer = setTimeout(() => {
          this.readyWaiters.delete(wake);
          resolve(null);
        }, waitMs);
        timer.unref?.();
      }
      // A request waits: the process must not exit under it (a script awaiting a get() while
      // sessd restarts), as it does not while the request is in flight on a socket.
      this.restartTimer?.ref?.();
      this.readyWaiters.add(wake);
    });
  }

  // resend(entry, err, brokenOn): sends again a request a pool connection did not answer:
  // err is a SHUTTING_DOWN (brokenOn null: the request was not carried out), or the break of
  // brokenOn (a crash: the request, a change of REPEATABLE_OPS or a read, may have been
  // carried out).
  // It goes on another ready connection of the pool (pickReady's, where the session's
  // requests made since went, so that they keep their order) if there is one. With none (every connection heard
  // SHUTTING_DOWN or broke at once: the daemon is restarting) it waits for the pool to
  // reconnect, then goes out: express-session sends a redirect's headers before its save
  // completes, so a save failed now would lose a change the user was already told about
  // ("Added pear"). The connection it went to may be stopping or broken too (the stop or the
  // crash reaches the pool's connections one by one): it is sent again as long as
  // restartWaitMs has not passed since the first SHUTTING_DOWN or break, once without that
  // wait. But a request that breaks a connection made after its first break (sessd crashed
  // again with it) is not sent a third time: it may be what crashes sessd, and a daemon
  // crashing in a loop is soon no longer restarted (systemd's StartLimitBurst). A change
  // first waits for the RETIRE of a sealed connection given up on (see placeResend): that
  // wait counts in restartWaitMs, and a connection made during it is one made after the first
  // break. When it is not sent, or nothing is ready in time, it fails as a request does while
  // sessd is down (ESESSD_DISCONNECTED, status 503), or, if an attempt of a change broke, with
  // the socket's code (503, not notCarriedOut); a read fails as it would have while sessd is
  // down. The client closed meanwhile, it fails with ESESSD_CLOSED. entry.retried carries the
  // record of the attempts: { firstMs (the first SHUTTING_DOWN or break), breakGen (null, or
  // readyGens at the first break) }.
  resend(entry, err, brokenOn = null) {
    // The record is made at the break, before a change's wait for RETIRE (see placeResend):
    // made after it, a sealed pool counted restartWaitMs from the RETIRE's answer, and took
    // the connection made during that wait, which the resend then went on, for one older than
    // the break, so a change that broke it was sent a third time.
    const record = entry.retried ? { ...entry.retried } : { firstMs: Date.now(), breakGen: null };
    const fail = (why = `no connection was ready again within restartWaitMs (${this.restartWaitMs} ms)`) => {
      if (this.closed) {
        this.refuse().catch(entry.reject);
      } else if (record.breakGen === null && brokenOn === null) {
        entry.reject(unavailableError(`sessd closed the connection (${err.message}); the request was not carried out`, err));
      } else if (READ_OPS.has(entry.op)) {
        // A read changes nothing: carried out or not, it fails as one does while sessd is
        // down, but without notCarriedOut (it may have been).
        const out = unavailableError(`sessd connection broke under the request (${err.message}), and ${why}`, err);
        delete out.notCarriedOut;
        entry.reject(out);
      } else {
        entry.reject(maybeCarriedOut(err, why));
      }
    };
    if (brokenOn !== null) {
      // conn.readyGen is unset on a connection that broke before its HELLO reply: a new one.
      if (record.breakGen !== null && !(brokenOn.readyGen <= record.breakGen)) {
        return fail('it broke a connection made since its first break: it is not sent a third time');
      }
      if (record.breakGen === null) record.breakGen = this.readyGens;
    }
    this.placeResend(entry, record, fail);
  }

  // placeResend(entry, record, fail): resend's sending of entry, by its record, once no
  // connection is owed a RETIRE; fail(why) when it is not sent.
  placeResend(entry, record, fail) {
    // A change waits until the connection it broke on (and any other given up on) is retired.
    const gate = CHANGE_OPS.has(entry.op) ? this.beforeChange() : null;
    if (gate) {
      gate.then(
        () => this.placeResend(entry, record, fail),
        (e) => entry.reject(heldChange(e)),
      );
      return;
    }
    const left = this.restartWaitMs - (Date.now() - record.firstMs);
    const send = (conn) => {
      let sent = conn.request(entry.op, entry.args, entry.key, record);
      if (record.breakGen !== null && entry.op === OP.SET_IF) sent = sent.catch((e) => this.ownWrite(entry, e));
      if (record.breakGen !== null && CHANGE_OPS.has(entry.op)) sent = sent.catch(refusedResend);
      sent.then(entry.resolve, entry.reject);
    };
    if (this.closed || (entry.retried && left <= 0)) return fail();
    const other = this.pickReady(entry.key);
    if (other) return send(other);
    if (left <= 0) return fail();
    return this.whenReady(entry.key, left).then((ready) => (ready ? send(ready) : fail()));
  }

  // ownWrite(entry, err): the outcome of a SET_IF (entry) sent again after a break and
  // answered err. A CONFLICT may be its own first attempt, carried out before the break (the
  // session holds the data it sent, whose tag is not the one it expects): the session is read,
  // and if it holds exactly the data sent, the save is done and resolves as OK would, as it
  // must (a merge of the store would apply this request's changes a second time: mergeKey's
  // "theirs" would be its own). Bytes equal to its own written by another client look the
  // same: the store makes each SET_IF's data unique (writeMark in store.js) so that they
  // cannot be. Another request that read the data it sent and saved over it carries that
  // mark in the whitespace its own data ends with (builtOn): the first attempt was carried
  // out, and its changes are in what sessd holds (newer ones of the same keys over them), so
  // the save is done too; merged again, a mergeKey that counts would count it twice. Else
  // (another request saved over data this one never wrote) the CONFLICT stands; a GET
  // that fails rejects with its error (the outcome is not known). Other errors stand.
  async ownWrite(entry, err) {
    if (!(err instanceof SessdError && err.sessdStatus === STATUS.CONFLICT) || err.ownWriteChecked) throw err;
    // An earlier attempt's resend reaches here with the same error: read once.
    err.ownWriteChecked = true;
    const r = await this.request(OP.GET, entry.args.slice(0, 2), entry.key);
    if (r.status === STATUS.OK && r.result instanceof Uint8Array) {
      const held = toBuffer(r.result);
      const sent = toBuffer(entry.args[2]);
      if (held.equals(sent) || builtOn(held, sent)) return { status: STATUS.OK, result: null };
    }
    throw err;
  }

  // A rejected promise for a request no connection can take.
  refuse() {
    if (this.closed) return Promise.reject(Object.assign(new Error('sessd client is closed'), { code: 'ESESSD_CLOSED' }));
    const message = 'sessd is not connected' + (this.lastError ? ': ' + this.lastError.message : '');
    // Down because the server refused the secret (or requireAuth refused the server): say so,
    // as a configuration error, not an outage.
    if (this.lastError && this.lastError.code === AUTH_CODE) return Promise.reject(Object.assign(new Error(message), { code: AUTH_CODE }));
    return Promise.reject(unavailableError(message));
  }

  // adminRequest(op, args): request() for COUNT and CLEAR, over a connection of their own,
  // opened on first use. While a mass expiry is being reclaimed the daemon may put these
  // off for a second or more, and every request behind them on their connection waits too:
  // session requests must not be there. This connection does not count towards 'connect'
  // and 'disconnect'; once it closes, the next call opens another.
  // In the reconnecting window it waits, as request() does, for the pool to be ready again.
  // The connection hears of a restart on its own, often before the pool's do (its requests
  // answered SHUTTING_DOWN, or broken by a crash; its next attempt refused by a daemon that
  // no longer listens): such a request waits for the pool's next ready connection, within
  // restartWaitMs of that first failure, and goes again on a new connection (see adminRetry).
  adminRequest(op, args, firstMs = null) {
    if (this.closed || this.connected === false) return this.refuse();
    const gate = CHANGE_OPS.has(op) ? this.beforeChange() : null;
    if (gate) return afterRetires(gate, () => this.adminRequest(op, args, firstMs));
    if (this.restartTimer !== null) return this.whenReady(undefined).then((ready) => (ready ? this.adminRequest(op, args, firstMs) : this.refuse()));
    if (!this.adminConn || !this.adminConn.isOpen) {
      // The wait for a mass expiry takes seconds per million sessions due: 60 s at least.
      const timeoutMs = this.connOpts.timeoutMs === 0 ? 0 : Math.max(this.connOpts.timeoutMs, ADMIN_TIMEOUT_MS);
      const conn = this.newConnection({ ...this.connOpts, timeoutMs });
      // Not sent again on the pool: a COUNT or CLEAR must not hold up its session requests
      // (adminRetry sends it again on a new connection of this kind).
      conn.onNotCarriedOut = (entry, err) => entry.reject(unavailableError(`sessd closed the connection (${err.message}); the request was not carried out`, err));
      conn.on('close', () => {
        if (this.adminConn === conn) this.adminConn = null;
      });
      this.adminConn = conn;
    }
    return this.adminConn.request(op, args).catch((err) => this.adminRetry(op, args, err, firstMs));
  }

  // adminRetry(op, args, err, firstMs): the outcome of an admin request that failed with err.
  // A request that was not carried out (SHUTTING_DOWN, or a connect the daemon refused), or a
  // COUNT, a read, whose connection broke, is sent again on a new connection: at once the
  // first time if the pool still has a ready connection, else once the pool has one again
  // (sessd is back), as the pool's own requests are, if that comes within restartWaitMs of its
  // first failure (firstMs) and the pool had been connected; else, and for every other
  // error (a timeout, a BUSY, a CLEAR that may have been carried out), it fails with err.
  adminRetry(op, args, err, firstMs) {
    // A full daemon's BUSY (at --max-connections, at HELLO) is no restart: it fails at once.
    const sessdErr = err instanceof SessdError ? err : err.cause;
    const busy = sessdErr instanceof SessdError && sessdErr.sessdStatus === STATUS.BUSY;
    // Nor a refusal for want of memory or disk (notCarriedOut all the same): sent again at once
    // it meets the same full daemon, again and again until restartWaitMs had passed.
    const refused = sessdErr instanceof SessdError && RESEND_REFUSALS.has(sessdErr.sessdStatus);
    const notCarriedOut = err.notCarriedOut === true && !busy && !refused;
    // A timeout (of this request, or of the one ahead of it on the connection) is a stuck
    // daemon, not a restart: sessd may still be working on it.
    const timedOut = err.code === 'ETIMEDOUT' || (err.cause && err.cause.code === 'ETIMEDOUT');
    const broken = op === OP.COUNT && !(err instanceof SessdError) && err.statusCode === 503 && err.code !== AUTH_CODE && !timedOut;
    if (!(notCarriedOut || broken) || this.connected !== true || !this.mayRestart()) throw err;
    // Its first failure, with the pool's connections still ready, may be its connection's
    // alone (a reset on the way): once at once, on a new connection.
    if (firstMs === null && this.pickReady(undefined)) return this.adminRequest(op, args, Date.now());
    const started = firstMs ?? Date.now();
    const left = this.restartWaitMs - (Date.now() - started);
    if (left <= 0) throw err;
    return this.whenReady(undefined, left).then((ready) => {
      if (!ready && this.closed) return this.refuse();
      if (!ready) throw err;
      return this.adminRequest(op, args, started);
    });
  }

  async ok(op, args, key) {
    return (await this.request(op, args, key)).result;
  }

  // ready(opts): resolves with the HELLO reply once a connection is ready (at once while one
  // is, 'connect' said or not). Without
  // opts.timeoutMs it waits for as long as that takes (the pool keeps reconnecting); with it,
  // it rejects after timeoutMs with the last connection error (sessd down: ECONNREFUSED,
  // full: ESESSD_BUSY, ...), or ESESSD_DISCONNECTED when no attempt has ended yet, so that a health
  // check of a daemon down or full ends. A closed client rejects with ESESSD_CLOSED, and so does a
  // wait under way when the client closes.
  ready(opts = {}) {
    const timeoutMs = opts.timeoutMs;
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
      return Promise.reject(new TypeError('ready: timeoutMs must be a number of milliseconds of at least 0'));
    }
    // Closed, the pool no longer reconnects: without a timeout the wait would never end.
    if (this.closed) return this.refuse();
    // A ready connection takes requests, whether or not 'connect' was said (after a flap it
    // waits for a healthy one, see healthy): a caller now must not wait for the next 'ready',
    // which a stable pool never has. In the reconnecting window nothing is ready: wait.
    if (this.readyCount > 0) return Promise.resolve(this.hello);
    return new Promise((resolve, reject) => {
      let timer = null;
      const stop = () => {
        clearTimeout(timer);
        this.off(POOL_READY, onReady);
        this.off(POOL_CLOSED, onClosed);
      };
      const onReady = (hello) => {
        stop();
        resolve(hello);
      };
      // Closed, the pool no longer reconnects: the wait would never end.
      const onClosed = () => {
        stop();
        this.refuse().catch(reject);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          stop();
          reject(this.lastError || unavailableError(`sessd not ready within ${timeoutMs} ms: no connection attempt has ended yet`));
        }, timeoutMs);
      }
      this.once(POOL_READY, onReady);
      this.once(POOL_CLOSED, onClosed);
    });
  }

  async ping() {
    await this.ok(OP.PING, []);
  }

  // get(ns, id): the session's data as a Buffer, or null when there is none.
  async get(ns, id) {
    const r = await this.request(OP.GET, [checkNs(ns), checkId(id)], id);
    if (r.status !== STATUS.OK) return null;
    if (!(r.result instanceof Uint8Array)) throw badResult('GET result');
    return toBuffer(r.result);
  }

  // load(ns, id): LOAD (PROTOCOL.md "Sessions"): { data, flashes }, the session's data as
  // get() gives it (a Buffer) and how many flash messages, all types together, were queued in
  // it at that instant; null when get() would give null (no such session, expired, or one
  // holding only flashes). Changes nothing. A daemon older than LOAD answers
  // UNKNOWN_OP: this call and the later ones on that connection are a get(), and resolve
  // { data, flashes: null } (not known) or null (see requestNewer). client.lacksLoad: whether
  // the last answer to a LOAD was UNKNOWN_OP (undefined before any). Data within 10 bytes of
  // max_data is answered LIMIT (its LOAD reply would pass max_frame, PROTOCOL.md "Limits"):
  // that call is a get() too, rejecting as get() does.
  // Plain promises, not async functions: each await between the socket's reply and the store
  // cost a page view's calls a turn of the microtask queue and a promise (bench/e2e/store-ops.js).
  load(ns, id) {
    let args;
    try {
      args = [checkNs(ns), checkId(id)];
    } catch (err) {
      return Promise.reject(err);
    }
    return this.requestNewerThen(OP.LOAD, args, id, 'lacksLoad', (r) => this.loaded(ns, id, r), (err) => {
      if (!(err instanceof SessdError && err.sessdStatus === STATUS.LIMIT)) throw err;
      return this.loaded(ns, id, null);
    });
  }

  // loaded(ns, id, r): load()'s answer for LOAD's reply r (null: get()'s instead).
  loaded(ns, id, r) {
    if (r === null) return this.get(ns, id).then((data) => (data === null ? null : { data, flashes: null }));
    if (r.status !== STATUS.OK) return null;
    const v = r.result;
    if (!Array.isArray(v) || v.length !== 2 || !(v[0] instanceof Uint8Array)) throw badResult('LOAD result');
    // A session holds at most max_frame / 12 messages: a count past 2^53 is the server's fault.
    const flashes = uintResult(v[1], 'LOAD flash count');
    if (typeof flashes !== 'number') throw badResult('LOAD flash count');
    return { data: toBuffer(v[0]), flashes };
  }

  // set(ns, id, data, ttlMs): stores data (Buffer, Uint8Array or string, sent as bin).
  async set(ns, id, data, ttlMs) {
    await this.ok(OP.SET, [checkNs(ns), checkId(id), toBuffer(data), checkTtl(ttlMs)], id);
  }

  // requestNewer(op, args, key, lacks): request() for an opcode newer than some daemons
  // (SET_IF, TOUCH_IF, FLASH_PUSH_EXISTING, LOAD), which a daemon older than it answers
  // UNKNOWN_OP, leaving the connection open. Resolves { status, result } (OK or NOT_FOUND), or null when
  // this server lacks the opcode: the caller then does without it. The connection is marked
  // (conn[lacks]), so later calls on it resolve null without asking; a reconnection, perhaps
  // to an upgraded daemon, asks again. client[lacks]: whether the last answer to the opcode
  // was UNKNOWN_OP (undefined before any). Rejects as request() does on other statuses.
  requestNewer(op, args, key, lacks) {
    return this.onConnection(op, key, (conn) => this.newerOn(conn, op, args, key, lacks));
  }

  // requestNewerThen(op, args, key, lacks, onReply, onError): requestNewer(...).then(onReply,
  // onError), settled in one step from the reply when a ready connection takes the request at
  // once (a page view's LOAD): the promise newerOn chains before onReply cost each read a turn
  // of the microtask queue.
  requestNewerThen(op, args, key, lacks, onReply, onError) {
    const conn = this.closed || CHANGE_OPS.has(op) ? null : this.pick(key);
    if (conn === null || conn[lacks]) return this.requestNewer(op, args, key, lacks).then(onReply, onError);
    return conn.request(op, args, key).then((r) => {
      this[lacks] = false;
      return onReply(r);
    }, (err) => {
      if (!(err instanceof SessdError && err.sessdStatus === STATUS.UNKNOWN_OP)) return onError(err);
      conn[lacks] = true;
      this[lacks] = true;
      return onReply(null);
    });
  }

  // newerOn(conn, op, args, key, lacks): requestNewer's request on conn.
  newerOn(conn, op, args, key, lacks) {
    if (conn[lacks]) return Promise.resolve(null);
    return conn.request(op, args, key).then((r) => {
      this[lacks] = false;
      return r;
    }, (err) => {
      if (!(err instanceof SessdError && err.sessdStatus === STATUS.UNKNOWN_OP)) throw err;
      conn[lacks] = true;
      this[lacks] = true;
      return null;
    });
  }

  // setIf(ns, id, data, ttlMs, expect): SET_IF (PROTOCOL.md): stores data (as set() does,
  // flashes kept) only if the session holds data whose dataTag is expect. Resolves 'ok'
  // (stored), 'not_found' (no such session, or one without data: nothing stored) or
  // 'conflict' (its data has another tag: nothing stored; the connection stays open).
  // A daemon older than SET_IF answers UNKNOWN_OP: this call and the later ones on that
  // connection store with a plain SET and resolve 'ok' (see requestNewer; a warning, code
  // ESESSD_NO_SET_IF, is emitted once per client). client.lacksSetIf: whether the last answer
  // to a SET_IF was UNKNOWN_OP (undefined before any). Sent again after its connection broke
  // (see resend), a SET_IF that meets the data it sent resolves 'ok' (see ownWrite).
  setIf(ns, id, data, ttlMs, expect) {
    let args;
    try {
      args = [checkNs(ns), checkId(id), toBuffer(data), checkTtl(ttlMs), checkTag(expect)];
    } catch (err) {
      return Promise.reject(err);
    }
    return this.requestIf(OP.SET_IF, args, id, 'lacksSetIf', () => this.setOlder(args, id));
  }

  // setOlder(args, id): setIf() on a daemon older than SET_IF.
  async setOlder(args, id) {
    this.warnOlder('SET_IF', 'sessions are saved with a plain SET, so concurrent saves of one session are last-writer-wins');
    await this.ok(OP.SET, args.slice(0, 4), id);
    return 'ok';
  }

  // requestIf(op, args, key, lacks, older): requestNewer() for a conditional change (SET_IF,
  // TOUCH_IF, DESTROY_IF_FLASH): resolves 'ok', 'not_found', 'conflict' (CONFLICT, which
  // leaves the connection open), or when this server lacks the opcode, older()'s promise
  // (given) or null. Settled in one step from the connection's reply: the three chained
  // promises it was before cost each page view's touch as many turns of the microtask queue
  // (bench/e2e/store-ops.js).
  requestIf(op, args, key, lacks, older = null) {
    return this.onConnection(op, key, (conn) => this.ifOn(conn, op, args, key, lacks, older));
  }

  // ifOn(conn, op, args, key, lacks, older): requestIf's request on conn (see newerOn).
  ifOn(conn, op, args, key, lacks, older) {
    if (conn[lacks]) return older === null ? Promise.resolve(null) : older();
    return conn.request(op, args, key).then((r) => {
      this[lacks] = false;
      return r.status === STATUS.OK ? 'ok' : 'not_found';
    }, (err) => {
      if (!(err instanceof SessdError)) throw err;
      if (err.sessdStatus === STATUS.CONFLICT) {
        this[lacks] = false;
        return 'conflict';
      }
      if (err.sessdStatus !== STATUS.UNKNOWN_OP) throw err;
      conn[lacks] = true;
      this[lacks] = true;
      return older === null ? null : older();
    });
  }

  // warnOlder(name, consequence): a process warning, once per client and opcode, that the
  // daemon does not know the opcode name (code ESESSD_NO_<name>) and what doing without costs.
  warnOlder(name, consequence) {
    if (!this.warnedOlder) this.warnedOlder = new Set();
    if (this.warnedOlder.has(name)) return;
    this.warnedOlder.add(name);
    process.emitWarning(`sessd at ${this.url} does not know ${name} (it is older than connect-sessd): ${consequence}`, { code: `ESESSD_NO_${name}` });
  }

  // touch(ns, id, ttlMs): true if the session existed.
  async touch(ns, id, ttlMs) {
    return (await this.request(OP.TOUCH, [checkNs(ns), checkId(id), checkTtl(ttlMs)], id)).status === STATUS.OK;
  }

  // touchIf(ns, id, ttlMs, expect): TOUCH_IF (PROTOCOL.md): sets the expiry as touch() does
  // only if the session holds data whose dataTag is expect. Resolves 'ok' (touched),
  // 'not_found' (no such session, or one without data: nothing changed) or 'conflict' (its
  // data has another tag: nothing changed, not even the expiry; the connection stays open).
  // A daemon older than TOUCH_IF answers UNKNOWN_OP: this call and the later ones on that
  // connection touch with a plain TOUCH and resolve 'ok' or 'not_found' (see requestNewer; a
  // warning, code ESESSD_NO_TOUCH_IF, is emitted once per client). client.lacksTouchIf:
  // whether the last answer to a TOUCH_IF was UNKNOWN_OP (undefined before any).
  touchIf(ns, id, ttlMs, expect) {
    let args;
    try {
      args = [checkNs(ns), checkId(id), checkTtl(ttlMs), checkTag(expect)];
    } catch (err) {
      return Promise.reject(err);
    }
    return this.requestIf(OP.TOUCH_IF, args, id, 'lacksTouchIf', () => this.touchOlder(args, id));
  }

  // touchOlder(args, id): touchIf() on a daemon older than TOUCH_IF.
  async touchOlder(args, id) {
    this.warnOlder('TOUCH_IF', 'an unmodified session is touched with a plain TOUCH, so a slow request may cut back the lifetime a concurrent save gave it');
    return (await this.request(OP.TOUCH, args.slice(0, 3), id)).status === STATUS.OK ? 'ok' : 'not_found';
  }

  // destroy(ns, id): true if the session existed (false when it was sent again after a break
  // that came after it was carried out, see resend).
  async destroy(ns, id) {
    return (await this.request(OP.DESTROY, [checkNs(ns), checkId(id)], id)).status === STATUS.OK;
  }

  // destroyIfFlash(ns, id, type, msg): DESTROY_IF_FLASH (PROTOCOL.md "Flashes"): removes the
  // session only if the oldest message of its queue of type is msg (compared as its wire
  // form's bytes). Resolves 'ok' (removed), 'not_found' (no such session) or 'conflict' (that
  // queue is empty or its oldest message is another: nothing changed; the connection stays
  // open), or null when the daemon is older than it (UNKNOWN_OP, see requestNewer; nothing
  // changed; client.lacksDestroyIfFlash). Sent again after its connection broke, like DESTROY.
  async destroyIfFlash(ns, id, type, msg) {
    const args = [checkNs(ns), checkId(id), checkType(type), codec.encodeFlashMessage(msg)];
    return this.requestIf(OP.DESTROY_IF_FLASH, args, id, 'lacksDestroyIfFlash');
  }

  // ttl(ns, id): TTL (PROTOCOL.md "Sessions"): the session's remaining lifetime in ms (at
  // least 1) by the daemon's clock, or null when there is no such session or it has expired.
  // A session that holds only flashes has one too. Changes nothing. A daemon older than TTL
  // answers UNKNOWN_OP: the promise rejects with that SessdError (the connection stays open).
  async ttl(ns, id) {
    return ttlResult(await this.request(OP.TTL, [checkNs(ns), checkId(id)], id));
  }

  // ttlIfKnown(ns, id): ttl() for a caller that does without it on a daemon older than TTL
  // (SessdStore.get, which asks it with every read): resolves undefined there instead of
  // rejecting, asked once per connection (see requestNewer; client.lacksTtl: whether the
  // last answer to it was UNKNOWN_OP).
  async ttlIfKnown(ns, id) {
    const r = await this.requestNewer(OP.TTL, [checkNs(ns), checkId(id)], id, 'lacksTtl');
    return r === null ? undefined : ttlResult(r);
  }

  // flashPush(ns, id, type, msg, ttlMs): the length of that type's queue after the push. A
  // session that does not exist is created, without data (PROTOCOL.md "Flashes"). A string
  // msg travels as str; anything else as bin holding its MessagePack encoding. At most once:
  // not sent again when its connection breaks (see REPEATABLE_OPS).
  async flashPush(ns, id, type, msg, ttlMs) {
    return uintResult(await this.ok(OP.FLASH_PUSH, flashPushArgs(ns, id, type, msg, ttlMs), id), 'FLASH_PUSH result');
  }

  // flashPushExisting(ns, id, type, msg, ttlMs): FLASH_PUSH_EXISTING, flashPush() that never
  // creates a session: null when the session does not exist, has expired or holds no data
  // (nothing was pushed), else the queue's length after the push. A daemon older than it
  // answers UNKNOWN_OP: this call and the later ones on that connection push with FLASH_PUSH
  // instead (see requestNewer), which creates a missing session as before.
  // client.lacksFlashPushExisting: whether the last answer to it was UNKNOWN_OP.
  async flashPushExisting(ns, id, type, msg, ttlMs) {
    const args = flashPushArgs(ns, id, type, msg, ttlMs);
    const r = await this.requestNewer(OP.FLASH_PUSH_EXISTING, args, id, 'lacksFlashPushExisting');
    if (r === null) return uintResult(await this.ok(OP.FLASH_PUSH, args, id), 'FLASH_PUSH result');
    return r.status === STATUS.OK ? uintResult(r.result, 'FLASH_PUSH_EXISTING result') : null;
  }

  // flashPop(ns, id, type): with a type, that queue's messages (an array, empty when none);
  // with type null, an object of type -> array. Bin messages are decoded back to values.
  // The codec has checked the messages (str or bin) and the types (no type twice).
  async flashPop(ns, id, type = null) {
    const r = await this.request(OP.FLASH_POP, [checkNs(ns), checkId(id), type === null ? null : checkType(type)], id);
    if (r.status !== STATUS.OK) return type === null ? {} : [];
    const wantArray = type !== null; // one type: an array; every type: a map
    if (Array.isArray(r.result) !== wantArray) throw badResult('FLASH_POP result');
    if (type !== null) return r.result.map(codec.decodeFlashMessage);
    // In place: the object is ours, and its keys may include "__proto__".
    for (const t of Object.keys(r.result)) r.result[t] = r.result[t].map(codec.decodeFlashMessage);
    return r.result;
  }

  // count(ns): sessions in the namespace, flash-only sessions included.
  async count(ns) {
    return uintResult((await this.adminRequest(OP.COUNT, [checkNs(ns)])).result, 'COUNT result');
  }

  // list(ns, cursor, limit): { cursor, entries: [{ id, ttlMs }] }; ids as utf8 strings.
  async list(ns, cursor = 0, limit = 1000) {
    const r = await this.ok(OP.LIST, [checkNs(ns), checkUint('cursor', cursor), checkUint('limit', limit)]);
    if (!Array.isArray(r) || r.length !== 2 || !Array.isArray(r[1])) throw badResult('LIST result');
    return {
      cursor: uintResult(r[0], 'LIST cursor'),
      entries: r[1].map((e) => {
        if (!Array.isArray(e) || e.length !== 2 || !(e[0] instanceof Uint8Array)) throw badResult('LIST entry');
        return { id: toBuffer(e[0]).toString('utf8'), ttlMs: uintResult(e[1], 'LIST ttl') };
      }),
    };
  }

  // ids(ns): every id of the namespace (one LIST scan; a session may repeat if the
  // namespace grows meanwhile, so ids are deduplicated). A scan that a restart of sessd cut
  // (a page after the first answered by a daemon with another server_id, the pages having
  // waited or been sent again there) starts over: LIST's order is random per daemon start, so the old
  // daemon's cursor resumes nothing on the new one, and going on from it would pass sessions
  // over (PROTOCOL.md "Administration"). Cut by a restart four times, it rejects.
  async ids(ns, pageSize = 1000) {
    for (let scan = 1; ; scan++) {
      const seen = new Set();
      let cursor = 0;
      let serverId = null;
      let cut = false;
      do {
        const page = await this.list(ns, cursor, pageSize);
        // The daemon that answered the first page (the pool's last 'ready' told its id).
        if (cursor === 0) serverId = this.serverId();
        else if (this.serverId() !== serverId) {
          cut = true;
          break;
        }
        for (const e of page.entries) seen.add(e.id);
        // A cursor that does not move would scan forever.
        if (page.cursor !== 0 && page.cursor === cursor) throw badResult('LIST cursor (it did not move)');
        cursor = page.cursor;
      } while (cursor !== 0);
      if (!cut) return [...seen];
      if (scan === 4) throw connectionError('ESESSD_DISCONNECTED', `sessd restarted during each of ${scan} LIST scans of the namespace`);
    }
  }

  // serverId(): the server_id of the daemon the pool last connected to (null before that).
  serverId() {
    return this.hello ? this.hello.server_id : null;
  }

  // clear(ns): the number of sessions removed.
  async clear(ns) {
    return uintResult((await this.adminRequest(OP.CLEAR, [checkNs(ns)])).result, 'CLEAR result');
  }

  // stats(ns): an object of counters (ns null: the server's).
  async stats(ns = null) {
    const r = await this.ok(OP.STATS, [checkNs(ns)]);
    if (r === null || typeof r !== 'object' || Array.isArray(r) || r instanceof Uint8Array) throw badResult('STATS result');
    const out = {};
    for (const [k, v] of Object.entries(r)) out[k] = uintResult(v, `STATS ${k}`);
    return out;
  }

  // wakeWaiters(ok): the requests waiting for a ready connection (see whenReady) go now (ok:
  // the pool has one), or fail (the reconnecting window ended without one, or the client
  // closed).
  wakeWaiters(ok) {
    const waiters = this.readyWaiters;
    this.readyWaiters = new Set();
    for (const wake of waiters) wake(ok);
  }

  // close(): takes no new requests and stops reconnecting; requests already sent are
  // answered, then the connections close.
  close() {
    this.stopPool();
    for (const slot of this.slots) {
      clearTimeout(slot.retryTimer);
      if (slot.conn) slot.conn.end();
    }
    if (this.adminConn) this.adminConn.end();
  }

  // terminate(): closes every connection now; pending requests are rejected.
  terminate() {
    this.stopPool();
    for (const slot of this.slots) {
      clearTimeout(slot.retryTimer);
      if (slot.conn) slot.conn.close();
    }
    if (this.adminConn) this.adminConn.close();
  }

  // stopPool(): what close() and terminate() share: no new requests, a reconnecting window
  // ends without a word (the pool no longer connected), and whatever waits for a ready
  // connection (requests, ready()) fails with ESESSD_CLOSED (see refuse).
  stopPool() {
    this.closed = true;
    for (const slot of this.slots) {
      if (slot.conn) clearTimeout(slot.conn.healthyTimer);
    }
    if (this.restartTimer !== null) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
      this.connected = false;
    }
    this.wakeWaiters(false);
    this.emit(POOL_CLOSED);
  }
}

module.exports = { Client, SessdError, DEFAULT_URL, dataTag, optionNumber };
