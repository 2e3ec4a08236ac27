'use strict';
// One socket to sessd: HELLO first, then pipelined requests answered in order
// (PROTOCOL.md "Ordering and pipelining"), so pending requests are a FIFO and the reply's
// request_id is only a check.

const crypto = require('crypto');
const net = require('net');
const os = require('os');
const util = require('util');
const { EventEmitter } = require('events');
const codec = require('./codec');
const { KeyExchange } = require('./seal');

const { OP, STATUS, STATUS_NAME } = codec;
// A TCP connection idle this long is probed (see connect()).
const KEEPALIVE_IDLE_MS = 60000;
// This process's identity in HELLO (PROTOCOL.md "HELLO": the process identity), so that sessd
// at --max-connections tells the processes of one host apart over TCP: the pid, and a random
// value drawn when this module loads, which a restarted process (its pid perhaps reused) and
// every cluster worker (a process of its own, loading its own modules) draw anew.
const PROCESS_ID = `${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
// HELLO's client_name holds at most 64 bytes.
const HELLO_NAME_BYTES = 64;

// helloName(name): the client_name a HELLO carries: the name for people, a NUL (which no name
// holds: a name stops at its first one, see below) and PROCESS_ID, the name cut short by
// whole characters should the three pass 64 bytes (sessd uses the identity, not the name).
function helloName(name) {
  const chars = [...String(name).split('\0')[0]];
  const room = HELLO_NAME_BYTES - 1 - PROCESS_ID.length;
  while (Buffer.byteLength(chars.join('')) > room) chars.pop();
  return `${chars.join('')}\0${PROCESS_ID}`;
}

// The requests that change something in the store (or take flash messages): their outcome
// matters when their connection is given up on (see fail, onGiveUp). RETIRE itself is none:
// held and delivered late, it closes a connection that is gone already.
const CHANGE_OPS = new Set([OP.SET, OP.SET_IF, OP.TOUCH, OP.TOUCH_IF, OP.DESTROY, OP.DESTROY_IF_FLASH, OP.FLASH_PUSH, OP.FLASH_PUSH_EXISTING, OP.FLASH_POP, OP.CLEAR]);

// writeFailed(socket): whether a write of socket failed (its Writable's error, which
// readOnAfterWriteError leaves set; Node has no public getter of it for a Duplex).
function writeFailed(socket) {
  const ws = socket._writableState;
  return ws !== undefined && ws.errored !== null && ws.errored !== undefined;
}

// An opcode's name, for the words of an error an app logs ("GET", not "op 0x10").
const OP_NAME = Object.fromEntries(Object.entries(OP).map(([name, op]) => [op, name]));

// The smallest max_frame a server may announce (PROTOCOL.md "Limits"): a frame this size
// is safe to send before the HELLO reply tells the real limit, and the limit of a server
// whose HELLO reply does not tell it.
const MIN_MAX_FRAME = codec.MIN_MAX_FRAME;
// The most max_frame this client believes. The limit bounds the replies it reads too, and a
// reply is buffered whole before it is decoded: taken at its word, a faulty or hostile server
// announcing 2^64-1 could make one connection hold up to 4 GiB (a frame's length is 32 bits).
// 2 GiB is far above any session store's frames (sessd's default is 1 MiB).
const MAX_TRUSTED_FRAME = 2 ** 31;
// How long a connection whose write failed is read on for the reply that says why sessd
// closed it (see readOnAfterWriteError). That reply was sent before the close that failed the
// write, so it is already in the socket; this only bounds a peer that never closes.
const WRITE_ERROR_READ_MS = 1000;

// flightKey(key): a session key (an id, a string or bytes) as a Map key: bytes as the string
// of their UTF-8, so that the same id given both ways is one session (bytes that are not UTF-8
// may share a string with another id: that only keeps the two on one connection).
function flightKey(key) {
  return typeof key === 'string' ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8');
}

// A connection with a frame this large to write or read is transferring: the pool sends the
// requests that may go elsewhere to another connection (Client.passConnection), so that they
// do not wait behind its bytes.
const TRANSFER_BYTES = 64 * 1024;

// The buffer a pass's frames are encoded into starts this large (a page view's two frames are
// about 150 bytes) and is kept between passes up to PASS_BUFFER_KEPT: one grown by a large
// save is let go once written.
const PASS_BUFFER_BYTES = 16 * 1024;
const PASS_BUFFER_KEPT = TRANSFER_BYTES;

// helloMaxFrame(hello): the frame limit a HELLO result (checked by codec.decodeReplyBody)
// sets: its max_frame, MIN_MAX_FRAME when it has none, at most MAX_TRUSTED_FRAME.
function helloMaxFrame(hello) {
  if (hello.max_frame === undefined) return MIN_MAX_FRAME;
  const mf = codec.normalizeInt(hello.max_frame);
  return mf > MAX_TRUSTED_FRAME ? MAX_TRUSTED_FRAME : mf;
}

// The code of every authentication failure: the server answered AUTH_FAILED (a SessdError),
// requireAuth found a server that did not check the secret, or a sealed connection's server
// did not prove it holds the secret (plain Errors).
const AUTH_CODE = 'ESESSD_AUTH';

// The wire statuses whose SessdError is an HTTP 503: sessd cannot take the request now, and
// will once it has room or is back (NO_MEMORY: at --max-memory; IO_ERROR: its disk is full
// or failing; BUSY: it holds too much for stalled clients; SHUTTING_DOWN: it is stopping).
// FORBIDDEN is a 403: LIST, NAMESPACES or CLEAR (store.all(), ids(), clear()) from a client
// without the admin secret of a sessd with --admin-auth-file. Every other status is a 500:
// retrying the same request will not help (a request it refused, a per-session LIMIT, a
// configuration error such as AUTH_FAILED).
const UNAVAILABLE_STATUSES = new Set([STATUS.NO_MEMORY, STATUS.IO_ERROR, STATUS.BUSY, STATUS.SHUTTING_DOWN]);
// The statuses of a request that sessd answered having changed nothing, for want of memory or
// of disk: its SessdError says notCarriedOut.
const REFUSED_STATUSES = new Set([STATUS.NO_MEMORY, STATUS.IO_ERROR]);

class SessdError extends Error {
  // An error status the server answered. sessdStatus: the wire number (codec.STATUS);
  // statusName: its name; statusCode and status: the HTTP status an error handler should
  // answer (with expose false, as http-errors has them). status was the wire number in
  // earlier 0.1.0 builds: Express's convention is an HTTP one, and express-generator's
  // handler (res.status(err.status || 500)) threw RangeError on a wire status such as 12.
  constructor(status, message, op) {
    super(`sessd ${STATUS_NAME[status] || 'status ' + status}: ${message}`);
    this.name = 'SessdError';
    this.sessdStatus = status;
    this.statusName = STATUS_NAME[status] || String(status);
    // AUTH_FAILED is ESESSD_AUTH, the code every authentication failure has.
    this.code = status === STATUS.AUTH_FAILED ? AUTH_CODE : 'ESESSD_' + this.statusName;
    this.op = op;
    this.statusCode = UNAVAILABLE_STATUSES.has(status) ? 503 : status === STATUS.FORBIDDEN ? 403 : 500;
    this.status = this.statusCode;
    this.expose = false;
  }
}

// connectionError(code, message): a transport failure (a timeout, a broken connection):
// the request may or may not have been carried out. statusCode (and status) 503, expose
// false, as http-errors has them, so that Express's error handler answers 503 (sessd is
// hung or gone), not 500, as SessdError has them.
function connectionError(code, message) {
  const err = new Error(message);
  err.code = code;
  err.status = 503;
  err.statusCode = 503;
  err.expose = false;
  return err;
}

// brokenError(err): the error of the request that a connection broken by err fails first.
// The socket's own errors (EPIPE, ECONNRESET, ...: a crashed sessd) have no statusCode, and an
// app would answer them 500: they become a connectionError of the same code, with err as its
// cause, so that the log still names it. The errors that already carry a statusCode, a
// ProtocolError (a faulty server) and an error without a code (a bug here) stay as they are.
function brokenError(err) {
  if (err.statusCode !== undefined || err instanceof codec.ProtocolError || typeof err.code !== 'string') return err;
  const wrapped = connectionError(err.code, `sessd connection failed: ${err.message}`);
  wrapped.cause = err;
  if (err.errno !== undefined) wrapped.errno = err.errno;
  if (err.syscall !== undefined) wrapped.syscall = err.syscall;
  return wrapped;
}

// unavailableError(message, cause): the error of a request that was not carried out because
// sessd is down or restarting: code ESESSD_DISCONNECTED, and status 503 (with statusCode and
// expose: false, as http-errors has them), so that the error handler of Express answers 503,
// as the app answers requests that come while the store is disconnected, not 500.
function unavailableError(message, cause) {
  const err = connectionError('ESESSD_DISCONNECTED', message);
  err.notCarriedOut = true;
  if (cause) err.cause = cause;
  return err;
}

// connectedToSelf(socket): whether a TCP socket that just connected reached itself. With
// nothing listening on a port of the ephemeral range, the kernel may pick that very port as
// the local one, and the SYN meets itself: a simultaneous open that "connects". Only our own
// bytes would come back (our HELLO, read as a malformed reply), and the socket, closed
// normally, would hold the port in TIME_WAIT for a minute, so that the daemon restarting
// there could not bind it.
function connectedToSelf(socket) {
  return socket.remotePort !== undefined && socket.localPort === socket.remotePort &&
    socket.localAddress === socket.remoteAddress;
}

// selfConnectError(address, port): the error of a connection that reached itself: the one a
// refused connect has (code ECONNREFUSED, as net gives it), since nobody listens there.
function selfConnectError(address, port) {
  const err = connectionError('ECONNREFUSED', `connect ECONNREFUSED ${address}:${port} (the connection reached itself: nothing listens on that port)`);
  err.errno = -os.constants.errno.ECONNREFUSED;
  err.syscall = 'connect';
  err.address = address;
  err.port = port;
  return err;
}

// sessd's --auth-file takes 16..1024 bytes (daemon/auth.h): a secret outside that range can
// never match, and would show only at connect time as a refused secret.
const MIN_AUTH_BYTES = 16;
const MAX_AUTH_BYTES = 1024;

// checkAuth(auth): the shared secret option as a fresh Buffer (the caller's may change
// later), or null when none is given. A string is sent as its UTF-8 bytes. Messages tell the
// type or length at most, never the secret.
function checkAuth(auth) {
  if (auth === undefined || auth === null) return null;
  let bytes;
  if (typeof auth === 'string') bytes = Buffer.from(auth, 'utf8');
  else if (auth instanceof Uint8Array) bytes = Buffer.from(auth); // a copy
  else throw new TypeError(`auth must be a string, a Buffer or a Uint8Array, got ${Array.isArray(auth) ? 'an array' : typeof auth}`);
  // As sessd reads its --auth-file: one trailing "\n" or "\r\n" is not part of the secret.
  // The recipe for a secret (base64 > FILE) ends it with one, and fs.readFileSync keeps it.
  let len = bytes.length;
  if (len > 0 && bytes[len - 1] === 0x0a) len -= len > 1 && bytes[len - 2] === 0x0d ? 2 : 1;
  if (len < bytes.length) {
    const whole = bytes;
    bytes = Buffer.from(whole.subarray(0, len));
    whole.fill(0);
  }
  if (bytes.length < MIN_AUTH_BYTES || bytes.length > MAX_AUTH_BYTES) {
    bytes.fill(0);
    throw new RangeError(`auth must be ${MIN_AUTH_BYTES}..${MAX_AUTH_BYTES} bytes (as sessd's --auth-file), got ${bytes.length}; ` +
      'make one with: (umask 077; head -c 32 /dev/urandom | base64 > FILE)');
  }
  return bytes;
}

// checkRequireAuth(requireAuth, auth): the requireAuth option as a boolean.
function checkRequireAuth(requireAuth, auth) {
  if (requireAuth === undefined) return false;
  if (typeof requireAuth !== 'boolean') throw new TypeError(`requireAuth must be a boolean, got ${typeof requireAuth}`);
  if (requireAuth && auth === null) throw new TypeError('requireAuth needs the auth option (the shared secret)');
  return requireAuth;
}

// checkSeal(seal, auth): the seal option as a boolean: by default, sealed whenever there is a
// secret (PROTOCOL.md: the way to use one); false keeps the plain HELLO that sends it.
function checkSeal(seal, auth) {
  if (seal === undefined) return auth !== null;
  if (typeof seal !== 'boolean') throw new TypeError(`seal must be a boolean, got ${typeof seal}`);
  if (seal && auth === null) throw new TypeError('seal needs the auth option (the shared secret)');
  return seal;
}

// tooLarge(frameBytes, maxFrame, op, args): the error of a request refused here for its size. For a
// save it names the largest session data that fits: the number an app can act on (the
// request's size includes the framing, the namespace and the id). sessd takes at most
// max_frame - 16 bytes of data (PROTOCOL.md "Limits"), so that its GET reply fits too.
function tooLarge(frameBytes, maxFrame, op, args) {
  let message = `request of ${frameBytes - codec.HEADER_BYTES} bytes over max_frame ${maxFrame}`;
  if ((op === OP.SET || op === OP.SET_IF) && args && Buffer.isBuffer(args[2])) {
    const overhead = frameBytes - codec.HEADER_BYTES - args[2].length;
    const fits = Math.min(maxFrame - overhead, maxFrame - 16);
    message += `: the session's data (serialized) is ${args[2].length} bytes, and at most ${fits} fit`;
  }
  return new SessdError(STATUS.TOO_LARGE, message, op);
}

// The longest Unix socket path, in bytes (sockaddr_un.sun_path holds 108 with the NUL): a
// longer one would reach another socket, cut short, or fail only at connect time.
const MAX_SOCKET_PATH = 107;
// The longest DNS name (RFC 1035).
const MAX_HOST = 253;

// socketPath(path, url): net.connect options for the Unix socket path, checked as libsessd
// checks it (client/url.c).
function socketPath(path, url) {
  if (path.length === 0) throw badUrl(url, 'empty socket path');
  if (path.includes('\0')) throw badUrl(url, 'a NUL byte in the socket path');
  if (Buffer.byteLength(path, 'utf8') > MAX_SOCKET_PATH) throw badUrl(url, 'socket path too long');
  return { path };
}

// badUrl(url, why): the error of a url refused for why; the url shown with each character
// outside printable ASCII as '?', as libsessd shows it (it may come from the environment, and
// reach a terminal).
function badUrl(url, why) {
  return new TypeError(`bad sessd url '${url.replace(/[^\x20-\x7e]/g, '?')}': ${why}`);
}

// parseUrl(url): net.connect options for the forms libsessd and sessctl take too (client/url.c,
// whose reasons these are), so that an address copied between them means the same socket:
// "unix:/path" (also "unix:///path", and "unix:relative/path"), a bare absolute "/path", or
// "tcp://host:port" (a "/" after the port allowed), host a name, an IPv4 address or a
// bracketed IPv6 address. "unix://x" is refused: taken here as the relative path x, it was the
// absolute /x to libsessd.
function parseUrl(url) {
  if (typeof url !== 'string') throw new TypeError('sessd url must be a non-empty string');
  if (url.length === 0) throw badUrl(url, 'empty URL');
  if (url.startsWith('unix:')) {
    let path = url.slice(5);
    if (path.startsWith('//')) {
      if (path[2] !== '/') throw badUrl(url, 'unix:// must be followed by an absolute path (unix:///path; a relative one is unix:path)');
      path = path.slice(2);
    }
    return socketPath(path, url);
  }
  if (url.startsWith('/')) return socketPath(url, url);
  if (!url.startsWith('tcp://')) throw badUrl(url, 'the URL must be unix:PATH, an absolute socket path (/PATH) or tcp://HOST:PORT');
  const rest = url.slice(6);
  let host;
  let port;
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']');
    if (end === -1) throw badUrl(url, "unclosed '[' in the host");
    if (rest[end + 1] !== ':') throw badUrl(url, 'a port must follow the bracketed host');
    host = rest.slice(1, end);
    port = rest.slice(end + 2);
    if (!/^[0-9a-fA-F:.%]*$/.test(host)) throw badUrl(url, 'bad character in the IPv6 address');
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon === -1) throw badUrl(url, 'missing :port after the host');
    host = rest.slice(0, colon);
    port = rest.slice(colon + 1);
    if (!/^[A-Za-z0-9._-]*$/.test(host)) throw badUrl(url, 'bad character in the host (IPv6 needs [brackets])');
  }
  if (host.length === 0) throw badUrl(url, 'empty host');
  if (host.length > MAX_HOST) throw badUrl(url, 'host name too long');
  const m = /^([0-9]{1,5})\/?$/.exec(port);
  const n = m ? Number(m[1]) : 0;
  if (n < 1 || n > 65535) throw badUrl(url, 'the port must be a number from 1 to 65535');
  return { host, port: n };
}

// Connection events: 'ready' (hello info) once HELLO succeeded; 'close' (err or null) once,
// after every pending request was rejected.
class Connection extends EventEmitter {
  // The key exchange of a sealed connection until its HELLO reply, then its record writer
  // and reader: private, so that util.inspect never shows them.
  #kx = null;
  #writer = null;
  #reader = null;

  // opts: url, timeoutMs (per request, 0 = none), connectTimeoutMs, clientName, auth (the
  // shared secret: string or bytes), requireAuth (fail unless the server checked it), seal
  // (default: true when auth is given).
  constructor(opts) {
    super();
    // The shared secret is only needed for the HELLO below: it is not kept. Sealed, only the
    // psk derived from it is, until the HELLO reply.
    let auth = checkAuth(opts.auth);
    this.requireAuth = checkRequireAuth(opts.requireAuth, auth);
    this.sealed = checkSeal(opts.seal, auth);
    if (this.sealed) {
      this.#kx = new KeyExchange(auth);
      auth.fill(0);
      auth = new codec.RawValue(this.#kx.auth);
    }
    this.url = opts.url;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.clientName = opts.clientName ?? 'connect-sessd';
    this.maxFrame = codec.DEFAULT_MAX_FRAME;
    this.hello = null;
    this.state = 'connecting';
    // Set by the pool: what becomes of the requests a SHUTTING_DOWN or a break leaves (see fail).
    this.onNotCarriedOut = null;
    this.onBroken = null;
    // Set by the pool: told (with this connection's serverKey) when a sealed connection is
    // given up on with a change in flight whose outcome is unknown (see fail).
    this.onGiveUp = null;
    // Sealed, once the HELLO reply proved the server: its s_pk, which RETIRE names it by.
    this.serverKey = null;
    // FIFO of { id, op, args, key, flight, retried, resolve, reject, deadline, held }; flight
    // is the key's flightKey (undefined without a key), computed once for inFlight's uses.
    this.pending = [];
    this.head = 0; // index of the oldest pending entry (shifting an array is O(n))
    this.nextId = 1;
    // The sessions (flightKey of the key) with requests pending here, each with the id of its
    // latest one: the pool sends a session's next request here while it has one (see
    // Client.pick), so that they are answered in order.
    this.inFlight = new Map();
    // Unparsed bytes, as the chunks that brought them: joined only once rneed bytes (the
    // next frame's header, then the whole frame) are there, so a large reply arriving in
    // many chunks is copied once, not once per chunk.
    this.rchunks = null;
    this.rlen = 0;
    this.rneed = 0;
    this.timer = null;
    this.deadlineCheck = null; // the Immediate that checks a deadline (see armTimer())
    // The bytes of the frames written in this pass, that leave together at its end (see
    // reserve()): the pool gives this connection the pass's other requests (see
    // Client.passConnection).
    this.passBytes = 0;
    // The requests written since the last flush: their deadlines count from it (see reserve()).
    this.unflushed = [];
    // The frames of this pass, encoded one after the other into passBuf (see reserve()), and
    // the flush at the pass's end that writes them.
    this.passBuf = null;
    this.passLen = 0;
    // The request of passBuf's first frame: it and every later one are unsent (see fail).
    this.passFirst = null;
    this.flushing = false;
    this.flushPass = () => this.flush();
    // Frames wait in pending[].held until the HELLO reply: the large ones (see send()), and
    // with requireAuth or sealed every one, so that nothing reaches a server that did not
    // check the secret (sealed: that did not prove it holds it; PROTOCOL.md has the client
    // send nothing after its HELLO until then).
    this.holding = this.requireAuth || this.sealed;

    this.socket = net.connect(parseUrl(this.url));
    this.socketConnected = false; // until then, nothing written has reached the daemon
    this.socket.on('connect', () => {
      if (connectedToSelf(this.socket)) {
        // Before the queued HELLO is written (its write waits on a 'connect' listener
        // added after this one). A reset leaves no TIME_WAIT to hold the port.
        const { remoteAddress, remotePort } = this.socket;
        if (typeof this.socket.resetAndDestroy === 'function') this.socket.resetAndDestroy();
        else this.socket.destroy();
        this.fail(selfConnectError(remoteAddress, remotePort));
        return;
      }
      this.socketConnected = true;
    });
    this.socket.setNoDelay(true);
    // Probed by the kernel once idle a minute (as sessd's --tcp-keepalive default): a pool
    // connection that a NAT or load balancer dropped for being quiet, or whose sessd's host
    // vanished, is found while idle and replaced, not by a request timing out into a 503.
    // A no-op on a Unix socket.
    this.socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    this.writeError = null; // a failed write whose connection is read to its end (see readOnAfterWriteError)
    this.writeErrorTimer = null;
    this.readOnAfterWriteError();
    this.socket.on('data', (chunk) => this.onData(chunk));
    // The socket's own errors and its end are a connection broken under its requests (see
    // fail); errors found here (a timeout, a malformed reply) are not.
    this.socket.on('error', (err) => this.fail(err, undefined, true));
    // A connection read on after a failed write fails with that error when no reply said why.
    this.socket.on('end', () => this.writeError && this.fail(this.writeError, undefined, true));
    this.socket.on('close', () => this.fail(this.writeError || connectionError('ECONNRESET', 'sessd connection closed'), undefined, true));
    if (this.connectTimeoutMs > 0) {
      // Checked after the poll phase, as a request's deadline is (see armTimer()): a HELLO
      // reply that came during a stall of the event loop is read first.
      this.connectTimer = setTimeout(() => setImmediate(() => {
        if (this.hello) return;
        // Given up with a reset, as a request that timed out is (see checkDeadline): the
        // requests queued behind the HELLO, a FLASH_POP among them, are in a stalled daemon's
        // socket too.
        this.abandonSocket();
        this.fail(connectionError('ETIMEDOUT', `sessd HELLO not answered within ${this.connectTimeoutMs} ms`));
      }), this.connectTimeoutMs);
      this.connectTimer.unref?.();
    }
    // The HELLO goes first; requests queued behind it are written to the socket before it
    // connects and are answered after the HELLO reply, except large ones (see send()).
    // A HELLO reply that is not a valid HELLO map fails the connection in onData, as every
    // malformed reply does; onReply has set maxFrame from a valid one.
    this.send(OP.HELLO, [codec.PROTOCOL_VERSION, helloName(this.clientName), auth], 0).then((info) => {
      clearTimeout(this.connectTimer);
      this.hello = info;
      this.serverId = info.server_id;
      if (this.state === 'closed') return;
      this.releaseHeld();
      if (this.state !== 'connecting') return; // draining meanwhile
      this.state = 'ready';
      this.announcedReady = true;
      this.emit('ready', info);
    }, (err) => this.fail(err));
  }

  // readOnAfterWriteError(): a write that fails (EPIPE, ECONNRESET: sessd closed the
  // connection) may come after sessd said why it closed: at --max-connections it answers
  // BUSY and closes, and over a Unix socket the HELLO's write then fails while the BUSY waits
  // to be read (PROTOCOL.md "Transport and frames"). Node destroys a socket at a write error,
  // which throws that reply away: the destroy is put off, and the connection read on, until
  // its end (at most WRITE_ERROR_READ_MS), so that the reply's status is the error (BUSY, and
  // a 503), not "write EPIPE". Nothing more is written meanwhile (the state is 'draining').
  readOnAfterWriteError() {
    const socket = this.socket;
    const destroy = socket.destroy;
    socket.destroy = (err) => {
      const deferrable = err && err.syscall === 'write' && this.writeError === null && this.state !== 'closed' && !socket.readableEnded;
      if (!deferrable) return destroy.call(socket, err);
      // The stream marks its readable side failed too, and would drop what it reads: undo
      // that. A Node whose stream state does not allow it loses the reply, as before.
      const rs = socket._readableState;
      if (rs && rs.errored === err) rs.errored = null;
      if (!rs || rs.errored) return destroy.call(socket, err);
      const wasReady = this.state === 'ready';
      this.writeError = err;
      if (this.isOpen) this.state = 'draining';
      this.writeErrorTimer = setTimeout(() => this.fail(err, undefined, true), WRITE_ERROR_READ_MS);
      this.writeErrorTimer.unref?.();
      // It takes no more requests: the pool must not count it as ready while it reads on
      // (see Client, 'unready').
      if (wasReady) this.emit('unready', err);
      return socket;
    };
  }

  // util.inspect shows a summary, without the socket: until it has connected and written
  // the HELLO, its write queue holds the frame, and (not sealed) the shared secret in it.
  [util.inspect.custom](depth, options, inspect = util.inspect) {
    const shown = { url: this.url, state: this.state, sealed: this.sealed, pending: this.pendingCount, serverId: this.serverId, maxFrame: this.maxFrame };
    return depth < 0 ? '[Connection]' : 'Connection ' + inspect(shown, { ...options, depth: options.depth === null ? null : options.depth - 1 });
  }

  get isOpen() {
    return this.state === 'connecting' || this.state === 'ready';
  }

  // transferring: whether this connection is moving a large frame: TRANSFER_BYTES or more
  // written in this pass or still queued in the socket, or a reply that large partly read.
  get transferring() {
    return this.passBytes >= TRANSFER_BYTES || this.socket.writableLength >= TRANSFER_BYTES ||
      (this.rchunks !== null && this.rneed >= TRANSFER_BYTES);
  }

  get pendingCount() {
    return this.pending.length - this.head;
  }

  // request(op, args, key, retried): a promise of { status, result } for OK and NOT_FOUND;
  // rejects with SessdError for other statuses, or with the transport error that closed the
  // connection. key (the session's, or undefined) and retried (false, or for a request the
  // pool sends again, its record of the earlier attempts: see Client.resend) are kept on the
  // entry for onNotCarriedOut and onBroken.
  request(op, args, key, retried = false) {
    return this.send(op, args, this.timeoutMs, key, retried);
  }

  send(op, args, timeoutMs, key, retried = false) {
    if (!this.isOpen) return Promise.reject(connectionError('ESESSD_CLOSED', 'sessd connection is closed'));
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    // A page's requests are measured here and written straight into the pass's buffer (see
    // reserve()); the rest (a bigint, a sealed HELLO's auth map) are encoded by Writer first.
    let size = codec.shortFrameSize(op, id, args);
    let frame = null;
    if (size < 0) {
      try {
        frame = codec.encodeRequestFull(op, id, args);
      } catch (err) {
        return Promise.reject(err);
      }
      size = frame.length;
    }
    // A frame over max_frame would make the server close the connection under every other
    // pending request; refuse it here instead.
    if (size - codec.HEADER_BYTES > this.maxFrame) return Promise.reject(tooLarge(size, this.maxFrame, op, args));
    // Until the HELLO reply announces max_frame, a frame over the smallest one a server
    // may have waits (and, to keep the order, every frame after it): sent blind, one over
    // the server's limit would close the connection under the other requests.
    const held = !this.hello && op !== OP.HELLO && (this.holding || size - codec.HEADER_BYTES > MIN_MAX_FRAME);
    if (held && frame === null) {
      frame = Buffer.allocUnsafe(size);
      codec.putShortFrame(frame, 0, size, op, id, args);
    }
    return new Promise((resolve, reject) => {
      const flight = key === undefined ? undefined : flightKey(key);
      const entry = { id, op, args, key, flight, retried, resolve, reject, deadline: timeoutMs > 0 ? Date.now() + timeoutMs : 0, held: null };
      this.pending.push(entry);
      if (flight !== undefined) this.inFlight.set(flight, id);
      if (entry.deadline && !this.timer) this.armTimer(timeoutMs);
      if (held) {
        this.holding = true;
        entry.held = frame;
      } else if (frame !== null) {
        this.write(frame, entry);
      } else {
        const at = this.reserve(size, entry); // may grow passBuf: read it after
        codec.putShortFrame(this.passBuf, at, size, op, id, args);
      }
    });
  }

  // reserve(bytes, entry): the offset in passBuf where the next frame, bytes long, of entry's
  // request (null: none) goes. Requests made in one pass of the event loop leave together,
  // written at the pass's check phase (setImmediate): plain, in one write; sealed, in as few
  // records as they fit (one record per frame would cost 20 bytes and a cipher run each).
  // Not the next tick, which comes after every callback: an app serving many requests at once
  // makes its requests from many callbacks of one poll phase, and a write each cost sessd a
  // wakeup, a read and a write per request (an acceptance review: 0.40 of each per operation
  // against Redis's 0.04 with node-redis, which batches per pass too; sessd's CPU per request
  // fell 45% with this). The frames are encoded into one buffer, kept from pass to pass,
  // rather than written to the corked socket a Buffer each: the socket's Writable queued an
  // entry per frame and gathered them again in its writev, and every frame was a Buffer of
  // its own (stop 57: 6% fewer instructions for a page view's two calls of the client; in
  // store-ops.js a page view's get+touch 0.89x the app's CPU at load 14-27, within the spread
  // on an idle machine).
  // A request's deadline counts from the flush that sends it: a callback later in the same
  // pass that stalls the loop (a sync bcrypt, a GC pause) delays the flush, and the request
  // must not time out before sessd could see it (an acceptance review: 10 of 10 failed so,
  // with a 300 ms stall and timeoutMs 100, where sending at once failed none).
  reserve(bytes, entry) {
    if (entry !== null && entry.deadline) this.unflushed.push(entry);
    this.passBytes += bytes;
    const at = this.passLen;
    if (at === 0) this.passFirst = entry;
    if (this.passBuf === null || at + bytes > this.passBuf.length) {
      const grown = Buffer.allocUnsafe(Math.max(PASS_BUFFER_BYTES, 2 * (at + bytes)));
      if (at > 0) this.passBuf.copy(grown, 0, 0, at);
      this.passBuf = grown;
    }
    this.passLen = at + bytes;
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flushPass);
    }
    return at;
  }

  // write(frame, entry): sends a whole frame made beforehand (held for the HELLO reply, or
  // encoded by Writer) with this pass's.
  write(frame, entry = null) {
    const at = this.reserve(frame.length, entry);
    frame.copy(this.passBuf, at);
  }

  // flush(): writes the pass's frames (sealed, as records). Record numbers follow the order of
  // the socket's writes, since every write after HELLO comes through here. The buffer is kept
  // for the next pass once the socket has taken every byte (a write the kernel took whole
  // leaves nothing queued; a queued one holds the buffer until it is written), unless a
  // large frame grew it past PASS_BUFFER_KEPT. Behind a queued write (sessd slow or stopped)
  // the frames go as a copy of their own size: a pass buffer queued for each pass's few bytes
  // would hold 16 KiB or more a pass until the requests time out.
  flush() {
    this.flushing = false;
    this.passBytes = 0;
    this.restampDeadlines();
    const len = this.passLen;
    if (this.state === 'closed' || len === 0) return;
    // A socket whose end came (sessd closed the connection, or it broke), or whose write
    // failed (its stream then queues what it is given and never writes it), writes nothing
    // more: the frames stay unsent, and the 'close' that follows hands their requests on (see
    // fail).
    if (this.socket.readableEnded || this.socket.writableEnded || this.socket.destroyed || writeFailed(this.socket)) return;
    const first = this.passFirst;
    this.passLen = 0;
    this.passFirst = null;
    const buf = this.passBuf;
    if (this.#writer) {
      let records;
      try {
        records = this.#writer.seal(buf.subarray(0, len));
      } catch (err) {
        this.fail(err);
        return;
      }
      if (buf.length > PASS_BUFFER_KEPT) this.passBuf = null;
      this.socket.write(records);
      this.keepIfRefused(buf, len, first);
      return;
    }
    if (this.socket.writableLength !== 0 && buf.length <= PASS_BUFFER_KEPT) {
      this.socket.write(Buffer.from(buf.subarray(0, len)));
      return;
    }
    this.socket.write(buf.subarray(0, len));
    if (this.socket.writableLength !== 0 || buf.length > PASS_BUFFER_KEPT) this.passBuf = null;
    this.keepIfRefused(buf, len, first);
  }

  // keepIfRefused(buf, len, first): after flush's write of the pass (len bytes of buf, first
  // the request of its first frame) to a socket with nothing queued, the pass is unsent again
  // when that write failed at once. Node writes at once what the kernel takes and queues the
  // rest; a write that fails there (EPIPE: sessd died after this pass's poll phase began, so
  // its end is not read yet) took no byte (libuv's try-write fails only when it wrote none),
  // so none of its requests reached sessd: a flash push or pop made in the pass is sent again,
  // not failed as broken under it.
  keepIfRefused(buf, len, first) {
    if (!writeFailed(this.socket) || this.state === 'closed') return;
    this.passBuf = buf;
    this.passLen = len;
    this.passFirst = first;
  }

  // forget(entry): entry, no longer in pending (refused by releaseHeld), is not its session's
  // latest request here any more: the one before it still pending is, if there is one.
  forget(entry) {
    const k = entry.flight;
    if (k === undefined || this.inFlight.get(k) !== entry.id) return;
    this.inFlight.delete(k);
    for (let i = this.pending.length - 1; i >= this.head; i--) {
      const e = this.pending[i];
      if (e.flight === k) {
        this.inFlight.set(k, e.id);
        return;
      }
    }
  }

  // restampDeadlines(): the requests about to leave are due timeoutMs from now.
  restampDeadlines() {
    if (this.unflushed.length === 0) return;
    const deadline = Date.now() + this.timeoutMs;
    for (const entry of this.unflushed) entry.deadline = deadline;
    this.unflushed = [];
  }

  // releaseHeld(): once max_frame is known, sends the frames held back by send() in order,
  // and refuses those over it. They are the tail of the FIFO.
  releaseHeld() {
    if (!this.holding) return;
    this.holding = false;
    let i = this.head;
    while (i < this.pending.length && !this.pending[i].held) i++;
    const tail = this.pending.splice(i);
    for (const entry of tail) {
      const frame = entry.held;
      entry.held = null;
      if (frame.length - codec.HEADER_BYTES > this.maxFrame) {
        this.forget(entry);
        entry.reject(tooLarge(frame.length, this.maxFrame, entry.op, entry.args));
        continue;
      }
      this.pending.push(entry);
      this.write(frame, entry);
    }
    // The held frames leave now, together, rather than at the pass's end (plain or sealed: flush
    // writes either).
    this.flush();
    if (this.state === 'draining' && this.pendingCount === 0) process.nextTick(() => this.close());
  }

  // One timer for the whole FIFO: entries are queued in deadline order (one timeout for all
  // requests), so only the oldest entry with a deadline can be overdue. The HELLO has none
  // (connectTimeoutMs governs it) and may be ahead of it: requests queued behind a HELLO
  // that a stuck daemon never answers must still time out after timeoutMs.
  // A request is only timed out once the replies already in the socket are read: when the
  // app's own event loop stalls past timeoutMs (a sync bcrypt, a GC pause, a big render),
  // Node runs the expired timer before the poll phase that would read the replies sessd sent
  // meanwhile, and a change it carried out would fail as if it had not answered. So the
  // timer only schedules the check, in a setImmediate, which runs after that poll phase;
  // this.timer stays set until then, so that send() arms no second timer. The Immediate is
  // not unref'd: the poll phase before an unref'd one blocks until other I/O or a timer comes,
  // which could hold the timeout of a hung sessd for ever.
  armTimer(ms) {
    this.timer = setTimeout(() => {
      this.deadlineCheck = setImmediate(() => {
        this.deadlineCheck = null;
        this.timer = null;
        this.checkDeadline();
      });
    }, Math.max(1, ms));
    this.timer.unref?.();
  }

  // checkDeadline(): fails the connection when its oldest request with a deadline is past
  // it, else arms the timer for that deadline.
  checkDeadline() {
    if (this.state === 'closed') return;
    let i = this.head;
    while (i < this.pending.length && !this.pending[i].deadline) i++;
    if (i === this.pending.length) return; // the next request re-arms
    const entry = this.pending[i];
    const now = Date.now();
    if (entry.deadline <= now) {
      // Replies come back in order, so a stuck reply blocks all after it: give up the
      // connection; the pool opens a fresh one.
      this.abandonSocket();
      this.fail(connectionError('ETIMEDOUT', `sessd ${OP_NAME[entry.op] ?? `op 0x${entry.op.toString(16)}`} request timed out after ${this.timeoutMs} ms`), entry);
    } else {
      this.armTimer(entry.deadline - now);
    }
  }

  // abandonSocket(): ends a connection whose requests are given up on (a timeout) with a
  // reset, not a close (TCP): sessd, stalled, runs what a closed connection left in its socket
  // when it wakes, FLASH_POPs too, whose messages would be lost with the replies nobody reads;
  // it drops a reset connection's reads (PROTOCOL.md "A client that has gone"). Over a Unix
  // socket it sees the close itself (and resetAndDestroy() throws).
  abandonSocket() {
    if (this.socket.remotePort !== undefined) this.socket.resetAndDestroy?.();
  }

  onData(chunk) {
    if (this.#reader) this.readRecords(chunk);
    else this.readFrames(chunk);
  }

  // readRecords(chunk): opens a sealed connection's records and reads the frames they carry.
  // A malformed or forged record fails the connection (PROTOCOL.md: a client just closes).
  readRecords(chunk) {
    try {
      this.#reader.push(chunk, (plain) => {
        this.readFrames(plain);
        return this.state !== 'closed';
      });
    } catch (err) {
      this.fail(err);
    }
  }

  // readFrames(chunk): reads frames (from the socket, or a sealed connection's records).
  readFrames(chunk) {
    const sealedBefore = this.#reader !== null;
    let buf = chunk;
    if (this.rchunks) {
      this.rchunks.push(chunk);
      this.rlen += chunk.length;
      if (this.rlen < this.rneed) return;
      buf = Buffer.concat(this.rchunks, this.rlen);
      this.rchunks = null;
    }
    let pos = 0;
    try {
      while (buf.length - pos >= codec.HEADER_BYTES) {
        const len = codec.readFrameLength(buf, pos, this.maxFrame);
        if (buf.length - pos - codec.HEADER_BYTES < len) break;
        const body = buf.subarray(pos + codec.HEADER_BYTES, pos + codec.HEADER_BYTES + len);
        pos += codec.HEADER_BYTES + len;
        this.onReply(body);
        if (this.state === 'closed') return;
        if (!sealedBefore && this.#reader) {
          // That was a sealed connection's HELLO reply: the bytes after it are records.
          if (pos < buf.length) this.readRecords(buf.subarray(pos));
          return;
        }
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    if (pos < buf.length) {
      const rest = buf.subarray(pos);
      // The loop has read (and checked) the length of a frame whose header is here.
      this.rneed = rest.length >= codec.HEADER_BYTES
        ? codec.HEADER_BYTES + codec.readFrameLength(rest, 0, this.maxFrame)
        : codec.HEADER_BYTES;
      this.rchunks = [rest];
      this.rlen = rest.length;
    }
  }

  // onReply(body): settles the oldest pending request with the reply body. Throws
  // ProtocolError for a malformed reply (onData then fails the connection, that request
  // first), checked as an answer to that request's opcode before it leaves the FIFO.
  onReply(body) {
    if (this.pendingCount === 0) {
      // A stopping server says goodbye to every connection, idle ones too (PROTOCOL.md
      // "Statuses": SHUTTING_DOWN with request_id 0): a normal end, not a protocol error.
      const bye = codec.decodeReplyBody(body, null, this.maxFrame);
      if (bye.status !== STATUS.SHUTTING_DOWN || bye.requestId !== 0) throw new codec.ProtocolError('reply without a request');
      this.fail(new SessdError(bye.status, bye.result));
      return;
    }
    const entry = this.pending[this.head];
    const reply = codec.decodeReplyBody(body, entry.op, this.maxFrame);
    if (reply.status === STATUS.SHUTTING_DOWN && (reply.requestId === 0 || reply.requestId === entry.id)) {
      // The server is stopping and has sent the reply to every request it carried out
      // (PROTOCOL.md "Statuses"): none still waiting was, this one included.
      this.fail(new SessdError(reply.status, typeof reply.result === 'string' ? reply.result : '', entry.op));
      return;
    }
    this.pending[this.head] = undefined;
    this.head++;
    if (entry.flight !== undefined && this.inFlight.get(entry.flight) === entry.id) this.inFlight.delete(entry.flight);
    if (this.head === this.pending.length) {
      this.pending.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    if (this.state === 'draining' && this.pendingCount === 0) process.nextTick(() => this.close());
    if (reply.requestId !== entry.id) {
      if (reply.requestId === 0 && codec.CLOSING_STATUSES.has(reply.status)) {
        // A frame the server refused unread (TOO_LARGE, BUSY) is answered with id 0 before it
        // closes: after TOO_LARGE this request and the ones after it were not carried out;
        // after BUSY each may or may not have been (PROTOCOL.md "Errors that close").
        const err = new SessdError(reply.status, typeof reply.result === 'string' ? reply.result : '', entry.op);
        // BUSY to the HELLO: sessd refused a newcomer (at --max-connections) and carried out
        // none of its requests (PROTOCOL.md "Statuses"). After a BUSY to a later request,
        // those waiting may or may not have been.
        if (reply.status === STATUS.BUSY && entry.op === OP.HELLO) err.noneCarriedOut = true;
        entry.reject(err);
        this.fail(err, entry);
        return;
      }
      entry.reject(new codec.ProtocolError(`reply for request ${reply.requestId}, expected ${entry.id}`));
      throw new codec.ProtocolError('replies out of order');
    }
    if (reply.status === STATUS.OK && entry.op === OP.HELLO) {
      if (this.#kx) {
        // Sealed: the server must prove it holds the secret before anything else is sent
        // (nothing was: every frame is held). From the byte after this reply, both
        // directions are records.
        const kx = this.#kx;
        this.#kx = null;
        const done = kx.finish(reply.result);
        if (done.why) {
          const err = connectionError(AUTH_CODE, `sessd server did not prove it holds the shared secret (its HELLO reply ${done.why}): it has another secret, or is not sessd; nothing was sent to it`);
          entry.reject(err);
          this.fail(err, entry);
          return;
        }
        this.#writer = done.writer;
        this.#reader = done.reader;
        this.serverKey = done.serverKey;
      } else if (this.requireAuth && reply.result.auth !== true) {
        // The server let us in without checking the secret (it has no --auth-file, or
        // predates authentication). Nothing else was sent: requireAuth held it back.
        const err = connectionError(AUTH_CODE, 'sessd server did not check the shared secret (its HELLO reply has no auth: true), and requireAuth is set');
        entry.reject(err);
        this.fail(err, entry);
        return;
      }
      // Now, not when the promise settles: the frames after this one in the chunk are read
      // against it.
      this.maxFrame = helloMaxFrame(reply.result);
      entry.resolve(reply.result);
    } else if (reply.status === STATUS.OK && reply.resultError) {
      entry.reject(reply.resultError);
    } else if (reply.status === STATUS.OK) {
      entry.resolve({ status: STATUS.OK, result: reply.result });
    } else if (reply.status === STATUS.NOT_FOUND) {
      entry.resolve({ status: STATUS.NOT_FOUND, result: null });
    } else {
      const err = new SessdError(reply.status, typeof reply.result === 'string' ? reply.result : '', entry.op);
      // sessd refused it for want of room or disk and changed nothing (PROTOCOL.md
      // "Statuses", sessd(8) "Durability"): an app's error page may say it was not done. A
      // change sent again after a break is answered for its second send only: the pool's
      // resend gives it an error of its own without this (Client refusedResend).
      if (REFUSED_STATUSES.has(reply.status)) err.notCarriedOut = true;
      entry.reject(err);
      // The server answers nothing more and closes (PROTOCOL.md "Errors that close"): close
      // now, so that no request waits on it or is sent on it meanwhile.
      if (codec.CLOSING_STATUSES.has(reply.status)) this.fail(err, entry);
    }
  }

  // fail(err, culprit, broken): closes the connection and rejects every pending request:
  // culprit (default: the oldest) with err (a socket's own error made a 503: see
  // brokenError), the rest with a closed error. After a SHUTTING_DOWN (err) none was carried
  // out: each is handed to onNotCarriedOut(entry, err) when it is set (the pool sends it again
  // elsewhere), else rejected with its own SessdError SHUTTING_DOWN whose notCarriedOut is
  // true. broken: the socket failed or ended under the requests (sessd crashed: ECONNRESET,
  // EOF), after it had connected: each may or may not have been carried out, and is first
  // offered to onBroken(entry, err) when it is set, which returns true when it takes the
  // request over (the pool sends again the changes that a repeat cannot harm); the rest fail
  // as above. Idempotent.
  fail(err, culprit, broken = false) {
    if (this.state === 'closed') return;
    const wasReady = this.announcedReady === true;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    clearTimeout(this.writeErrorTimer);
    clearTimeout(this.timer);
    clearImmediate(this.deadlineCheck);
    this.timer = null;
    this.deadlineCheck = null;
    this.socket.destroy();
    const pending = this.pending.slice(this.head);
    const unsent = this.unsent(pending);
    this.pending = [];
    this.head = 0;
    this.inFlight.clear();
    this.rchunks = null;
    // Forget the keys (and the exchange of a connection that never finished it).
    if (this.#kx) this.#kx.destroy();
    this.#kx = null;
    this.#writer = null;
    this.#reader = null;
    this.unflushed = [];
    this.passBuf = null;
    this.passLen = 0;
    this.passFirst = null;
    // A change in flight whose outcome is unknown (a break, a timeout, a closing error) may
    // still be carried out if a record of it is held on the path (PROTOCOL.md "What sealing
    // does not protect against"): told first, so that the pool retires this connection
    // before any change it sends next, the resends below included. After a SHUTTING_DOWN
    // none was carried out, and nothing more of this connection will be.
    const shuttingDown = err instanceof SessdError && err.sessdStatus === STATUS.SHUTTING_DOWN;
    if (!shuttingDown && this.serverKey && this.onGiveUp && pending.some((entry) => CHANGE_OPS.has(entry.op) && !unsent.has(entry))) this.onGiveUp(this.serverKey);
    if (shuttingDown) {
      for (const entry of pending) {
        const mine = new SessdError(err.sessdStatus, err.message.replace(/^sessd SHUTTING_DOWN: /, ''), entry.op);
        mine.notCarriedOut = true;
        if (this.onNotCarriedOut && entry.op !== OP.HELLO) this.onNotCarriedOut(entry, mine);
        else entry.reject(mine);
      }
      this.closeError = err;
      this.emit('close', err, wasReady);
      return;
    }
    // Offered before 'close', as after a SHUTTING_DOWN: the pool must still see its other
    // connections as they are, and hear of this one's close once the requests are placed.
    // A request whose frame was never written is not carried out: it is handed on as one a
    // SHUTTING_DOWN left (the pool sends it again, a FLASH_POP or FLASH_PUSH too), in its
    // place among the others, so that a session's requests keep their order.
    const handOn = (entry) => {
      if (entry.op === OP.HELLO) return false;
      if (unsent.has(entry) && this.onNotCarriedOut) {
        this.onNotCarriedOut(entry, unavailableError(`sessd connection closed before the request was sent: ${err.message}`, err));
        return true;
      }
      return this.onBroken(entry, err);
    };
    const failing = broken && this.socketConnected && this.onBroken ? pending.filter((entry) => !handOn(entry)) : pending;
    const first = culprit || failing[0];
    // Requests on a socket that never connected were not carried out: that is an outage
    // (the code a ready pool gives while sessd is down), not a broken connection.
    // After an authentication failure nothing is carried out on this connection, for the
    // same reason: each request fails with that error.
    // A newcomer refused with BUSY had none of its requests carried out: each fails with that
    // status (a 503, notCarriedOut), not as a connection broken under it.
    const other = (entry) => {
      if (err.code === AUTH_CODE) return err;
      if (err instanceof SessdError && err.noneCarriedOut) {
        const mine = new SessdError(err.sessdStatus, err.message.replace(/^sessd [^:]*: /, ''), entry.op);
        mine.notCarriedOut = true;
        return mine;
      }
      return this.socketConnected
        ? Object.assign(connectionError('ESESSD_CLOSED', `sessd connection closed: ${err.message}`), { cause: err })
        : unavailableError(`sessd is not reachable: ${err.message}`, err);
    };
    const firstErr = brokenError(err);
    failing.forEach((entry) => entry.reject(entry === first ? firstErr : other(entry)));
    this.closeError = err;
    this.emit('close', err, wasReady);
  }

  // unsent(pending): the requests of pending (in order) whose frames never reached the socket:
  // those of the pass not yet flushed (from passFirst on) and those held for the HELLO reply.
  unsent(pending) {
    const out = new Set();
    let i = this.passLen > 0 && this.passFirst !== null ? pending.indexOf(this.passFirst) : -1;
    if (i >= 0) for (; i < pending.length; i++) out.add(pending[i]);
    for (const entry of pending) if (entry.held) out.add(entry);
    return out;
  }

  // end(): takes no new requests, lets the pending ones be answered, then closes.
  end() {
    if (!this.isOpen) return;
    if (this.pendingCount === 0) {
      this.close();
      return;
    }
    this.state = 'draining';
  }

  // close(): closes now; pending requests are rejected. Those are given up on, as after a
  // timeout: the connection is reset (see abandonSocket), so that a stuck sessd that wakes
  // does not run the FLASH_POPs among them (terminate() while sessd is stuck).
  close() {
    if (this.pendingCount > 0 && this.state !== 'closed') this.abandonSocket();
    this.fail(this.writeError || connectionError('ESESSD_CLOSED', 'sessd connection closed by the client'));
  }
}

module.exports = { CHANGE_OPS, Connection, flightKey, helloName, SessdError, parseUrl, checkAuth, checkRequireAuth, checkSeal, connectionError, unavailableError, AUTH_CODE };
