'use strict';
// node --require ./localaddr.js: TCP connections this process opens to $SESSD_URL's address
// come from $HOST (127.0.0.2, .3, ...), so that sessd sees each app process as a host of its
// own, as web servers on separate machines would be. Bench only: connect-sessd has no
// localAddress option.
const net = require('net');
const m = /^tcp:\/\/([^:/]+):(\d+)/.exec(process.env.SESSD_URL || '');
if (m && process.env.HOST) {
  const orig = net.connect;
  net.connect = net.createConnection = function connect(opts, ...rest) {
    if (opts && typeof opts === 'object' && opts.host === m[1] && Number(opts.port) === Number(m[2])) {
      opts = { ...opts, localAddress: process.env.HOST };
    }
    return orig.call(this, opts, ...rest);
  };
}
