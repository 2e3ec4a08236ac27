'use strict';
// Scenario 1: BROWSERS browsers on each app (ports from PORTS, comma-separated), each logging
// in, then ROUNDS rounds of TABS tabs at once, each setting a different key (k0..k{TABS-1})
// and flashing it, then TABS tabs at once reading /state (each pops the flashes). Counts:
// sets answered 303 whose value a later /state lacks (lost), flash tokens shown twice or
// never, logins lost, error statuses. Prints one JSON line per app and exits 1 on any loss.
const { Browser } = require('./browser');
const PORTS = (process.env.PORTS || '18101,18102').split(',').map(Number);
const BROWSERS = Number(process.env.BROWSERS || 8);
const ROUNDS = Number(process.env.ROUNDS || 10);
const TABS = Number(process.env.TABS || 6);

async function oneBrowser(port, b, tally) {
  const br = new Browser(port);
  const user = `u${port}-${b}`;
  const expected = new Map(); // flash message -> times shown
  const r = await br.request('POST', `/login?user=${user}`);
  if (r.status !== 303) { tally.errors[r.status] = (tally.errors[r.status] || 0) + 1; return; }
  expected.set(`welcome:${user}`, 0);
  const want = {};
  for (let round = 0; round < ROUNDS; round++) {
    const sets = await Promise.all(Array.from({ length: TABS }, (_, t) => br.request('POST', `/set/k${t}?val=r${round}`)));
    sets.forEach((s, t) => {
      tally.sets++;
      if (s.status === 303) { want[`k${t}`] = `r${round}`; expected.set(`set:k${t}=r${round}`, 0); } else tally.errors[s.status] = (tally.errors[s.status] || 0) + 1;
    });
    const pages = await Promise.all(Array.from({ length: TABS }, () => br.request('GET', '/state')));
    for (const p of pages) {
      tally.pages++;
      if (p.status !== 200) { tally.errors[p.status] = (tally.errors[p.status] || 0) + 1; continue; }
      const st = p.json();
      tally.pids.add(st.pid);
      if (st.user !== user) tally.loggedOut++;
      for (const m of st.flashes) {
        if (!expected.has(m)) tally.unknown++;
        else expected.set(m, expected.get(m) + 1);
      }
    }
  }
  // A last look: every key holds the value its last 303 set; the flashes left pop now.
  const last = await br.request('GET', '/state');
  if (last.status === 200) {
    const st = last.json();
    for (const m of st.flashes) if (expected.has(m)) expected.set(m, expected.get(m) + 1); else tally.unknown++;
    for (const [k, v] of Object.entries(want)) if (st.keys[k] !== v) { tally.lost++; if (tally.lostSamples.length < 5) tally.lostSamples.push(`${user} ${k}: want ${v}, got ${st.keys[k]}`); }
  } else tally.errors[last.status] = (tally.errors[last.status] || 0) + 1;
  for (const [, n] of expected) { if (n === 0) tally.never++; else if (n > 1) tally.twice++; tally.flashes++; }
}

(async () => {
  let bad = false;
  await Promise.all(PORTS.map(async (port) => {
    const tally = { port, sets: 0, pages: 0, flashes: 0, lost: 0, never: 0, twice: 0, unknown: 0, loggedOut: 0, errors: {}, pids: new Set(), lostSamples: [] };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: BROWSERS }, (_, b) => oneBrowser(port, b, tally)));
    tally.seconds = (Date.now() - t0) / 1000;
    tally.workers = tally.pids.size;
    delete tally.pids;
    if (tally.lost || tally.never || tally.twice || tally.unknown || tally.loggedOut || Object.keys(tally.errors).length) bad = true;
    console.log(JSON.stringify(tally));
  }));
  process.exit(bad ? 1 : 0);
})();
