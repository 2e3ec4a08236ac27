'use strict';
// The heap of an app whose one Socket.IO socket (io.engine.use(session), io.engine.use(flash()))
// saves its session N times, then pushes N flashes that pages pop (10 at a time): socket.request
// lives as long as the socket, so whatever a save or a push leaves on it stays. Run by hand:
//
//   node --expose-gc bench/ecosystem/socketio-memory.js [--n 20000]
//
// Prints the heap after gc before and after each phase, and how many pushes socket.request
// holds for regenerate() (at most 128).

const http = require('http');
const express = require('express');
const session = require('express-session');
const { Server } = require('socket.io');
const { io: ioClient } = require('socket.io-client');
const { flash } = require('../..');
const { FLASH_PUSHES } = require('../../lib/store');
const { options, sessd, listen, get } = require('./common');

const N = Number(options().n || 20000);

function heapMiB() {
  global.gc();
  return process.memoryUsage().heapUsed / 1048576;
}

(async () => {
  if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc');
  const s = await sessd(require('os').tmpdir());
  const mw = session({ store: s.store, secret: 'ecosystem-memory', resave: false, saveUninitialized: false });
  const app = express();
  app.use(mw);
  app.use(flash());
  app.get('/login', (req, res) => {
    req.session.user = 'a';
    res.json({});
  });
  app.get('/pop', async (req, res) => res.json({ got: (await req.flash('info')).length }));
  const server = http.createServer(app);
  const io = new Server(server);
  io.engine.use(mw);
  io.engine.use(flash());
  let socketRequest = null;
  io.on('connection', (socket) => {
    const req = socket.request;
    socketRequest = req;
    socket.on('save', (i, ack) => {
      req.session.n = i;
      req.session.save((err) => ack(err ? err.message : null));
    });
    socket.on('push', async (i, ack) => ack(await req.flash('info', `message number ${i} from the socket`)));
  });
  const base = await listen(server);
  const { cookie } = await get(base, '/login');
  const sock = ioClient(base, { transports: ['websocket'], extraHeaders: { cookie }, reconnection: false, forceNew: true });
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('connect_error', reject);
  });
  const h0 = heapMiB();
  for (let i = 0; i < N; i++) await sock.timeout(10000).emitWithAck('save', i);
  const h1 = heapMiB();
  let popped = 0;
  for (let i = 0; i < N; i++) {
    await sock.timeout(10000).emitWithAck('push', i);
    if (i % 10 === 9) popped += (await get(base, '/pop', cookie)).body.got;
  }
  const h2 = heapMiB();
  console.log(`${N} socket saves: heap ${h0.toFixed(1)} -> ${h1.toFixed(1)} MiB`);
  console.log(`${N} socket pushes (${popped} popped by pages): heap -> ${h2.toFixed(1)} MiB; socket.request holds ${(socketRequest[FLASH_PUSHES] || []).length} pushes`);
  sock.close();
  io.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await s.stop();
})();
