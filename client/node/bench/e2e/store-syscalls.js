#!/usr/bin/env node
'use strict';
// The app's socket system calls per store operation: store-ops.js run under strace, once per
// store, and the writes (writev and write), the buffers they carried (writev's iovec count:
// node-redis's commands; connect-sessd's frames before stop 57, one buffer a pass since) and
// the reads counted on the process's TCP connections. A connection's requests of one pass of
// the event loop leave in one write and its replies come in one read, so the counts show how
// many passes and connections a store's calls take.
//
//   node store-syscalls.js [--ops 20000] [--stores sessd,redis,base] [--versus DIR]
//
// Needs strace (Debian's). Each run: 1,000 saves, then --ops page views (the warm-up), --ops
// page views and --ops cart adds, 32 at a time (store-ops.js --rounds 1): 1,000 + 6 x --ops
// store calls. By hand, not in CI.

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const argv = process.argv.slice(2);
const opt = (name, def) => (argv.includes('--' + name) ? argv[argv.indexOf('--' + name) + 1] : def);
const OPS = Number(opt('ops', 20000));
const VERSUS = opt('versus', null);
const STORES = opt('stores', VERSUS ? 'sessd,base,redis' : 'sessd,redis').split(',');
const CALLS = 1000 + 6 * OPS;

// count(file): per TCP connection of one thread's strace output: its port, writes, the
// iovecs its writevs carried, and reads.
function count(file) {
  const conns = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const connect = /^connect\((\d+), \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\)/.exec(line);
    if (connect) {
      conns.set(connect[1], { port: Number(connect[2]), writes: 0, iovecs: 0, reads: 0 });
      continue;
    }
    const call = /^(writev|write|read)\((\d+),/.exec(line);
    const conn = call && conns.get(call[2]);
    if (!conn) continue;
    if (call[1] === 'read') {
      conn.reads++;
      continue;
    }
    conn.writes++;
    const iov = call[1] === 'writev' ? /\], (\d+)\)\s+=/.exec(line) : null;
    conn.iovecs += iov ? Number(iov[1]) : 1;
  }
  return [...conns.values()];
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'store-syscalls-'));
try {
  for (const store of STORES) {
    const prefix = path.join(dir, store);
    const args = ['-ff', '-e', 'trace=connect,writev,write,read', '-s', '0', '-o', prefix, process.execPath,
      path.join(__dirname, 'store-ops.js'), '--rounds', '1', '--ops', String(OPS), '--only', store];
    if (VERSUS) args.push('--versus', VERSUS);
    execFileSync('strace', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    // The node process's main thread is its first: the lowest pid of the files.
    const main = fs.readdirSync(dir).filter((f) => f.startsWith(store + '.'))
      .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))[0];
    // The connections the run used (the others: the Redis client store-ops.js always opens).
    const used = count(path.join(dir, main)).filter((c) => c.writes > OPS / 100);
    const sum = (f) => used.reduce((n, c) => n + f(c), 0);
    const writes = sum((c) => c.writes);
    console.log(`${store.padEnd(5)} ${used.length} connection(s): ${writes} writes (${(writes / CALLS).toFixed(3)} a store call), ` +
      `${(sum((c) => c.iovecs) / writes).toFixed(1)} buffers a write, ${sum((c) => c.reads)} reads (${(sum((c) => c.reads) / CALLS).toFixed(3)} a call), ${CALLS} calls`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
