'use strict';
// The suite on Express 4: `node --require ./test/express4-preload.js --test ...` (npm run
// test:express4) makes every require('express') load the express4 devDependency, an npm alias
// of express@4, which most apps in production still run. Only this process and those that
// inherit its execArgv (cluster workers) are affected; `npm test` runs on Express 5.
// test:express4 runs only the files marked "// test:express4: " (the reason follows): those
// where connect-sessd meets Express's own response code (res.redirect, res.send, res.render,
// res.cookie, the error handlers), which differs between the majors. The others use Express
// only to serve requests to express-session and the store, which are the same code on both.
const Module = require('module');
const path = require('path');

const express4 = path.dirname(require.resolve('express4/package.json', { paths: [__dirname] }));
const resolveFilename = Module._resolveFilename;

Module._resolveFilename = function resolveExpress4(request, ...rest) {
  if (request === 'express' || request.startsWith('express/')) {
    request = express4 + request.slice('express'.length);
  }
  return resolveFilename.call(this, request, ...rest);
};
