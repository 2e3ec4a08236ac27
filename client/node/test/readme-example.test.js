'use strict';
// The README's "Example", run as a newcomer runs it: the code block copied whole into a file,
// `node app.js`, connect-sessd installed beside express and express-session. Only its
// `app.listen(3000)` is changed, to a free port. A visitor logs in, sees the welcome flash on
// the next page and not on the one after. And the first thing a newcomer gets wrong, starting
// it without SESSION_SECRET (express-session then fails every request), must be in the app's
// log: the example's error handler answered "Something went wrong" and logged nothing, so
// nothing said why.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Daemon, Browser, waitFor, NODE_DIR } = require('./helpers');

const LISTEN = 'app.listen(3000);';

// The ```js block that follows "## Example" in README.md.
function readmeExample() {
  const readme = fs.readFileSync(path.join(NODE_DIR, 'README.md'), 'utf8');
  const m = /^## Example\n[\s\S]*?^```js\n([\s\S]*?)^```$/m.exec(readme);
  assert.ok(m, 'README.md has an "## Example" with a js block');
  assert.ok(m[1].includes(LISTEN), `the example ends with ${LISTEN}`);
  return m[1].replace(LISTEN, 'const server = app.listen(0, \'127.0.0.1\', () => console.log(`LISTENING ${server.address().port}`));');
}

let daemon;
let dir;

test.before(async () => {
  daemon = await new Daemon().start();
  // The app's own folder: app.js, and connect-sessd where `npm install` would put it (the
  // checkout's express and express-session are found through NODE_PATH, as installed ones).
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-example-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(NODE_DIR, path.join(dir, 'node_modules', 'connect-sessd'));
  fs.writeFileSync(path.join(dir, 'app.js'), readmeExample());
});

test.after(async () => {
  await daemon.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

// Starts `node app.js` with env added; resolves once it listens, with its base URL and a
// getter of everything it has written to standard error.
async function startApp(t, env) {
  const childEnv = { ...process.env, SESSD_URL: daemon.unixUrl, NODE_PATH: path.join(NODE_DIR, 'node_modules'), ...env };
  if (env.SESSION_SECRET === undefined) delete childEnv.SESSION_SECRET;
  const proc = spawn(process.execPath, ['app.js'], { cwd: dir, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => proc.kill('SIGKILL'));
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => {
    out += d;
  });
  proc.stderr.on('data', (d) => {
    err += d;
  });
  const port = await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`app.js exited ${proc.exitCode}: ${err}`);
    const m = /LISTENING (\d+)/.exec(out);
    return m && m[1];
  }, 'the README example to listen');
  return { base: `http://127.0.0.1:${port}`, stderr: () => err };
}

test('README example: log in, the welcome flash shows once', async (t) => {
  const { base } = await startApp(t, { SESSION_SECRET: 'readme-example-secret' });
  const b = new Browser(base);
  assert.match((await b.get('/')).body, /Hello stranger/);
  const login = await b.post('/login', { username: 'ada' });
  assert.equal(login.status, 303);
  assert.equal(login.location, '/');
  const page = (await b.get('/')).body;
  assert.match(page, /<p>Welcome back, ada<\/p><p>Hello ada<\/p>/);
  assert.equal((await b.get('/')).body, '<p>Hello ada</p>');
});

test('README example: started without SESSION_SECRET, the 500 says why in the app\'s log', async (t) => {
  const app = await startApp(t, { SESSION_SECRET: undefined });
  const b = new Browser(app.base);
  const res = await b.get('/');
  assert.equal(res.status, 500);
  await waitFor(() => app.stderr().includes('secret option required for sessions'), `the error in the app's log (it has: ${app.stderr()})`, 5000);
});

// users-66: a session that outgrows --max-frame (a cart of thousands of items: README
// "Differences", "Size limits") fails its save with ESESSD_TOO_LARGE, whose statusCode is 500;
// the example's error handler logged only errors without a statusCode, so the visitor got
// "Something went wrong" on every save from then on and the log said nothing.
test('README example: a login whose session is too large for sessd is a 500 that the app logs', async (t) => {
  // 16 KiB frames: a 20,000-byte user name (within express.urlencoded's 100 KB) makes a
  // session sessd cannot hold, as a cart of thousands of items does under the default 1 MiB.
  const small = await new Daemon({ extraArgs: ['--max-frame', '16384'] }).start();
  t.after(() => small.cleanup());
  const app = await startApp(t, { SESSION_SECRET: 'users66-secret', SESSD_URL: small.unixUrl });
  // The same login with a short name works: the app and daemon are sound.
  assert.equal((await new Browser(app.base).post('/login', { username: 'ada' })).status, 303);
  const login = await new Browser(app.base).post('/login', { username: 'x'.repeat(20000) });
  assert.equal(login.status, 500, 'the save sessd refuses as too large is the error page');
  assert.match(login.body, /Something went wrong/);
  // The log is written as the error page goes out: wait for it, then say what it holds.
  await waitFor(() => /TOO_LARGE/.test(app.stderr()), 'the app to log why the page failed', 5000).catch(() => {});
  assert.match(app.stderr(), /TOO_LARGE/, `the app's log says why the visitor got a 500; it holds: ${JSON.stringify(app.stderr().slice(0, 300))}`);
});
