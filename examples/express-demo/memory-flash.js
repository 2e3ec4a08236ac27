'use strict';
// A connect-flash-like req.flash kept inside the session, with connect-sessd's promise API.
// Only for running the demo on express-session's MemoryStore (the benchmark baseline):
// here a whole-session save can drop a flash, which is what connect-sessd avoids.

const util = require('util');

function middleware() {
  return (req, res, next) => {
    req.flash = async (type, msg, ...rest) => {
      const all = req.session.flash || {};
      if (type === undefined) {
        req.session.flash = {};
        return all;
      }
      if (msg === undefined) {
        const msgs = all[type] || [];
        delete all[type];
        req.session.flash = all;
        return msgs;
      }
      const msgs = Array.isArray(msg) ? msg : [rest.length ? util.format(msg, ...rest) : msg];
      const q = (all[type] = all[type] || []);
      q.push(...msgs);
      req.session.flash = all;
      return q.length;
    };
    next();
  };
}

function locals() {
  return (req, res, next) => {
    if (req.method !== 'GET' || !req.session || !req.session.flash) {
      res.locals.flash = {};
      next();
      return;
    }
    res.locals.flash = req.session.flash;
    req.session.flash = {};
    next();
  };
}

module.exports = { middleware, locals };
