'use strict';
// A cookie-keeping HTTP client (one browser; its tabs are concurrent requests sharing the
// jar). A new connection per request (agent: false), so a cluster spreads a browser's tabs
// over its workers. Keeps the last Set-Cookie's attributes, to compare with sessd's ttl.
const http = require('node:http');

class Browser {
  constructor(port) { this.port = port; this.cookie = null; this.setCookie = null; this.setCookieAt = 0; }
  request(method, path) {
    return new Promise((resolve, reject) => {
      const headers = {};
      if (this.cookie) headers.cookie = this.cookie;
      const rq = http.request({ host: '127.0.0.1', port: this.port, method, path, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { body += c; });
        res.on('end', () => {
          // Every Set-Cookie, in order, as a browser takes them: @fastify/session clears the
          // old cookie and sets the new one in one response after a regenerate() and save().
          for (const sc of res.headers['set-cookie'] || []) {
            this.setCookie = sc;
            this.setCookieAt = Date.now();
            const pair = sc.split(';')[0];
            // An expired cookie (Expires in the past, Max-Age=0) is the browser's deletion.
            const exp = /Expires=([^;]+)/i.exec(sc);
            const gone = /Max-Age=0(;|$)/i.test(sc) || (exp && Date.parse(exp[1]) <= Date.now());
            this.cookie = gone ? null : pair;
          }
          resolve({ status: res.statusCode, body, json: () => JSON.parse(body) });
        });
      });
      rq.on('error', reject);
      rq.end();
    });
  }
  // The cookie's expiry as the browser keeps it: Expires, or Max-Age from when it came.
  cookieExpiresMs() {
    if (!this.setCookie) return null;
    const ma = /Max-Age=(\d+)/i.exec(this.setCookie);
    if (ma) return this.setCookieAt + Number(ma[1]) * 1000;
    const exp = /Expires=([^;]+)/i.exec(this.setCookie);
    return exp ? Date.parse(exp[1]) : null;
  }
  // The session id inside the cookie's value (express-session: s:ID.SIG; @fastify/session: ID.SIG).
  sid() {
    if (!this.cookie) return null;
    const v = decodeURIComponent(this.cookie.split('=').slice(1).join('='));
    return v.replace(/^s:/, '').replace(/\.[^.]*$/, '');
  }
}
module.exports = { Browser };
