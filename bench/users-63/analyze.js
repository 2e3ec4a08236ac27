'use strict';
// Per-window latency and errors of browsers.js's requests around the events of events.log.
// usage: node analyze.js requests.ndjson events.log [window_s]
const fs = require('fs');
const [reqFile, evFile, winS = '10'] = process.argv.slice(2);
const reqs = fs.readFileSync(reqFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const evs = fs.readFileSync(evFile, 'utf8').trim().split('\n').map((l) => {
  const i = l.indexOf(' ');
  return { t: Math.round(Number(l.slice(0, i)) * 1000), what: l.slice(i + 1) };
}).filter((e) => !/restarted|SIGCONT|freed|^start$|^end$|truncated|done|over/.test(e.what));
const win = Number(winS) * 1000;
const windows = [];
let prev = reqs.length ? reqs[0].t : 0;
for (const e of evs) {
  windows.push({ name: 'calm', from: prev, to: e.t });
  windows.push({ name: e.what, from: e.t, to: e.t + win });
  prev = e.t + win;
}
windows.push({ name: 'calm (after)', from: prev, to: Infinity });
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN);
console.log('window                              reqs  p50ms  p99ms  maxms   5xx  conn  hang  4xx');
for (const w of windows) {
  const r = reqs.filter((x) => x.t >= w.from && x.t < w.to);
  const ms = r.map((x) => x.ms).sort((a, b) => a - b);
  const c = (f) => r.filter(f).length;
  console.log(`${w.name.padEnd(34).slice(0, 34)} ${String(r.length).padStart(5)} ${String(pct(ms, 0.5)).padStart(6)} ${String(pct(ms, 0.99)).padStart(6)} ${String(ms[ms.length - 1]).padStart(6)} ${String(c((x) => x.s >= 500)).padStart(5)} ${String(c((x) => x.s === 0 && x.e !== 'HANG')).padStart(5)} ${String(c((x) => x.e === 'HANG')).padStart(5)} ${String(c((x) => x.s >= 400 && x.s < 500)).padStart(4)}`);
}
