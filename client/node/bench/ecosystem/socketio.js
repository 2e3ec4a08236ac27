'use strict';
// Socket.IO sharing the express-session (io.engine.use(sessionMiddleware), the Socket.IO
// docs' pattern) on connect-sessd, connect-redis 9 and MemoryStore: the same app, the same
// scenarios, one line of outcome per scenario and store. Run by hand (not in CI):
//
//   cd client/node && npm ci && (cd bench/ecosystem && npm ci)
//   node bench/ecosystem/socketio.js [--stores sessd,redis,memory] [--n 50]
//
// Needs build/daemon/sessd (or SESSD_BIN) and redis-server on PATH for the redis store.
// Scenarios (each on a fresh session):
//   logout:      HTTP login; socket opens; HTTP logout (req.session.destroy()); the socket then
//                changes its session and saves: is the old cookie logged in again?
//   concurrent:  N socket saves (a counter) interleaved with N HTTP cart adds: how many of each
//                stand at the end?
//   new-session: the socket's handshake made the session (no cookie yet), HTTP then logs in
//                on it (no regenerate) and logs out (destroy); the socket saves after each:
//                is the login lost, the logout undone?
//   stale:       cookie maxAge 3 s, rolling; HTTP keeps the session alive for 4 s while the
//                socket's session object stays as the handshake left it; the socket saves:
//                is the session still there?
//   stale-reload: the same, with the docs' reload() before the socket's change.
//   expired:     cookie maxAge 3 s; the socket (websocket only) saves after the session expired
//                with no HTTP request: is it back?
//   reload:      the docs' reload() before each socket change, after an HTTP logout: the
//                error the handler gets.

const http = require('http');
const express = require('express');
const session = require('express-session');
const crypto = require('crypto');
const { Server } = require('socket.io');
const { io: ioClient } = require('socket.io-client');
const { options, redis, sessd, run, listen, sleep } = require('./common');

const opt = options();
const N = Number(opt.n || 50);
const SECRET = 'ecosystem-socketio-secret';

async function makeStore(kind, dir) {
  if (kind === 'memory') return { store: new session.MemoryStore(), stop: async () => {} };
  return kind === 'redis' ? redis(dir) : sessd(dir);
}

// The app: express-session shared with Socket.IO as the Socket.IO docs show.
async function startApp(store, cookie) {
  const app = express();
  const mw = session({ store, secret: SECRET, resave: false, saveUninitialized: true, rolling: !!cookie.maxAge, cookie });
  app.use(mw);
  app.get('/login', (req, res) => {
    req.session.user = req.query.user;
    res.json({ ok: true });
  });
  app.get('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
  app.get('/add', (req, res) => {
    req.session.cart = [...(req.session.cart || []), req.query.item];
    res.json({ n: req.session.cart.length });
  });
  app.get('/state', (req, res) => res.json({ sid: req.sessionID, user: req.session.user || null, cart: req.session.cart || [], count: req.session.count || 0 }));
  app.get('/touch', (req, res) => res.json({ user: req.session.user || null }));
  const server = http.createServer(app);
  const io = new Server(server);
  io.engine.use(mw);
  const errors = [];
  io.on('connection', (socket) => {
    const req = socket.request;
    socket.on('sid', (ack) => ack(req.sessionID));
    socket.on('inc', (ack) => {
      req.session.count = (req.session.count || 0) + 1;
      req.session.save((err) => ack({ err: err ? `${err.code || ''} ${err.message}` : null, user: req.session.user || null }));
    });
    socket.on('reloadinc', (ack) => {
      req.session.reload((err) => {
        if (err) return ack({ err: `${err.code || ''} ${err.message}` });
        req.session.count = (req.session.count || 0) + 1;
        req.session.save((err2) => ack({ err: err2 ? `${err2.code || ''} ${err2.message}` : null, user: req.session.user || null }));
        return undefined;
      });
    });
  });
  return { server, io, errors, base: await listen(server) };
}

// Over http.get, whose agent closes its sockets between requests: fetch's keep-alive pool
// would hold the server open.
function get(base, p, cookie) {
  return new Promise((resolve, reject) => {
    http.get(base + p, { headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const set = (res.headers['set-cookie'] || [])[0];
        resolve({ status: res.statusCode, body: body ? JSON.parse(body) : null, cookie: set ? set.split(';')[0] : null });
      });
    }).on('error', reject);
  });
}

function connect(base, cookie, transports = ['polling', 'websocket']) {
  return new Promise((resolve, reject) => {
    const s = ioClient(base, { transports, extraHeaders: cookie ? { cookie } : {}, reconnection: false, forceNew: true });
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}
const emit = (s, ev) => s.timeout(10000).emitWithAck(ev);
const signed = (sid) => `s:${sid}.${crypto.createHmac('sha256', SECRET).update(sid).digest('base64').replace(/=+$/, '')}`;
const cookieFor = (sid) => `connect.sid=${encodeURIComponent(signed(sid))}`;

async function stale(base, ev) {
  const { cookie } = await get(base, '/login?user=dave');
  const s = await connect(base, cookie);
  for (let i = 0; i < 8; i++) {
    await sleep(500);
    await get(base, '/touch', cookie);
  }
  const a = await emit(s, ev);
  const st = await get(base, '/state', cookie);
  await sleep(2000);
  const st2 = await get(base, '/state', cookie);
  s.close();
  return `socket ${ev} err=${a.err}; then HTTP sees user=${st.body.user} (${st.body.user ? 'kept' : 'LOGGED OUT'}), 2 s later (maxAge 3 s) user=${st2.body.user}`;
}

const scenarios = {
  async logout(base) {
    const { cookie } = await get(base, '/login?user=alice');
    const s = await connect(base, cookie);
    await get(base, '/logout', cookie);
    const ack = await emit(s, 'inc');
    const after = await get(base, '/state', cookie);
    s.close();
    return `socket save ack err=${ack.err}; old cookie afterwards: user=${after.body.user} (${after.body.user ? 'LOGOUT UNDONE' : 'stays logged out'})`;
  },
  async concurrent(base) {
    const { cookie } = await get(base, '/login?user=bob');
    const s = await connect(base, cookie);
    const http = (async () => {
      for (let i = 0; i < N; i++) await get(base, `/add?item=i${i}`, cookie);
    })();
    const sock = (async () => {
      const errs = [];
      for (let i = 0; i < N; i++) {
        const a = await emit(s, 'inc');
        if (a.err) errs.push(a.err);
      }
      return errs;
    })();
    const [, errs] = await Promise.all([http, sock]);
    const st = await get(base, '/state', cookie);
    s.close();
    return `cart ${st.body.cart.length}/${N}, socket count ${st.body.count}/${N}, user=${st.body.user}, socket errors ${errs.length}${errs.length ? ' ' + errs[0] : ''}`;
  },
  async 'new-session'(base) {
    const s = await connect(base, null);
    const sid = await emit(s, 'sid');
    const cookie = cookieFor(sid);
    await emit(s, 'inc'); // the handshake's session saved by the socket
    await get(base, '/login?user=carol', cookie);
    const a1 = await emit(s, 'inc');
    const afterLogin = await get(base, '/state', cookie);
    await get(base, '/logout', cookie);
    const a2 = await emit(s, 'inc');
    const afterLogout = await get(base, '/state', cookie);
    s.close();
    return `after login + socket save: user=${afterLogin.body.user} (${afterLogin.body.user ? 'kept' : 'LOGIN LOST'}) err=${a1.err}; ` +
      `after logout + socket save: user=${afterLogout.body.user} sid ${afterLogout.body.sid === sid ? 'same' : 'new'} (${afterLogout.body.sid === sid ? 'SESSION BACK' : 'stays gone'}) err=${a2.err}`;
  },
  // stale: the socket saves the handshake's session object as it is; stale-reload: after reload().
  stale: (base) => stale(base, 'inc'),
  'stale-reload': (base) => stale(base, 'reloadinc'),
  async expired(base) {
    const { cookie } = await get(base, '/login?user=gina');
    const s = await connect(base, cookie, ['websocket']);
    await sleep(3500); // past the 3 s maxAge, no HTTP request
    const a = await emit(s, 'inc');
    const st = await get(base, '/state', cookie);
    s.close();
    return `socket save after the session expired: err=${a.err}; old cookie user=${st.body.user} (${st.body.user ? 'EXPIRED SESSION BACK' : 'stays expired'})`;
  },
  async reload(base) {
    const { cookie } = await get(base, '/login?user=erin');
    const s = await connect(base, cookie);
    const a0 = await emit(s, 'reloadinc');
    await get(base, '/logout', cookie);
    const a = await emit(s, 'reloadinc');
    const st = await get(base, '/state', cookie);
    s.close();
    return `before logout err=${a0.err}; after logout reload err=${a.err}; old cookie user=${st.body.user}`;
  },
};

const withApp = (name, scenario) => async (s) => {
  const app = await startApp(s.store, name.startsWith('stale') || name === 'expired' ? { maxAge: 3000 } : {});
  try {
    return await scenario(app.base);
  } finally {
    app.io.close();
    await new Promise((r) => app.server.close(r));
  }
};

run(opt.stores, Object.fromEntries(Object.entries(scenarios).map(([name, f]) => [name, withApp(name, f)])), makeStore);
