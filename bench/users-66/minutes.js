'use strict';
// minutes.js WORK: cuts WORK/req.ndjson into minutes (requests, p50, p99, max ms, 503s, other
// 5xx, connection errors) beside mon.tsv's load and the events of that minute.
const fs = require('fs');
const path = require('path');

const dir = process.argv[2];
const mins = new Map();
for (const line of fs.readFileSync(path.join(dir, 'req.ndjson'), 'utf8').split('\n')) {
  if (!line) continue;
  const r = JSON.parse(line);
  const m = Math.floor(r.t / 60);
  if (!mins.has(m)) mins.set(m, []);
  mins.get(m).push(r);
}
const events = fs.existsSync(path.join(dir, 'events.txt'))
  ? fs.readFileSync(path.join(dir, 'events.txt'), 'utf8').split('\n').filter(Boolean) : [];
const mon = fs.readFileSync(path.join(dir, 'mon.tsv'), 'utf8').split('\n').slice(1).filter(Boolean)
  .map((l) => l.split('\t'));
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(a.length * p))];
console.log(['min', 'load1', 'reqs', 'p50_ms', 'p99_ms', 'max_ms', 's503', 's5xx_other', 'conn_err', 'events'].join('\t'));
for (const [m, rs] of [...mins].sort((a, b) => a[0] - b[0])) {
  const ms = rs.filter((r) => r.st).map((r) => r.ms).sort((a, b) => a - b);
  const loads = mon.filter((r) => Math.floor(Number(r[0]) / 60) === m).map((r) => r[1]);
  const ev = events.filter((e) => Math.floor(Number(e.split(' ')[0]) / 60) === m)
    .map((e) => e.replace(/^\d+ /, '')).join('; ');
  console.log([m, loads.join('/'), rs.length, pct(ms, 0.5), pct(ms, 0.99), ms[ms.length - 1],
    rs.filter((r) => r.st === 503).length, rs.filter((r) => r.st > 500 && r.st !== 503 || r.st === 500).length,
    rs.filter((r) => !r.st).length, ev].join('\t'));
}
