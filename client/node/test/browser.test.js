'use strict';
// The example app (examples/express-demo) in headless Chromium, driven by playwright-core:
// log in, add to the cart, see the flash once, reload and see it gone, log out. Two app
// processes share the daemon, which runs with --auth-file: the demos get the secret in
// SESSD_AUTH_FILE, so their connections are sealed (the default). The browser moves between them.
// playwright-core stays at 1.60 (package.json): 1.62 and later refuse to run on Node 18
// ("Playwright requires Node.js 20 or higher"), which connect-sessd stated until stop 65 (the
// tests now run on 20 everywhere: scripts/deps); 1.60 drives Debian's current Chromium.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Daemon, REPO_DIR } = require('./helpers');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const DEMO_DIR = path.join(REPO_DIR, 'examples/express-demo');
const SCREENSHOT = path.join(os.tmpdir(), 'sessd-express-demo.png');

// startDemo(env): a demo process and its base URL (read from its "listening on" line).
function startDemo(env) {
  if (!fs.existsSync(path.join(DEMO_DIR, 'node_modules/connect-sessd'))) {
    throw new Error(`the example's dependencies are not installed: run npm ci in ${DEMO_DIR}`);
  }
  const proc = spawn(process.execPath, ['server.js'], {
    cwd: DEMO_DIR,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the demo did not start: ' + out)), 15000);
    const onData = (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        // output: what the demo said so far, for a failure's message.
        resolve({ proc, base: m[1], output: () => out });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (d) => {
      out += d;
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the demo exited (${code}): ${out}`));
    });
  });
}

function stopDemo(demo) {
  return new Promise((resolve) => {
    if (demo.proc.exitCode !== null) return resolve();
    demo.proc.once('exit', () => resolve());
    demo.proc.kill('SIGTERM');
    return undefined;
  });
}

test('the example app in headless Chromium', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y --no-install-recommends chromium (or set CHROMIUM_BIN)`);
  }
  const { chromium } = require('playwright-core');
  const daemon = new Daemon();
  const secret = 'browser-test-secret-91c3e5a7f0b2d4';
  const secretFile = daemon.writeSecret(secret);
  daemon.extraArgs = ['--auth-file', secretFile];
  await daemon.start();
  t.after(() => daemon.cleanup());
  const env = { SESSD_URL: daemon.tcpUrl, SESSD_NAMESPACE: 'browser-test', SESSD_AUTH_FILE: secretFile };
  const demoA = await startDemo(env);
  t.after(() => stopDemo(demoA));
  const demoB = await startDemo({ ...env, SESSD_URL: daemon.unixUrl });
  t.after(() => stopDemo(demoB));

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-chromium-'));
  let context = null;
  // One hook, so the profile is removed only after Chromium has exited.
  t.after(async () => {
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  const flashText = async () => (await page.locator('#flash').innerText()).trim();
  // A page that cannot be reached says what became of both demos (a run once saw
  // ERR_CONNECTION_REFUSED from a demo that had announced its port).
  const describe = (name, d) => `${name} (exit ${d.proc.exitCode}, signal ${d.proc.signalCode}): ${d.output()}`;
  const visit = async (url) => {
    try {
      await page.goto(url);
    } catch (err) {
      err.message += `\n${describe('demo A', demoA)}\n${describe('demo B', demoB)}`;
      throw err;
    }
  };

  await visit(demoA.base + '/');
  await page.fill('#username', 'Grace');
  await page.click('#login');
  await page.waitForURL(demoA.base + '/');
  assert.equal(await flashText(), 'Welcome back, Grace');
  assert.match(await page.locator('#user').innerText(), /Grace/);

  await page.fill('#item', '2 lemons');
  await page.click('#add');
  await page.waitForSelector('#cart li');
  assert.equal(await flashText(), 'Added 2 lemons');
  assert.equal((await page.locator('#cart').innerText()).trim(), '2 lemons');
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  await page.reload();
  assert.equal(await flashText(), '', 'the flash is shown once');
  assert.equal((await page.locator('#cart').innerText()).trim(), '2 lemons');

  // The same browser on the other process: same session, same cart.
  await visit(demoB.base + '/');
  assert.match(await page.locator('#user').innerText(), /Grace/);
  await page.fill('#item', 'apple');
  await page.click('#add');
  await page.waitForSelector('#flash p');
  assert.equal(await flashText(), 'Added 1 apple');
  assert.deepEqual((await page.locator('#cart li').allInnerTexts()).map((s) => s.trim()), ['2 lemons', '1 apple']);

  await page.click('#logout');
  await page.waitForSelector('#username');
  assert.equal(await flashText(), 'Goodbye, Grace');
  await page.reload();
  assert.equal(await flashText(), '');
  assert.equal(await page.locator('#user').count(), 0);
  await visit(demoA.base + '/');
  assert.equal(await page.locator('#username').count(), 1, 'logged out on the other process too');
});
