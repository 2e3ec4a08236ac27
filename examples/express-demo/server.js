'use strict';
// Starts the demo shop: `npm start`. Environment:
//   PORT            port to listen on (default 3000; 0 picks a free one)
//   SESSD_URL       the sessd daemon (default tcp://127.0.0.1:7077)
//   SESSD_AUTH_FILE a file holding the daemon's --auth-file secret, when it runs with one
//                   (connections are then sealed: connect-sessd's seal option defaults to
//                   true); a file, not the secret itself in the environment, which every
//                   process the app starts would inherit
//   SESSION_SECRET  cookie signing secret; every process sharing sessions needs the same
//                   one (a fixed development default is used when unset)
//   DEMO_STORE      "sessd" (default) or "memory" (express-session's MemoryStore, for
//                   benchmarks; sessions are then private to this process)

const fs = require('fs');
const session = require('express-session');
const { SessdStore, flash } = require('connect-sessd');
const { createApp, mergeSession } = require('./app');

const port = Number(process.env.PORT ?? 3000);
const secret = process.env.SESSION_SECRET || 'sessd-demo-development-secret';
const kind = process.env.DEMO_STORE || 'sessd';

let store;
if (kind === 'memory') {
  // flash() keeps the flashes in req.session on a store other than SessdStore.
  store = new session.MemoryStore();
} else {
  store = new SessdStore({
    url: process.env.SESSD_URL,
    namespace: process.env.SESSD_NAMESPACE || 'express-demo',
    // Its one trailing newline is not part of the secret, as for sessd's --auth-file.
    auth: process.env.SESSD_AUTH_FILE ? fs.readFileSync(process.env.SESSD_AUTH_FILE) : undefined,
    // Concurrent requests' saves are merged key by key; two cart changes at once add up.
    mergeKey: mergeSession,
  });
  store.on('gone', () => console.error('a request finished after its session was destroyed (logout): not saved'));
  store.on('disconnect', (err) => console.error(`sessd disconnected: ${err ? err.message : ''}`));
  store.on('connect', () => console.error('sessd connected'));
}

const flashImpl = { middleware: () => flash(), locals: () => flash.locals() };
const app = createApp({ store, flash: flashImpl, secret, served: `pid ${process.pid}` });
const server = app.listen(port, '127.0.0.1', () => {
  // Tests and scripts read this line to find the port.
  console.log(`express-demo (${kind}) listening on http://127.0.0.1:${server.address().port}`);
});

// A process manager's SIGTERM (a deploy, a rolling restart): stop taking connections, let
// the requests in flight end, then close the store, which lets its last requests complete;
// the process then exits by itself. A request may wait on sessd for up to restartWaitMs +
// timeoutMs (10 s) while sessd restarts or stalls: exiting sooner cuts it (the browser gets a
// reset, and its change may or may not have been made). The cap is for a client that keeps
// its connection open.
function shutdown() {
  server.close(() => {
    if (typeof store.close === 'function') store.close();
  });
  // Keep-alive connections between requests would hold server.close() until they time out.
  server.closeIdleConnections?.();
  setInterval(() => server.closeIdleConnections?.(), 100).unref();
  setTimeout(() => process.exit(0), 15000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
