'use strict';
// heapdiff.js A.heapsnapshot B.heapsnapshot: the object kinds (V8's node type and
// constructor name) whose count or self size grew most from A to B, to tell a leak (a kind
// growing with the requests served) from a heap that only warms up (code, compiled
// regexps, inline caches).
const fs = require('fs');

function summary(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const n = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += n) {
    const type = types[snap.nodes[i + iType]];
    let name = snap.strings[snap.nodes[i + iName]];
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)';
    if (type === 'code') name = '(code)';
    if (name.length > 60) name = `${name.slice(0, 57)}...`;
    const key = `${type} ${name}`;
    const e = out.get(key) || { count: 0, size: 0 };
    e.count++;
    e.size += snap.nodes[i + iSize];
    total += snap.nodes[i + iSize];
    out.set(key, e);
  }
  return { out, total };
}

const a = summary(process.argv[2]);
const b = summary(process.argv[3]);
console.log(`total self size: ${(a.total / 1048576).toFixed(2)} MB -> ${(b.total / 1048576).toFixed(2)} MB`);
const rows = [];
for (const [k, e] of b.out) {
  const o = a.out.get(k) || { count: 0, size: 0 };
  rows.push({ k, dc: e.count - o.count, ds: e.size - o.size, count: e.count });
}
rows.sort((x, y) => y.ds - x.ds);
console.log('grew most (self size):');
for (const r of rows.slice(0, 15)) console.log(`  ${String(r.ds).padStart(9)} B ${String(r.dc).padStart(7)} objects (now ${r.count})  ${r.k}`);
