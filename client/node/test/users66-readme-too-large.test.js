'use strict';
// users-66: the README's "Example" answers a session too large for sessd with a 500 and must
// say why in the app's log. A session that outgrows --max-frame (a cart of thousands of items,
// README "Differences", "Size limits") fails its save with ESESSD_TOO_LARGE, whose statusCode is
// 500; the example's error handler logged only errors without a statusCode, so the visitor got
// "Something went wrong" on every save from then on and the log said nothing. Run as
// readme-example.test.js runs the example: the code block copied whole into app.js.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Daemon, Browser, waitFor, NODE_DIR } = require('./helpers');

const LISTEN = 'app.listen(3000);';

function readmeExample() {
  const readme = fs.readFileSync(path.join(NODE_DIR, 'README.md'), 'utf8');
  const m = /^## Example\n[\s\S]*?^```js\n([\s\S]*?)^```$/m.exec(readme);
  assert.ok(m, 'README.md has an "## Example" with a js block');
  assert.ok(m[1].includes(LISTEN), `the example ends with ${LISTEN}`);
  return m[1].replace(LISTEN, 'const server = app.listen(0, \'127.0.0.1\', () => console.log(`LISTENING ${server.address().port}`));');
}

test('README example: a login whose session is too large for sessd is a 500 that the app logs', async (t) => {
  // 16 KiB frames: a 20,000-byte user name (within express.urlencoded's 100 KB) makes a
  // session sessd cannot hold, as a cart of thousands of items does under the default 1 MiB.
  const daemon = await new Daemon({ extraArgs: ['--max-frame', '16384'] }).start();
  t.after(() => daemon.cleanup());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'users66-too-large-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(NODE_DIR, path.join(dir, 'node_modules', 'connect-sessd'));
  fs.writeFileSync(path.join(dir, 'app.js'), readmeExample());
  const env = { ...process.env, SESSD_URL: daemon.unixUrl, NODE_PATH: path.join(NODE_DIR, 'node_modules'), SESSION_SECRET: 'users66-secret' };
  const proc = spawn(process.execPath, ['app.js'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => proc.kill('SIGKILL'));
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const port = await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`app.js exited ${proc.exitCode}: ${err}`);
    const m = /LISTENING (\d+)/.exec(out);
    return m && m[1];
  }, 'the README example to listen');
  const b = new Browser(`http://127.0.0.1:${port}`);

  // The same login with a short name works: the app and daemon are sound.
  assert.equal((await new Browser(`http://127.0.0.1:${port}`).post('/login', { username: 'ada' })).status, 303);
  const login = await b.post('/login', { username: 'x'.repeat(20000) });
  assert.equal(login.status, 500, 'the save sessd refuses as too large is the error page');
  assert.match(login.body, /Something went wrong/);
  // The log is written as the error page goes out; give a loaded machine time to flush it.
  await waitFor(() => /TOO_LARGE/.test(err), 'the app to log why the page failed', 5000).catch(() => {});
  assert.match(err, /TOO_LARGE/, `the app's log says why the visitor got a 500; it holds: ${JSON.stringify(err.slice(0, 300))}`);
});
