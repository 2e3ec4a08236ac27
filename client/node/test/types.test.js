'use strict';
// The package as a TypeScript or ES module user installs it: index.d.ts type-checks a strict
// Express app (test/fixtures/ts-app) and refuses wrong uses, and an ES module gets the
// default and named exports at run time. The fixture is checked against the package as
// `npm pack` makes it (so "files" and "types" are tested too), in a temporary node_modules
// whose other packages are this package's own.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const NODE_DIR = path.resolve(__dirname, '..');
const FIXTURE_DIR = path.join(__dirname, 'fixtures', 'ts-app');
const TSC = path.join(NODE_DIR, 'node_modules', 'typescript', 'bin', 'tsc');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let work; // { dir, app }: the temporary install and the fixture copied into it

// run(cmd, args, opts): { status, stdout, out (stdout and stderr) } of a command run to its end.
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, out: r.stdout + r.stderr };
}

function tsc(project) {
  return run(process.execPath, [TSC, '--pretty', 'false', '-p', project], { cwd: work.app });
}

// tscErrors(out): "file:line TSnnnn" of each error tsc printed, file relative to the fixture.
function tscErrors(out) {
  const errs = [];
  for (const m of out.matchAll(/^(.+?)\((\d+),\d+\): error (TS\d+):/gm)) {
    errs.push(`${path.relative(work.app, path.resolve(work.app, m[1]))}:${m[2]} ${m[3]}`);
  }
  return errs.sort();
}

test.before(() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessd-types-'));
  work = { dir, app: path.join(dir, 'app') };
  const packed = run(NPM, ['pack', '--json', '--pack-destination', dir], { cwd: NODE_DIR });
  assert.equal(packed.status, 0, packed.out);
  const [info] = JSON.parse(packed.stdout);
  const files = info.files.map((f) => f.path);
  for (const f of ['index.js', 'index.d.ts', 'lib/store.js']) assert.ok(files.includes(f), `npm pack leaves out ${f}: ${files}`);

  const modules = path.join(dir, 'node_modules');
  const pkg = path.join(modules, 'connect-sessd');
  fs.mkdirSync(pkg, { recursive: true });
  const untar = run('tar', ['-xzf', path.join(dir, info.filename), '-C', pkg, '--strip-components=1']);
  assert.equal(untar.status, 0, untar.out);
  for (const name of fs.readdirSync(path.join(NODE_DIR, 'node_modules'))) {
    if (name === '.bin' || name.startsWith('.package-lock')) continue;
    fs.symlinkSync(path.join(NODE_DIR, 'node_modules', name), path.join(modules, name));
  }
  fs.cpSync(FIXTURE_DIR, work.app, { recursive: true });
});

test.after(() => {
  if (work) fs.rmSync(work.dir, { recursive: true, force: true });
});

test('types: a strict Express app on connect-sessd type-checks', () => {
  const r = tsc('tsconfig.json');
  assert.deepEqual(tscErrors(r.out), [], r.out);
  assert.equal(r.status, 0, r.out);
});

test('types: wrong uses fail to type-check, each with its expected error', () => {
  const src = path.join(work.app, 'must-fail', 'wrong.ts');
  const expected = [];
  fs.readFileSync(src, 'utf8').split('\n').forEach((line, i) => {
    const m = /\/\/ expect (TS\d+)$/.exec(line);
    if (m) expected.push(`must-fail/wrong.ts:${i + 1} ${m[1]}`);
  });
  assert.ok(expected.length >= 3, 'the fixture marks its expected errors');
  const r = tsc('must-fail/tsconfig.json');
  assert.notEqual(r.status, 0, r.out);
  assert.deepEqual(tscErrors(r.out), expected.sort(), r.out);
});

// Every opcode and status the codec has at run time is declared, with its value: OP lacked
// NAMESPACES (0x34), so codec.OP.NAMESPACES, there at run time, failed to type-check.
test('types: every opcode and status of the codec is declared, with its value', () => {
  const { codec } = require('..');
  const dir = path.join(work.app, 'codec-names');
  fs.mkdirSync(dir, { recursive: true });
  const lines = ["import { codec } from 'connect-sessd';", 'export const names: number[] = [];'];
  for (const [table, entries] of [['OP', codec.OP], ['STATUS', codec.STATUS]]) {
    for (const [name, value] of Object.entries(entries)) lines.push(`names.push(codec.${table}.${name} satisfies ${value});`);
  }
  fs.writeFileSync(path.join(dir, 'names.ts'), lines.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', compilerOptions: { skipLibCheck: true }, files: ['names.ts'] }));
  const r = tsc('codec-names/tsconfig.json');
  assert.deepEqual(tscErrors(r.out), [], r.out);
  assert.equal(r.status, 0, r.out);
});

test('types: an ES module imports the package, default and named exports', () => {
  const r = run(process.execPath, [path.join(work.app, 'runtime-import.mjs')], { cwd: work.app });
  assert.equal(r.status, 0, r.out);
  // Every name index.js exports is declared in index.d.ts: tool.ts and app.ts import each.
  assert.deepEqual(JSON.parse(r.out), ['Client', 'SessdError', 'SessdStore', 'codec', 'dataTag', 'flash', 'genid']);
});
