'use strict';
// What the scripts of bench/ecosystem share: their options, the three stores (connect-sessd on
// a private daemon, connect-redis 9 on a private redis-server without persistence,
// MemoryStore), and the loop that runs each scenario on a fresh store and prints one line.

const path = require('path');
const fs = require('fs');
const os = require('os');
const net = require('net');
const { spawn, execFileSync } = require('child_process');
const { SessdStore } = require('../..');
const { Daemon, sleep } = require('../../test/helpers');

// options(): --name value pairs of the command line; stores: --stores, default all three.
function options() {
  const args = process.argv.slice(2);
  const opt = {};
  for (let i = 0; i < args.length; i += 2) opt[args[i].replace(/^--/, '')] = args[i + 1];
  opt.stores = (opt.stores || 'sessd,redis,memory').split(',');
  return opt;
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// redis(dir): a private redis-server and a connect-redis store on it, prefix "eco:":
// { store, ttl(sid) (ms, PTTL), stop() }.
async function redis(dir) {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const cli = (...a) => execFileSync('redis-cli', ['-p', String(port), ...a], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  for (let i = 0; ; i++) {
    try {
      if (cli('PING') === 'PONG') break;
    } catch (e) {
      if (i > 200) throw new Error('redis-server did not start');
    }
    await sleep(25);
  }
  const { createClient } = require('redis');
  const { RedisStore } = require('connect-redis');
  const client = createClient({ url: `redis://127.0.0.1:${port}` });
  await client.connect();
  return {
    store: new RedisStore({ client, prefix: 'eco:' }),
    ttl: async (sid) => Number(cli('PTTL', `eco:${sid}`)),
    stop: async () => {
      await client.quit();
      proc.kill('SIGTERM');
    },
  };
}

// sessd(dir): a private daemon and a SessdStore on it, namespace "eco":
// { store, ttl(sid) (ms), stop() }.
async function sessd(dir) {
  const d = await new Daemon({ dir: fs.mkdtempSync(path.join(dir, 'sessd-')) }).start();
  const store = new SessdStore({ url: d.unixUrl, namespace: 'eco' });
  return {
    store,
    ttl: (sid) => store.client.ttl('eco', sid),
    stop: async () => {
      store.close();
      await d.stop();
    },
  };
}

// run(stores, scenarios, makeStore): each scenario (name -> async (store) => outcome line) on a
// fresh store of each kind, makeStore(kind, dir) making it; prints "kind name outcome".
async function run(stores, scenarios, makeStore) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-eco-'));
  const width = Math.max(...Object.keys(scenarios).map((n) => n.length));
  try {
    for (const kind of stores) {
      for (const [name, scenario] of Object.entries(scenarios)) {
        const s = await makeStore(kind, dir);
        let line;
        try {
          line = await scenario(s);
        } catch (err) {
          line = `FAILED: ${err.stack}`;
        }
        console.log(`${kind.padEnd(6)} ${name.padEnd(width)} ${line}`);
        await s.stop();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// listen(server): a promise of the base URL of the http.Server once it listens on loopback.
async function listen(server) {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${server.address().port}`;
}

async function close(server) {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

// get(base, path, cookie, opts): fetch without following redirects: { status, body (JSON or
// null), cookie (the first Set-Cookie's name=value or null), cookieMs (its Expires from now) }.
async function get(base, p, cookie, { method = 'GET', headers = {} } = {}) {
  const res = await fetch(base + p, { method, headers: { ...headers, ...(cookie ? { cookie } : {}) }, redirect: 'manual' });
  const set = res.headers.get('set-cookie');
  const m = set && /Expires=([^;]+)/i.exec(set);
  return { status: res.status, body: await res.json().catch(() => null), cookie: set ? set.split(';')[0] : null, cookieMs: m ? new Date(m[1]) - Date.now() : null };
}

module.exports = { options, redis, sessd, run, listen, close, get, sleep };
