'use strict';
// connect-sessd through scripts/mitm-proxy.py, for scripts/mitm-clients.sh (by hand).
//   node scripts/mitm-node.js PROXY_PORT DAEMON_PORT plain|hold ID
// The secret is read from the file $SESSD_MITM_AUTH. plain: a PING (the connection's first
// record), a SET (its second: the one the proxy acts on), then the store read without the
// proxy. hold: PING, SET (a login), DESTROY (the logout), then the store read 5 s later.
const fs = require('fs');
const path = require('path');
const { Client } = require(path.join(__dirname, '..', 'client', 'node'));

const [proxyPort, daemonPort, mode, id] = process.argv.slice(2);
const auth = fs.readFileSync(process.env.SESSD_MITM_AUTH);
const opts = { auth, poolSize: 1, timeoutMs: 2000, restartWaitMs: 3000 };
const via = new Client({ ...opts, url: `tcp://127.0.0.1:${proxyPort}` });
const direct = new Client({ ...opts, url: `tcp://127.0.0.1:${daemonPort}` });
via.on('error', () => {});
direct.on('error', () => {});

async function show(what, promise) {
  try {
    const v = await promise;
    console.log(`${what}: ok ${v === undefined ? '' : JSON.stringify(v)}`);
  } catch (err) {
    console.log(`${what}: ${err.code} ${err.message}`);
  }
}

const stored = () => direct.get('default', id).then((b) => (b ? b.toString() : null));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

(async () => {
  await show('ready', via.ready({ timeoutMs: 5000 }).then(() => undefined));
  await show('ping', via.ping());
  if (mode === 'hold') {
    await show('login set', via.set('default', id, Buffer.from('{"user":"alice"}'), 60000));
    await show('logout destroy', via.destroy('default', id));
    await show('store', stored());
    // The proxy lets the held record through after its --delay (MITM_HOLD_S, default 4).
    const waitS = Number(process.env.MITM_HOLD_S || 4) + 1;
    await sleep(waitS * 1000);
    await show(`store ${waitS} s after the logout`, stored());
  } else {
    await show('set', via.set('default', id, Buffer.from('v'), 60000));
    await sleep(300);
    await show('store', stored());
  }
  via.terminate();
  direct.terminate();
})();
