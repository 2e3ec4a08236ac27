'use strict';
// startSessd(sessd, dir): a memory-only sessd on the Unix socket DIR/sessd.sock, its debug log
// in DIR/sessd.log; resolves { p (the process), url } once it is ready (20 s at most).
// Shared by flashcompat.js and storecontract.js.
const path = require('path');
const fs = require('fs');
const { spawn } = require('child_process');

function startSessd(sessd, dir) {
  return new Promise((resolve, reject) => {
    const sock = path.join(dir, 'sessd.sock');
    const ready = path.join(dir, 'ready');
    const p = spawn(sessd, ['--listen', `unix:${sock}`, '--ready-file', ready, '--log-level', 'debug'], {
      stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'sessd.log'), 'a')],
    });
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (fs.existsSync(ready)) { clearInterval(poll); resolve({ p, url: `unix:${sock}` }); }
      else if (Date.now() - t0 > 20000) { clearInterval(poll); reject(new Error('sessd not ready')); }
    }, 50);
  });
}

module.exports = { startSessd };
