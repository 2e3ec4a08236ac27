'use strict';
// SessdStore: an express-session store on sessd, with connect-redis v7 semantics.

const { Client } = require('./client');
const codec = require('./codec');

let BaseStore;
try {
  BaseStore = require('express-session').Store;
} catch (err) {
  // express-session is a peer dependency; without it the store is still a usable
  // EventEmitter (for tools and tests that use the Client directly).
  BaseStore = require('events').EventEmitter;
}

const DEFAULT_TTL_S = 86400;
// On a session read from sessd (not one made in this request): a symbol, so that neither
// express-session's change check nor the serializer sees it.
const STORED = Symbol('connect-sessd stored session');

// Runs an async body and answers through cb when given, else returns its promise.
function withCallback(promise, cb) {
  if (typeof cb !== 'function') return promise;
  // The callback runs outside the promise chain, so an exception it throws is not
  // swallowed as a rejection.
  promise.then((v) => process.nextTick(cb, null, v), (err) => process.nextTick(cb, err));
  return undefined;
}

class SessdStore extends BaseStore {
  // opts: url, namespace (null: "default"), prefix (''), ttl (seconds or function(sess) ->
  // seconds; default 86400), poolSize, timeoutMs, connectTimeoutMs, clientName,
  // serializer ({ stringify, parse }, default JSON), disableTouch, disableTTL, scanCount,
  // auth (the server's shared secret), requireAuth, seal, client (a Client to share instead
  // of opening one).
  constructor(opts = {}) {
    super();
    this.namespace = opts.namespace ?? null;
    if (this.namespace !== null && (typeof this.namespace !== 'string' || Buffer.byteLength(this.namespace) < 1 || Buffer.byteLength(this.namespace) > 64)) {
      throw new TypeError('namespace must be a string of 1..64 bytes');
    }
    this.prefix = opts.prefix ?? '';
    this.ttl = opts.ttl ?? DEFAULT_TTL_S;
    this.serializer = opts.serializer || JSON;
    this.disableTouch = Boolean(opts.disableTouch);
    this.disableTTL = Boolean(opts.disableTTL);
    this.scanCount = opts.scanCount ?? 1000;
    // A shared client has its own connections and secret: options given here would be
    // ignored, and a requireAuth silently ignored is worse than an error.
    if (opts.client && (opts.auth !== undefined || opts.requireAuth !== undefined || opts.seal !== undefined)) {
      throw new TypeError('auth, requireAuth and seal are options of the shared client, not of a store given one');
    }
    this.ownsClient = !opts.client;
    this.client = opts.client || new Client(opts);
    this.onConnect = (hello) => this.emit('connect', hello);
    this.onDisconnect = (err) => this.emit('disconnect', err);
    this.client.on('connect', this.onConnect);
    this.client.on('disconnect', this.onDisconnect);
  }

  // True while at least one connection to sessd is ready.
  get connected() {
    return this.client.connected === true;
  }

  key(sid) {
    return this.prefix + sid;
  }

  // ttlMs(sess): milliseconds the session should live: until its cookie expires, else the
  // ttl option (seconds). May be <= 0: the session has already expired.
  ttlMs(sess) {
    if (this.disableTTL) return codec.MAX_TTL_MS;
    if (typeof this.ttl === 'function') return Math.ceil(this.ttl(sess) * 1000);
    const expires = sess && sess.cookie && sess.cookie.expires;
    if (expires) return Math.ceil(new Date(expires).getTime() - Date.now());
    return Math.ceil(this.ttl * 1000);
  }

  // get(sid, cb): the session, or null when there is none; errors are errors.
  get(sid, cb) {
    return withCallback((async () => {
      const data = await this.client.get(this.namespace, this.key(sid));
      if (data === null) return null;
      return this.serializer.parse(this.serializer.raw ? data : data.toString('utf8'));
    })(), cb);
  }

  // set(sid, sess, cb): stores the session until its cookie expires; an already expired
  // session is destroyed instead.
  set(sid, sess, cb) {
    return withCallback((async () => {
      const ttl = Math.min(this.ttlMs(sess), codec.MAX_TTL_MS);
      if (!(ttl > 0)) {
        await this.client.destroy(this.namespace, this.key(sid));
        return undefined;
      }
      const data = this.serializer.stringify(sess);
      await this.client.set(this.namespace, this.key(sid), data, ttl);
      return undefined;
    })(), cb);
  }

  // touch(sid, sess, cb): renews the expiry; a session that is gone stays gone.
  touch(sid, sess, cb) {
    return withCallback((async () => {
      if (this.disableTouch || this.disableTTL) return undefined;
      const ttl = Math.min(this.ttlMs(sess), codec.MAX_TTL_MS);
      if (!(ttl > 0)) await this.client.destroy(this.namespace, this.key(sid));
      else await this.client.touch(this.namespace, this.key(sid), ttl);
      return undefined;
    })(), cb);
  }

  // destroy(sid, cb): removes the session, its data and its flashes.
  destroy(sid, cb) {
    return withCallback(this.client.destroy(this.namespace, this.key(sid)).then(() => undefined), cb);
  }

  // regenerate(req, fn): express-session's (destroy the session, start a new one under a new
  // id), except that the flashes waiting in the old session move to the new one, for the
  // same visitor: passport pushes successFlash just before req.logIn regenerates the
  // session. The pop of the old id goes out on that id's connection after every push made
  // to it, so none is left behind; fn runs once the moved messages are stored.
  regenerate(req, fn) {
    const oldKey = this.key(req.sessionID);
    const moving = this.client.flashPop(this.namespace, oldKey, null).catch(() => ({}));
    moving
      .then(async (flashes) => {
        let destroyErr = null;
        try {
          await this.client.destroy(this.namespace, oldKey);
        } catch (err) {
          destroyErr = err;
        }
        this.generate(req);
        const newKey = this.key(req.sessionID);
        const ttl = Math.min(Math.max(this.ttlMs(req.session), 1), codec.MAX_TTL_MS);
        const pushes = [];
        for (const [type, msgs] of Object.entries(flashes)) {
          for (const msg of msgs) pushes.push(this.client.flashPush(this.namespace, newKey, type, msg, ttl));
        }
        await Promise.all(pushes);
        if (destroyErr) throw destroyErr;
      })
      .then(() => process.nextTick(fn), (err) => process.nextTick(fn, err));
  }

  // createSession(req, sess): express-session's, for a session read from sessd; marks it as
  // stored, so that flash() need not make express-session save it again.
  createSession(req, sess) {
    const session = super.createSession(req, sess);
    Object.defineProperty(session, STORED, { value: true });
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
  all(cb) {
    return withCallback((async () => {
      const ids = await this.ids();
      const raw = await Promise.all(ids.map((id) => this.client.get(this.namespace, this.key(id))));
      const out = [];
      raw.forEach((data, i) => {
        if (data === null) return;
        const sess = this.serializer.parse(this.serializer.raw ? data : data.toString('utf8'));
        sess.id = ids[i];
        out.push(sess);
      });
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

  // clear(cb): removes every session of the namespace (with a prefix: those with it).
  clear(cb) {
    return withCallback((async () => {
      if (this.prefix === '') {
        await this.client.clear(this.namespace);
        return undefined;
      }
      const ids = await this.ids();
      await Promise.all(ids.map((id) => this.client.destroy(this.namespace, this.key(id))));
      return undefined;
    })(), cb);
  }

  // close(): if this store opened its connections, lets the requests in flight finish and
  // closes them; no new requests are taken.
  close() {
    this.client.off('connect', this.onConnect);
    this.client.off('disconnect', this.onDisconnect);
    if (this.ownsClient) this.client.close();
  }
}

module.exports = { SessdStore, DEFAULT_TTL_S, STORED };
