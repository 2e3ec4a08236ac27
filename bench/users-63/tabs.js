'use strict';
// One visitor, N tabs adding at once through the four shops: every add answered 303 must be
// in the cart; then a logout from one tab racing N adds from the others must be final.
// usage: node tabs.js --ports P1,.. --tabs N --rounds R
const http = require('http');
const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const ports = args.ports.split(',').map(Number);
const tabs = Number(args.tabs || 20);
const rounds = Number(args.rounds || 5);
function req(port, method, path, cookie, body) {
  return new Promise((resolve) => {
    const payload = body ? new URLSearchParams(body).toString() : null;
    const headers = { ...(cookie ? { cookie } : {}), ...(payload ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(payload) } : {}) };
    const r = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let d = ''; res.on('data', (c) => { d += c; }); res.on('end', () => resolve({ status: res.statusCode, body: d, cookie: (res.headers['set-cookie'] || []).map((c) => c.split(';')[0]).find((c) => c.startsWith('connect.sid=')) }));
    });
    r.on('error', (e) => resolve({ status: 0, body: e.code }));
    if (payload) r.write(payload);
    r.end();
  });
}
(async () => {
  const login = await req(ports[0], 'POST', '/login', null, { username: 'tabby' });
  const cookie = login.cookie;
  const tally = { acked: 0, lost: 0, errors: {} };
  for (let r = 0; r < rounds; r++) {
    const items = Array.from({ length: tabs }, (_, k) => `r${r}t${k}`);
    const res = await Promise.all(items.map((item, k) => req(ports[k % ports.length], 'POST', '/cart/add', cookie, { item })));
    const cart = JSON.parse((await req(ports[0], 'GET', '/cart.json', cookie)).body).cart;
    res.forEach((x, k) => {
      if (x.status === 303) { tally.acked++; if (!cart.includes(items[k])) tally.lost++; } else { const key = `${x.status} ${x.body.slice(0, 80)}`; tally.errors[key] = (tally.errors[key] || 0) + 1; }
    });
  }
  // Logout from one tab while the others add: the logout is final (no add's save brings the
  // session back), whatever order they end in.
  tally.logout_undone = 0;
  for (let r = 0; r < rounds; r++) {
    const li = await req(ports[0], 'POST', '/login', null, { username: `racer${r}` });
    const adds = Array.from({ length: tabs }, (_, k) => req(ports[k % ports.length], 'POST', '/cart/add', li.cookie, { item: `x${r}t${k}` }));
    const out = req(ports[r % ports.length], 'POST', '/logout', li.cookie);
    await Promise.all([...adds, out]);
    const me = JSON.parse((await req(ports[1], 'GET', '/cart.json', li.cookie)).body);
    if (me.user) tally.logout_undone++;
  }
  console.log(JSON.stringify(tally));
})();
