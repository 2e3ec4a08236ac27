// Type declarations for connect-sessd (index.js, lib/*.js).
//
// index.js is CommonJS and sets module.exports to one object, so these declarations say
// `export =`, as it is: require() and a default import (from an ES module, or with
// esModuleInterop) get that object, named imports its properties. ES-style exports would
// tell TypeScript the module has an __esModule marker and no default export, which is false.
//
// Only what the code does and the README documents is declared: the store's and client's
// internal helpers stay out, and the types of values that come from sessd (popped flashes,
// what another request stored) are `unknown`, since any client may have written them.

/// <reference types="node" />

import { EventEmitter } from 'events';
import express = require('express');
import session = require('express-session');

declare global {
  namespace Express {
    interface Request {
      // Set by connect-sessd's flash() middleware. Every form returns a promise (the
      // messages live in sessd, not in req.session); a failure rejects it and also reaches
      // flash({ onError }). A message that is not a string is stored as connect-flash's
      // session would store it, as its JSON form (toJSON honoured, a Date as its ISO string,
      // functions and undefined properties dropped), and one JSON cannot hold (a bigint, a
      // cycle) rejects the push with a TypeError: see connectSessd.FlashMessage. Popped
      // messages are unknown: a string comes back as the string pushed, any other value as its
      // JSON form, and a message another client pushed as raw bytes may come back as a Buffer.
      // On a store other than SessdStore (MemoryStore in tests) the messages are kept in
      // req.session.flash, as connect-flash keeps them, with the same results. At run time a
      // number type names the queue String(type) and a falsy one ('', 0) pops every type, as
      // in connect-flash; the declarations ask for a string. A type is at most 64 bytes
      // (UTF-8): a push of a longer one rejects with a RangeError, and its pop resolves [].

      /** Pops every type's messages: `{ type: [messages] }`, `{}` when there are none. */
      flash(): Promise<Record<string, unknown[]>>;
      /** Pops the messages of `type`: an array, empty when there are none. */
      flash(type: string): Promise<unknown[]>;
      /**
       * Pushes each message in order; resolves to the queue's length after the last push
       * (undefined for an empty array, which pushes nothing; 0 when it was dropped, as below).
       * An element of undefined is pushed as null, as JSON stores it in an array.
       */
      flash(type: string, messages: readonly (connectSessd.FlashMessage | undefined)[]): Promise<number | undefined>;
      /** Pushes `util.format(format, arg, ...args)`; resolves to the queue's length (0: dropped, as below). */
      flash(type: string, format: string, arg: unknown, ...args: unknown[]): Promise<number>;
      /**
       * A format that may be undefined or null (an i18n `t()` that finds no text): it pushes,
       * or, when it is undefined or null at run time, pops, as in connect-flash: flash(type).
       */
      flash(type: string, format: string | undefined | null, arg: unknown, ...args: unknown[]): Promise<number | unknown[]>;
      /** A message of undefined or null pops, as in connect-flash: flash(type). */
      flash(type: string, message: undefined | null): Promise<unknown[]>;
      /**
       * Pushes one message (`''` included: any value but undefined and null);
       * resolves to the queue's length after the push, or to 0 when the message was dropped:
       * the session was read from sessd and has been destroyed (a concurrent logout) or has
       * expired since.
       */
      flash(type: string, message: string | number | boolean): Promise<number>;
      // A separate overload: TypeScript 7 matches an object literal to `object` alone, not
      // to a union holding it.
      /** Pushes the object's JSON form (see connectSessd.FlashMessage). */
      flash(type: string, message: object): Promise<number>;
      /** An array that may be undefined or null: an array push (see above), or a pop. */
      flash(type: string, messages: readonly (connectSessd.FlashMessage | undefined)[] | undefined | null): Promise<number | undefined | unknown[]>;
      /**
       * A message that may be undefined or null (passport's `info?.message` is
       * `string | undefined`): it pushes, or, when it is undefined or null at run time, pops
       * (see above).
       */
      flash(type: string, message: connectSessd.FlashMessage | undefined): Promise<number | unknown[]>;
    }
  }
}

declare namespace connectSessd {
  /** A sessd namespace (1..64 bytes), or null for the daemon's "default". */
  type Namespace = string | null;

  /** A session id as sessd stores it: a string (its UTF-8 bytes) or bytes, 1..128 of them. */
  type SessionKey = string | Uint8Array;

  /**
   * What req.flash pushes: a string as it is; any other value as its JSON form, which is what
   * connect-flash gives back, since it keeps messages in the session and express-session's
   * stores save that as JSON: toJSON is honoured (a Date becomes its ISO string), functions,
   * symbols and undefined properties are dropped, NaN and Infinity become null, a Map or a Set
   * becomes `{}`. A bigint or a cycle anywhere in it rejects the push with a TypeError (a
   * bigint cannot be declared away inside an object: the declaration refuses it at the top).
   */
  type FlashMessage = string | number | boolean | object | null;

  /**
   * An Error from connect-sessd or the socket underneath. `code` says what happened:
   * `ESESSD_DISCONNECTED`, `ESESSD_CLOSED`, `ESESSD_AUTH`, `ESESSD_CONFLICT`, `ESESSD_NO_SESSION`,
   * `ESESSD_PROTOCOL`, `ETIMEDOUT`, `ESESSD_<STATUS>` from a SessdError, or a socket's own
   * (`ECONNREFUSED`, `ENOENT`, ...). Argument errors are TypeErrors and RangeErrors.
   * A request that was not carried out because sessd is down or restarting (it said
   * SHUTTING_DOWN and no other connection could take the request) is `ESESSD_DISCONNECTED`
   * with `status` and `statusCode` 503 and `notCarriedOut` true, for Express's error handler.
   * A request whose connection broke under it (a crash) may or may not have been carried out:
   * the socket's code (`ECONNRESET`, `EPIPE`) or `ESESSD_CLOSED`, 503, `notCarriedOut` unset;
   * set, setIf, touch, destroy and the reads are first sent again (see `restartWaitMs`), flash
   * pushes and pops not.
   */
  type ErrorWithCode = Error & { code?: string; status?: number; statusCode?: number; expose?: boolean; notCarriedOut?: boolean };

  /**
   * The HELLO reply (PROTOCOL.md "HELLO"). Integers are bigints when the daemon encodes them
   * as 64-bit (codec.normalizeInt makes them numbers). Servers may add keys.
   */
  interface HelloReply {
    version?: number | bigint;
    server?: string;
    server_id?: string;
    max_frame?: number | bigint;
    max_data?: number | bigint;
    max_id?: number | bigint;
    max_namespace?: number | bigint;
    max_flash_type?: number | bigint;
    max_list?: number | bigint;
    /** true when the daemon checked the shared secret; null when it requires none. */
    auth?: true | null;
    /**
     * Whether this connection may LIST, NAMESPACES and CLEAR (all(), ids(), clear()): false
     * when the daemon has --admin-auth-file and the client did not show that secret. Absent
     * from an older daemon, which lets every connection.
     */
    admin?: boolean;
    /** On a sealed connection: the daemon's key and its proof that it holds the secret. */
    kx?: { key: Uint8Array; proof: Uint8Array };
    [key: string]: unknown;
  }

  interface ClientOptions {
    /**
     * `unix:/path` (also `unix:///path`, the bare absolute `/path`, or `unix:relative/path`) or
     * `tcp://host:port`, the forms sessctl and libsessd take; anything else throws a TypeError.
     * Default `$SESSD_URL`, else `tcp://127.0.0.1:7077`.
     */
    url?: string;
    /** Connections to sessd (default 2). */
    poolSize?: number;
    /** A request unanswered this long fails with ETIMEDOUT and its connection is replaced (default 5000; 0: none). */
    timeoutMs?: number;
    /** Time allowed for connecting and HELLO (default 5000). 0: no limit; a HELLO a path swallows then holds its pool slot for ever (README). */
    connectTimeoutMs?: number;
    /** Sent in HELLO, for people, with this process's identity after it (default `'connect-sessd'`; README). */
    clientName?: string;
    /**
     * Reconnection backoff, doubling from min to max after each failed attempt, with jitter
     * (defaults 50 and 2000). A connection lost after it had been ready for reconnectMaxMs is
     * retried within reconnectMinMs; one lost sooner counts as a failed attempt.
     */
    reconnectMinMs?: number;
    reconnectMaxMs?: number;
    /**
     * How long, after the pool lost its last ready connection (sessd restarting or crashed), it
     * reconnects before it says `disconnect`: requests made meanwhile, reads included, and
     * those the loss left unanswered (SHUTTING_DOWN; a crash: set, setIf, touch, destroy and
     * reads) wait for a ready connection, and fail with 503 when none is ready in time
     * (default `timeoutMs`, else 5000; 0: `disconnect` and fail at once).
     */
    restartWaitMs?: number;
    /** The daemon's shared secret: a string (its UTF-8 bytes) or 16..1024 bytes (sessd's --auth-file rule; shorter throws a RangeError). */
    auth?: string | Uint8Array | null;
    /** true: refuse a daemon that did not check the secret (needs `auth`). */
    requireAuth?: boolean;
    /** Seal the connections with the secret (default: true when `auth` is given; true needs `auth`). */
    seal?: boolean;
  }

  /** A LIST page: `cursor` is 0 once the scan is done; a cursor past 2^53 is a bigint. */
  interface ListPage {
    cursor: number | bigint;
    entries: Array<{ id: string; ttlMs: number }>;
  }

  /**
   * A LOAD result: the session's data as `get` gives it, and how many flash messages (all
   * types together) were queued in it then; `flashes` is null when the daemon is older than
   * LOAD and `load` fell back to GET (not known).
   */
  interface LoadResult {
    data: Buffer;
    flashes: number | null;
  }

  /**
   * The protocol client: a pool of connections with reconnection, one promise method per
   * operation. Events: `connect` (hello) when a connection is ready after `disconnect` (after
   * a flapping server's, once one has been ready for `reconnectMaxMs`), or the first time;
   * `disconnect` (err) when none was ready again within `restartWaitMs` of losing the last one
   * (none ready for `reconnectMaxMs`, while the server drops connections right after `HELLO`;
   * at once with `restartWaitMs` 0 or an `ESESSD_AUTH` error), or an attempt fails before any
   * was ready. A pool back within `restartWaitMs` emits neither.
   */
  class Client extends EventEmitter {
    constructor(options?: ClientOptions);

    readonly url: string;
    /**
     * true from `connect` until `disconnect` (so also while `reconnecting`); false after
     * `disconnect`; null until the first attempt is decided.
     */
    readonly connected: boolean | null;
    /**
     * true while the pool, having lost its last ready connection, reconnects within
     * `restartWaitMs`: requests wait for it, and `disconnect` has not been said.
     */
    readonly reconnecting: boolean;
    /** Whether the last SET_IF was answered UNKNOWN_OP (undefined before any SET_IF). */
    readonly lacksSetIf: boolean | undefined;
    /** Whether the last FLASH_PUSH_EXISTING was answered UNKNOWN_OP (undefined before any). */
    readonly lacksFlashPushExisting: boolean | undefined;
    /** Whether the last LOAD was answered UNKNOWN_OP (undefined before any LOAD). */
    readonly lacksLoad: boolean | undefined;
    /** Whether the last TOUCH_IF was answered UNKNOWN_OP (undefined before any TOUCH_IF). */
    readonly lacksTouchIf: boolean | undefined;
    /** Whether the last TTL of ttlIfKnown was answered UNKNOWN_OP (undefined before any). */
    readonly lacksTtl: boolean | undefined;
    /** Whether the last DESTROY_IF_FLASH was answered UNKNOWN_OP (undefined before any). */
    readonly lacksDestroyIfFlash: boolean | undefined;

    /**
     * Resolves with the HELLO reply once a connection is ready (at once while one is, also
     * before a flapping server's `connect`). Without `timeoutMs` it waits
     * for as long as that takes; with it, it rejects after `timeoutMs` with the last
     * connection error (`ECONNREFUSED`, `ENOENT`: sessd is down; `ESESSD_BUSY`: it is full;
     * `ESESSD_DISCONNECTED` when no attempt has ended yet). On a closed client it rejects at
     * once with `ESESSD_CLOSED`, with or without `timeoutMs`, and a wait under way rejects so
     * when the client is closed (`close()` or `terminate()`).
     */
    ready(options?: { timeoutMs?: number }): Promise<HelloReply>;
    ping(): Promise<void>;
    /** The session's data, or null when there is none. */
    get(ns: Namespace, id: SessionKey): Promise<Buffer | null>;
    /**
     * The session's data and the number of flash messages queued in it, or null when `get`
     * would give null; changes nothing. A daemon older than LOAD gets a GET instead (asked once
     * per connection), and `flashes` is then null; so does data too large for a LOAD reply.
     */
    load(ns: Namespace, id: SessionKey): Promise<LoadResult | null>;
    set(ns: Namespace, id: SessionKey, data: string | Uint8Array, ttlMs: number): Promise<void>;
    /** Stores data only if the session's data has the tag `expect` (see dataTag). Sent again after a crash, one that meets the data it sent resolves 'ok'. */
    setIf(ns: Namespace, id: SessionKey, data: string | Uint8Array, ttlMs: number, expect: Uint8Array): Promise<'ok' | 'not_found' | 'conflict'>;
    /** Whether the session existed. */
    touch(ns: Namespace, id: SessionKey, ttlMs: number): Promise<boolean>;
    /** Sets the expiry as `touch` does only if the session's data has the tag `expect` (see dataTag). A daemon older than TOUCH_IF gets a plain TOUCH ('ok' or 'not_found'). */
    touchIf(ns: Namespace, id: SessionKey, ttlMs: number, expect: Uint8Array): Promise<'ok' | 'not_found' | 'conflict'>;
    /** Whether the session existed (false when sent again after a crash that came after it was carried out). */
    destroy(ns: Namespace, id: SessionKey): Promise<boolean>;
    /**
     * DESTROY_IF_FLASH: removes the session only while the oldest message of its queue of type
     * is msg (a lock's release by its holder). null: the daemon is older than it; nothing removed.
     */
    destroyIfFlash(ns: Namespace, id: SessionKey, type: string, msg: unknown): Promise<'ok' | 'not_found' | 'conflict' | null>;
    /**
     * The session's remaining lifetime in ms (at least 1, by the daemon's clock), or null when
     * there is no such session or it has expired; a session of flashes only has one too.
     * Changes nothing. Rejects with UNKNOWN_OP from a daemon older than TTL.
     */
    ttl(ns: Namespace, id: SessionKey): Promise<number | null>;
    /** ttl(), resolving undefined from a daemon older than TTL (asked once per connection). */
    ttlIfKnown(ns: Namespace, id: SessionKey): Promise<number | null | undefined>;
    /** A string travels as a string, anything else as its MessagePack encoding; resolves to the queue's length. At most once: not sent again after a crash (it rejects with 503). */
    flashPush(ns: Namespace, id: SessionKey, type: string, msg: unknown, ttlMs: number): Promise<number>;
    /**
     * flashPush that never creates a session: null (nothing pushed) when the session does not
     * exist, has expired or holds only flashes. A daemon older than FLASH_PUSH_EXISTING gets a
     * FLASH_PUSH instead, which creates a missing session.
     */
    flashPushExisting(ns: Namespace, id: SessionKey, type: string, msg: unknown, ttlMs: number): Promise<number | null>;
    /** Pops one type's messages (an array), or with null every type's (`{ type: [messages] }`). */
    flashPop(ns: Namespace, id: SessionKey, type: string): Promise<unknown[]>;
    flashPop(ns: Namespace, id: SessionKey, type?: null): Promise<Record<string, unknown[]>>;
    /** Sessions in the namespace, flash-only ones included. */
    count(ns: Namespace): Promise<number>;
    list(ns: Namespace, cursor?: number | bigint, limit?: number): Promise<ListPage>;
    /** Every id of the namespace (one LIST scan, deduplicated). */
    ids(ns: Namespace, pageSize?: number): Promise<string[]>;
    /** Removes every session of the namespace; resolves to how many it removed. */
    clear(ns: Namespace): Promise<number>;
    /** The namespace's counters, or with null the daemon's; a counter past 2^53 is a bigint. */
    stats(ns?: Namespace): Promise<Record<string, number | bigint>>;
    /** Takes no new requests, lets those in flight finish, then closes. */
    close(): void;
    /** Closes every connection now; pending requests reject. */
    terminate(): void;

    on(event: 'connect', listener: (hello: HelloReply) => void): this;
    on(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once(event: 'connect', listener: (hello: HelloReply) => void): this;
    once(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
    addListener(event: 'connect', listener: (hello: HelloReply) => void): this;
    addListener(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    addListener(event: string | symbol, listener: (...args: any[]) => void): this;
    prependListener(event: 'connect', listener: (hello: HelloReply) => void): this;
    prependListener(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    prependListener(event: string | symbol, listener: (...args: any[]) => void): this;
    prependOnceListener(event: 'connect', listener: (hello: HelloReply) => void): this;
    prependOnceListener(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    prependOnceListener(event: string | symbol, listener: (...args: any[]) => void): this;
  }

  /**
   * The session serializer. `stringify` is given the session, and also (to tell which
   * top-level keys a request changed) objects holding just one of its keys, such as
   * `{ cart: [...] }` without a cookie: its parameter is `any`, so that a serializer typed
   * the connect-redis way (`stringify(s: SessionData): string`) is accepted, and it must
   * handle those objects too. `parse` may return a promise (connect-redis v7's
   * `parse(s): SessionData | Promise<SessionData>`): it is awaited. With `raw: true`, `parse`
   * is given the stored bytes as a Buffer instead of a string.
   */
  type Serializer =
    | { stringify(value: any): string | Uint8Array; parse(text: string): unknown | Promise<unknown>; raw?: false }
    | { stringify(value: any): string | Uint8Array; parse(data: Buffer): unknown | Promise<unknown>; raw: true };

  interface SessdStoreOwnOptions {
    /** sessd namespace (1..64 bytes); default null, the daemon's "default". */
    namespace?: Namespace;
    /** Prepended to every session id (default `''`). */
    prefix?: string;
    /**
     * Seconds a session lives when its cookie has no expiry (default 86400); or a function
     * of the session, which then decides every ttl.
     */
    ttl?: number | ((sess: session.SessionData) => number);
    /** touch() does nothing. */
    disableTouch?: boolean;
    /** Sessions live as long as sessd allows (10 years); touch() does nothing. */
    disableTTL?: boolean;
    /** Default JSON. */
    serializer?: Serializer;
    /** LIST page size for ids() and all() (default 1000): a whole number of at least 1; sessd answers at most 1000 a page. */
    scanCount?: number;
    /** Save a session read from sessd by writing only the keys its request changed (default true). */
    merge?: boolean;
    /**
     * The value to store for a top-level key this request and a concurrent one both changed
     * (undefined deletes it): `base` as this request read it, `mine` its value now, `theirs`
     * as the other request stored it (each undefined when absent). Default: `mine`.
     */
    mergeKey?: (key: string, base: unknown, mine: unknown, theirs: unknown) => unknown;
    /** SET_IFs a save tries before it fails with ESESSD_CONFLICT (default 25). */
    mergeAttempts?: number;
    /**
     * Keep each session's read by id for a framework that copies the session `get()` answers
     * into an object of its own class (@fastify/session), so that its save merges like an Express
     * request's and does not undo a logout (README, "Other frameworks"). `true`: from the
     * first request; `false`: never (such saves are whole); not given: from the first save of
     * a session object that is neither a plain object nor express-session's Session. Needs
     * `merge`.
     */
    keepReads?: boolean;
    /**
     * What `regenerate()` moves to the new session: `'own'` (default), the flashes the
     * regenerating request pushed (passport's successFlash), earlier unread ones going with
     * the old session (a logout must not show them to the next user); `'all'`, every unread
     * flash, for apps that use passport's `keepSessionInfo: true` (at login and logout).
     */
    regenerateFlashes?: 'own' | 'all';
    /**
     * The app's old express-session store (connect-redis's RedisStore, MemoryStore, ...), for a
     * switch that logs no one out: a session sessd lacks is moved from it on its next page,
     * with the lifetime it had left and its connect-flash messages (README, "Switching from
     * connect-redis"). A 503 `ESESSD_MIGRATE` error when it fails or is slow. A TypeError for
     * an object without `get()` and `destroy()`.
     */
    migrateFrom?: session.Store | null;
    /** How long one call of `migrateFrom` may take before the request's error (default 5000 ms). */
    migrateTimeoutMs?: number;
  }

  /**
   * Either the options of the connections the store opens, or a Client to share, which
   * holds its own secret: the store throws if given `auth`, `requireAuth` or `seal` with it.
   */
  type SessdStoreOptions =
    | (SessdStoreOwnOptions & ClientOptions & { client?: undefined })
    | (SessdStoreOwnOptions & { client: Client; auth?: undefined; requireAuth?: undefined; seal?: undefined });

  /** What SessdStore.migrateAll() moved. */
  interface MigrateAllResult {
    moved: number;
    already: number;
    none: number;
  }

  /** A session as all() returns it: with its id. */
  type SessionWithId = session.SessionData & { id: string };

  /**
   * An express-session store on sessd. Each method takes an optional Node-style callback and
   * returns a promise when given none. Events: `connect` (hello), `disconnect` (err) (both
   * heeded by express-session; a sessd back within `restartWaitMs` causes neither), and `gone` (sid, session): a save found the session destroyed
   * or expired since its request read it, and did not write it back.
   */
  class SessdStore extends session.Store {
    constructor(options?: SessdStoreOptions);

    /** The store's Client (its own, or the one it was given). */
    readonly client: Client;
    /**
     * true from `connect` until `disconnect`: also while the pool reconnects within
     * `restartWaitMs` (`client.reconnecting`), when requests wait for it.
     */
    readonly connected: boolean;
    readonly namespace: Namespace;
    readonly prefix: string;

    /** The session, or null when there is none; failures are errors, never a missing session. */
    get(sid: string): Promise<session.SessionData | null>;
    get(sid: string, callback: (err: Error | null, session?: session.SessionData | null) => void): void;
    /** Stores the session until its cookie expires; an already expired one is destroyed instead. */
    set(sid: string, sess: session.SessionData): Promise<void>;
    set(sid: string, sess: session.SessionData, callback: (err: Error | null) => void): void;
    touch(sid: string, sess: session.SessionData): Promise<void>;
    touch(sid: string, sess: session.SessionData, callback: (err: Error | null) => void): void;
    /** Removes the session and its flashes. */
    destroy(sid: string): Promise<void>;
    destroy(sid: string, callback: (err: Error | null) => void): void;
    /**
     * express-session's, for `req.session.regenerate()`: destroys the session and moves its
     * flashes (see `regenerateFlashes`). Without a callback, a promise.
     */
    regenerate(req: express.Request): Promise<void>;
    regenerate(req: express.Request, callback: (err?: any) => any): void;
    /**
     * Every session, each with its id; flash-only sessions are left out. The GETs go 64 at a
     * time; a record the serializer cannot read rejects with its error, `sessionId` naming it
     * (not enumerable, so that a logged error does not show the id).
     */
    all(): Promise<SessionWithId[]>;
    all(callback: (err: Error | null, sessions?: SessionWithId[]) => void): void;
    /** The ids (without the prefix), flash-only sessions included. */
    ids(): Promise<string[]>;
    ids(callback: (err: Error | null, ids?: string[]) => void): void;
    /** How many sessions the namespace holds (with a prefix: how many ids carry it), flash-only ones included. */
    length(): Promise<number>;
    length(callback: (err: Error | null, length?: number) => void): void;
    /** Removes every session of the namespace (with a prefix: those with it), and with `migrateFrom` every session of the old store. */
    clear(): Promise<void>;
    clear(callback: (err: Error | null) => void): void;
    /**
     * With `migrateFrom`: moves every session of the old store to sessd now (a planned
     * cutover), `concurrency` at a time (default 16), as pages would move them. `moved`: moved
     * now; `already`: sessd held it (its old copy removed); `none`: gone since the listing.
     * The first failure rejects, with the counts so far as `err.progress`.
     */
    migrateAll(options?: { concurrency?: number }): Promise<MigrateAllResult>;
    migrateAll(callback: (err: Error | null, result?: MigrateAllResult) => void): void;
    migrateAll(options: { concurrency?: number }, callback: (err: Error | null, result?: MigrateAllResult) => void): void;
    /** Takes no new requests and, if the store opened its connections, closes them once those in flight finish. */
    close(): void;

    on(event: 'connect', listener: (hello: HelloReply) => void): this;
    on(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    on(event: 'gone', listener: (sid: string, sess: session.SessionData) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once(event: 'connect', listener: (hello: HelloReply) => void): this;
    once(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    once(event: 'gone', listener: (sid: string, sess: session.SessionData) => void): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
    addListener(event: 'connect', listener: (hello: HelloReply) => void): this;
    addListener(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    addListener(event: 'gone', listener: (sid: string, sess: session.SessionData) => void): this;
    addListener(event: string | symbol, listener: (...args: any[]) => void): this;
    prependListener(event: 'connect', listener: (hello: HelloReply) => void): this;
    prependListener(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    prependListener(event: 'gone', listener: (sid: string, sess: session.SessionData) => void): this;
    prependListener(event: string | symbol, listener: (...args: any[]) => void): this;
    prependOnceListener(event: 'connect', listener: (hello: HelloReply) => void): this;
    prependOnceListener(event: 'disconnect', listener: (err: ErrorWithCode) => void): this;
    prependOnceListener(event: 'gone', listener: (sid: string, sess: session.SessionData) => void): this;
    prependOnceListener(event: string | symbol, listener: (...args: any[]) => void): this;
  }

  interface FlashOptions {
    /**
     * The store whose connections, namespace and prefix are used; default `req.sessionStore`.
     * When that is not a SessdStore, flashes are kept in `req.session.flash` (not atomic: for tests).
     */
    store?: SessdStore;
    /** A Client to use directly instead of a store's, with `namespace` and `prefix`. */
    client?: Client;
    namespace?: Namespace;
    prefix?: string;
    /**
     * The first push to a session not yet in sessd sets `req.session._flash = true`, so that
     * express-session saves it and sends its cookie; a string names another property; false
     * turns this off. Default true.
     */
    markSession?: boolean | string;
    /** Called for every req.flash call that fails, awaited or not. If it throws, that becomes a process warning. */
    onError?: (err: ErrorWithCode, req: express.Request) => void;
    /** connect-flash's: true replaces a `req.flash` an earlier middleware set (default false: it stays, with a warning). */
    unsafe?: boolean;
  }

  interface FlashLocalsOptions {
    /** The request methods it pops on (default `['GET']`). */
    methods?: readonly string[];
  }

  /** Middleware that sets req.flash (see Express.Request#flash). Mount it after session(). */
  function flash(options?: FlashOptions): express.RequestHandler;

  namespace flash {
    /**
     * Middleware that pops every pending flash into `res.locals.flash` (`{ type: [messages] }`,
     * `{}` when none) on the listed methods. Mount it after flash().
     */
    function locals(options?: FlashLocalsOptions): express.RequestHandler;
  }

  /** An error status the daemon answered. */
  class SessdError extends Error {
    /** status: the wire number (codec.STATUS). */
    constructor(status: number, message: string, op?: number);
    /** The status's wire number (codec.STATUS); in earlier 0.1.0 builds this was `status`. */
    sessdStatus: number;
    /** The HTTP status, as `statusCode` (Express's `err.status || 500` convention). */
    status: 403 | 500 | 503;
    /** Its name, e.g. `'NOT_FOUND'`. */
    statusName: string;
    /** `'ESESSD_' + statusName`, except AUTH_FAILED: `'ESESSD_AUTH'`. */
    code: string;
    /** The opcode of the request it answers. */
    op: number | undefined;
    /**
     * true: the request was not carried out. SHUTTING_DOWN (a Client sends it again), BUSY
     * to the requests behind a HELLO that sessd refused (at --max-connections), and NO_MEMORY
     * or IO_ERROR answered to a request's first send (sessd changed nothing); unset on the
     * same statuses answered to a change sent again after its connection broke (its first
     * send may have been carried out).
     */
    notCarriedOut?: boolean;
    /** The HTTP status for an error handler: 503 for NO_MEMORY, IO_ERROR, BUSY and
     * SHUTTING_DOWN (sessd cannot take it now), 403 for FORBIDDEN (LIST, NAMESPACES or CLEAR
     * without sessd's --admin-auth-file secret), 500 for every other status. */
    statusCode: 403 | 500 | 503;
    /** false: the message is not for the visitor (as http-errors marks server errors). */
    expose: false;
  }

  /** SET_IF's tag of a session's data: the first 16 bytes of BLAKE2b-512 of the bytes. */
  function dataTag(data: string | Uint8Array): Buffer;

  /**
   * A new session id for express-session's `genid` option: 32 random bytes (256 bits) as
   * unpadded base64url, 43 characters, the ids libsessd and `sessctl new-id` make.
   * express-session's default has 192 bits. `session({ genid, store, ... })`.
   */
  function genid(req?: unknown): string;

  /** The wire protocol, version 1 (protocol/PROTOCOL.md): pure functions, no I/O. */
  namespace codec {
    const PROTOCOL_VERSION: 1;
    const HEADER_BYTES: 4;
    const DEFAULT_MAX_FRAME: 1048576;
    const MIN_MAX_FRAME: 4096;
    const MAX_DEPTH: 16;
    const MAX_TTL_MS: 316224000000;
    const TAG_BYTES: 16;
    const OP: {
      readonly HELLO: 0x01;
      readonly PING: 0x02;
      readonly RETIRE: 0x03;
      readonly GET: 0x10;
      readonly SET: 0x11;
      readonly TOUCH: 0x12;
      readonly DESTROY: 0x13;
      readonly SET_IF: 0x14;
      readonly TTL: 0x15;
      readonly LOAD: 0x16;
      readonly TOUCH_IF: 0x17;
      readonly FLASH_PUSH: 0x20;
      readonly FLASH_POP: 0x21;
      readonly FLASH_PUSH_EXISTING: 0x22;
      readonly DESTROY_IF_FLASH: 0x23;
      readonly COUNT: 0x30;
      readonly LIST: 0x31;
      readonly CLEAR: 0x32;
      readonly STATS: 0x33;
      readonly NAMESPACES: 0x34;
    };
    const STATUS: {
      readonly OK: 0;
      readonly NOT_FOUND: 1;
      readonly BAD_REQUEST: 2;
      readonly TOO_LARGE: 3;
      readonly NO_MEMORY: 4;
      readonly UNKNOWN_OP: 5;
      readonly BAD_VERSION: 6;
      readonly NOT_READY: 7;
      readonly IO_ERROR: 8;
      readonly AUTH_FAILED: 9;
      readonly INTERNAL: 10;
      readonly SHUTTING_DOWN: 11;
      readonly LIMIT: 12;
      readonly BUSY: 13;
      readonly CONFLICT: 14;
      readonly FORBIDDEN: 15;
    };
    /** Status number -> name. */
    const STATUS_NAME: { readonly [status: number]: string };
    /** The statuses after which the daemon closes the connection. */
    const CLOSING_STATUSES: ReadonlySet<number>;

    /** A reply (or, decoding requests, a request) that breaks PROTOCOL.md. */
    class ProtocolError extends Error {
      /** status: what a server answers for such input (default BAD_REQUEST). */
      constructor(message: string, status?: number);
      /** The wire status a server answers for such input; in earlier 0.1.0 builds this was `status`. */
      sessdStatus: number;
      statusName: string;
      code: 'ESESSD_PROTOCOL';
      /** The HTTP status for an error handler: 500 (a faulty server). */
      statusCode: 500;
      /** As statusCode. */
      status: 500;
      expose: false;
      /** Set by decodeRequestBody on an UNKNOWN_OP error: the request's id. */
      requestId?: number | bigint;
    }

    /** A request argument that is already MessagePack, written as it is. */
    class RawValue {
      constructor(bytes: Uint8Array);
      bytes: Uint8Array;
    }

    /** nil, uint, str, bin, or raw MessagePack. */
    type RequestArg = null | undefined | number | bigint | string | Uint8Array | RawValue;

    interface DecodedReply {
      requestId: number | bigint;
      status: number;
      /** OK: the decoded result; NOT_FOUND: null; an error status: its message. */
      result: unknown;
      /** The result's own MessagePack encoding, a view into the body. */
      resultBytes: Buffer;
      /** Decoded with an op: set (and result undefined) when an OK result's types are not
       * that opcode's; it was not decoded. */
      resultError?: ProtocolError;
    }

    /** A request's fields, named as in protocol/vectors.json; those of its opcode are set. */
    interface DecodedRequest {
      op: number;
      request_id: number | bigint;
      version?: number | bigint;
      client_name?: string;
      auth_hex?: string;
      ns?: string | null;
      id?: string;
      id_hex?: string;
      data_hex?: string;
      ttl_ms?: number;
      expect_hex?: string;
      type?: string | null;
      msg?: string;
      msg_hex?: string;
      cursor?: number | bigint;
      limit?: number;
    }

    /** The whole frame (header included) of the request [op, requestId, ...args]. */
    function encodeRequest(op: number, requestId: number | bigint, args: readonly RequestArg[]): Buffer;
    /** A whole reply frame; resultBytes is the result's own MessagePack encoding. */
    function encodeReply(requestId: number | bigint, status: number, resultBytes: Uint8Array): Buffer;
    /** The body length announced at offset, checked against maxFrame. */
    function readFrameLength(buf: Buffer, offset: number, maxFrame: number): number;
    /** The body of one whole frame, checked. */
    function splitFrame(frame: Buffer, maxFrame?: number): Buffer;
    /** The offset just past the MessagePack value starting at pos. */
    function scanValue(buf: Buffer, pos: number, end: number): number;
    function decodeReply(frame: Buffer, maxFrame?: number): DecodedReply;
    /** With op, checks the reply as an answer to that opcode (an OK result's types before it
     * is decoded: see resultError); op null: an OK result is not decoded; maxFrame bounds a
     * FLASH_POP result. */
    function decodeReplyBody(body: Buffer, op?: number | null, maxFrame?: number): DecodedReply;
    function decodeRequest(frame: Buffer, maxFrame?: number): DecodedRequest;
    function decodeRequestBody(body: Uint8Array): DecodedRequest;
    /** A bigint that a number holds exactly, as a number; anything else unchanged. */
    function normalizeInt(v: bigint): number | bigint;
    function normalizeInt<T>(v: T): T | number;
    /** A string as itself, anything else as its MessagePack encoding. */
    function encodeFlashMessage(msg: unknown): string | Uint8Array;
    /** The reverse; bytes that are not MessagePack come back as a Buffer. */
    function decodeFlashMessage(msg: string | Uint8Array): unknown;
  }
}

export = connectSessd;
