'use strict';
// req.flash as code written for connect-flash expects it: connect-flash keeps messages in
// req.session, which express-session's stores save as JSON, so a message comes back as its
// JSON form; and its calling forms (if (type && msg) push; else if (type) read one type; else
// read every type). Each scenario runs on sessd and on express-session's MemoryStore (the
// in-session path apps' tests use), which must agree.
// test:express4: connect-flash's calls through Express's res.render and res.redirect.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const express = require('express');
const session = require('express-session');
const { SessdStore, flash } = require('..');
const { Daemon, Browser, listen, closeServer } = require('./helpers');

const SECRET = 'flash-json-secret';
let daemon;

test.before(async () => {
  daemon = await new Daemon().start();
});

test.after(async () => {
  if (daemon) await daemon.cleanup();
});

// serve(t, store, routes, opts): an app with express-session on store and flash(opts); routes(app)
// adds the routes. Returns the base URL.
async function serve(t, store, routes, opts = {}) {
  const app = express();
  app.use(session({ store, secret: SECRET, name: 'sid', resave: false, saveUninitialized: false }));
  app.use(flash(opts));
  routes(app);
  const { server, base } = await listen(app);
  t.after(async () => {
    await closeServer(server);
    if (store.close) store.close();
  });
  return base;
}

// onBothStores(t, namespace, scenario): scenario(store) on a SessdStore and on a MemoryStore;
// asserts they give the same result and returns the sessd one.
async function onBothStores(t, namespace, scenario) {
  const onSessd = await scenario(new SessdStore({ url: daemon.unixUrl, namespace }));
  const onMemory = await scenario(new session.MemoryStore());
  assert.deepEqual(onMemory, onSessd, 'MemoryStore and sessd agree');
  return onSessd;
}

// Like mongoose's ValidatorError: an Error whose fields come from a toJSON on its prototype
// (message is not enumerable), with a function among its own properties.
class ValidatorLike extends Error {
  constructor(message, field) {
    super(message);
    this.path = field;
    this.properties = { validator: () => false, path: field };
  }

  toJSON() {
    return { message: this.message, path: this.path };
  }
}

const ISO5 = new Date(5).toISOString();

// Acceptance review: an object with a method or an own toJSON made the push reject
// ("Unrecognized object: [object Function]"), and a class instance whose toJSON is on its
// prototype lost its fields: req.flash('errors', mongooseErr.errors), not awaited, then a
// redirect showed [] where connect-flash shows "Path `email` is invalid".
test('a message that is not a string comes back as its JSON form, as connect-flash gives it back', async (t) => {
  const popped = await onBothStores(t, 'flash-json', async (store) => {
    const errors = [];
    let page = null;
    const base = await serve(t, store, (app) => {
      app.get('/signup', (req, res) => {
        // Not awaited, as connect-flash code does.
        req.flash('v', { email: new ValidatorLike('Path `email` is invalid', 'email') });
        req.flash('v', { toJSON: () => 'as-json', secret: 'internal' });
        req.flash('v', { a: 1, f() {}, gone: undefined, list: [undefined, 1], [Symbol('s')]: 2 });
        req.flash('v', new Date(5));
        req.flash('v', { at: new Date(5), n: NaN, i: -Infinity, m: new Map([['a', 1]]), s: new Set([1]) });
        req.flash('v', Buffer.from('hi'));
        req.flash('v', ['x', undefined, () => 1, Symbol('y'), 7]);
        res.redirect('/form');
      });
      app.get('/form', async (req, res) => {
        page = await req.flash('v');
        res.json({ ok: true });
      });
    }, { onError: (err) => errors.push(err.message) });
    const br = new Browser(base);
    assert.equal((await br.get('/signup')).status, 302);
    assert.equal((await br.get('/form')).status, 200);
    return { page, errors };
  });
  assert.deepEqual(popped.errors, []);
  assert.deepEqual(popped.page, [
    { email: { message: 'Path `email` is invalid', path: 'email' } },
    'as-json',
    { a: 1, list: [null, 1] },
    ISO5,
    { at: ISO5, n: null, i: null, m: {}, s: {} },
    { type: 'Buffer', data: [104, 105] },
    'x', null, null, null, 7,
  ]);
  // Undefined properties are gone, not null: JSON drops them.
  assert.equal(Object.hasOwn(popped.page[2], 'gone'), false);
});

// A JSON request body flashed back (a form shown again with its errors) may hold a
// "__proto__" key, put there by whoever posted it: MessagePack's decoder refuses the key, and
// the message came back as raw bytes. It is dropped; nothing is polluted.
test('a message with a "__proto__" key comes back without it, on either store', async (t) => {
  const popped = await onBothStores(t, 'flash-proto', async (store) => {
    let page = null;
    const base = await serve(t, store, (app) => {
      app.get('/post', (req, res) => {
        req.flash('form', JSON.parse('{"name":"ada","__proto__":{"polluted":true},"n":{"__proto__":{"x":1},"k":2}}'));
        res.redirect('/form');
      });
      app.get('/form', async (req, res) => {
        page = await req.flash('form');
        res.json({ ok: true });
      });
    });
    const br = new Browser(base);
    assert.equal((await br.get('/post')).status, 302);
    assert.equal((await br.get('/form')).status, 200);
    return page;
  });
  assert.deepEqual(popped, [{ name: 'ada', n: { k: 2 } }]);
  assert.equal(Object.hasOwn(popped[0], '__proto__'), false);
  assert.equal({}.polluted, undefined);
});

test('a message JSON cannot hold (a bigint, a cycle) rejects the push with a TypeError, and an array pushes all or nothing', async (t) => {
  const result = await onBothStores(t, 'flash-json-refused', async (store) => {
    const reported = [];
    let out = null;
    const base = await serve(t, store, (app) => {
      app.get('/push', async (req, res) => {
        const cycle = { name: 'loop' };
        cycle.self = cycle;
        const settled = await Promise.allSettled([
          req.flash('v', 10n),
          req.flash('v', { count: 10n }),
          req.flash('v', cycle),
          req.flash('v', ['fine', 'also fine', 10n]),
        ]);
        const refusals = settled.map((s) => (s.status === 'rejected' ? { type: s.reason.constructor.name, message: s.reason.message } : s.value));
        out = { refusals, left: await req.flash('v') };
        res.json({ ok: true });
      });
    }, { onError: (err) => reported.push(err.constructor.name) });
    assert.equal((await new Browser(base).get('/push')).status, 200);
    return { ...out, reported };
  });
  for (const r of result.refusals) {
    assert.equal(r.type, 'TypeError');
    assert.match(r.message, /^req\.flash\(\): a flash message must be JSON data/);
  }
  assert.match(result.refusals[0].message, /BigInt/);
  assert.match(result.refusals[2].message, /circular/);
  assert.deepEqual(result.left, [], 'nothing of a refused array was pushed');
  assert.deepEqual(result.reported, ['TypeError', 'TypeError', 'TypeError', 'TypeError']);
});

// Acceptance review: req.flash('info', undefined, name) pushed "undefined ada" where
// connect-flash reads; req.flash(404, msg) and req.flash('', msg) rejected where connect-flash
// pushes to "404" and reads every type.
test('the edge calling forms do what they do in connect-flash', async (t) => {
  const steps = [
    ['info', 'hello'],
    ['info', undefined, 'ada'],
    ['info', null, 'ada'],
    ['info'],
    [404, 'Not found'],
    [404, 'Gone too'],
    ['404'],
    [404, 'again'],
    [],
    ['a', 'x'],
    ['', 'dropped'],
    [],
    ['b', 'y'],
    [0, 'dropped'],
    [false, 'dropped'],
    [],
    [{}, 'm'],
    [Symbol('s'), 'm'],
    [],
  ];
  const results = await onBothStores(t, 'flash-json-forms', async (store) => {
    let out = null;
    const base = await serve(t, store, (app) => {
      app.get('/steps', async (req, res) => {
        out = [];
        for (const args of steps) {
          try {
            out.push(await req.flash(...args));
          } catch (err) {
            out.push(`${err.constructor.name}: ${err.message}`);
          }
        }
        res.json({ ok: true });
      });
    });
    assert.equal((await new Browser(base).get('/steps')).status, 200);
    return out;
  });
  const typeError = 'TypeError: req.flash(): a flash type must be a string (or a number, which names the queue String(type))';
  assert.deepEqual(results, [
    1,
    ['hello'], // read, as connect-flash reads on a falsy message: "undefined ada" is not pushed
    [],
    [],
    1,
    2,
    ['Not found', 'Gone too'], // the type 404 is the queue "404"
    1,
    { 404: ['again'] },
    1,
    { a: ['x'] }, // the type '' reads every type, and pushes nothing
    {},
    1,
    { b: ['y'] },
    {},
    {},
    typeError,
    typeError,
    {},
  ]);
});

// A push of this request moved by regenerate() (passport's successFlash) is found among the
// popped messages by its stored form: a Date must be compared as the string sessd holds.
test('a regenerate moves a message that JSON turned into a string, once', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-json-regen' });
  let page = null;
  const base = await serve(t, store, (app) => {
    app.get('/login', (req, res, next) => {
      req.flash('when', new Date(5));
      req.flash('who', { name: 'ada', at: new Date(5), gone: undefined });
      req.session.regenerate((err) => {
        if (err) return next(err);
        req.session.user = 'ada';
        res.redirect('/home');
      });
    });
    app.get('/home', async (req, res) => {
      page = await req.flash();
      res.json({ ok: true });
    });
  });
  const br = new Browser(base);
  assert.equal((await br.get('/login')).status, 302);
  assert.equal((await br.get('/home')).status, 200);
  assert.deepEqual(page, { when: [ISO5], who: [{ name: 'ada', at: ISO5 }] });
});

// Messages pushed before flash() stored JSON forms went in as MessagePack of the value itself
// (Client#flashPush still does that): they decode as they did.
test('messages stored as the value\'s MessagePack, as earlier versions pushed them, still decode', async (t) => {
  const store = new SessdStore({ url: daemon.unixUrl, namespace: 'flash-json-old' });
  let page = null;
  const base = await serve(t, store, (app) => {
    app.get('/start', async (req, res) => {
      await req.flash('new', { gone: undefined, at: new Date(5) });
      res.json({ sid: req.sessionID });
    });
    app.get('/page', async (req, res) => {
      page = await req.flash();
      res.json({ ok: true });
    });
  });
  const br = new Browser(base);
  const { sid } = JSON.parse((await br.get('/start')).body);
  await store.client.flashPush('flash-json-old', sid, 'old', { gone: undefined, at: new Date(5) }, 60000);
  assert.equal((await br.get('/page')).status, 200);
  assert.deepEqual(page, { new: [{ at: ISO5 }], old: [{ gone: null, at: new Date(5) }] });
});

// The declarations refuse what the push refuses at its top level (a bigint, a symbol: an array
// or object holding one is an `object` to TypeScript, refused only at run time), and
// type a format that may be undefined (it reads) as a push or a pop.
test('types: req.flash refuses a bigint or a symbol message and types an undefined format as a pop', (t) => {
  const nodeDir = path.resolve(__dirname, '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-flash-types-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.symlinkSync(path.join(nodeDir, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'] },
    files: ['check.ts'],
  }));
  const lines = [
    `import type { Request } from 'express';`,
    `import type {} from ${JSON.stringify(path.join(nodeDir, 'index.js'))};`,
    'declare const req: Request;',
    'declare const t: (key: string) => string | undefined;',
    'declare const errors: Record<string, { message: string }>;',
    `const maybe: Promise<number | unknown[]> = req.flash('info', t('welcome'), 'ada');`,
    `const pushed: Promise<number> = req.flash('errors', errors);`,
    `const when: Promise<number> = req.flash('when', new Date());`,
    `const many: Promise<number | undefined> = req.flash('v', ['x', undefined, 1, { a: 1 }]);`,
    `// @ts-expect-error a bigint message rejects`,
    `void req.flash('v', 10n);`,
    `// @ts-expect-error a symbol message is stored as null`,
    `void req.flash('v', Symbol('s'));`,
    `// @ts-expect-error an undefined format may pop: not a plain push's number`,
    `const notNumber: Promise<number> = req.flash('info', t('welcome'), 'ada');`,
    'export { maybe, pushed, when, many, notNumber };',
  ];
  fs.writeFileSync(path.join(dir, 'check.ts'), lines.join('\n') + '\n');
  const r = spawnSync(process.execPath, [path.join(nodeDir, 'node_modules', 'typescript', 'bin', 'tsc'), '--pretty', 'false', '-p', dir], { encoding: 'utf8', timeout: 60000 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
