'use strict';
// genid(): session ids for express-session's genid option, as sessd's own tools make them.

const crypto = require('crypto');

// genid(): a new session id: 32 random bytes (256 bits) as unpadded base64url, 43 characters,
// the ids libsessd's sessd_id_new and `sessctl new-id` make (PROTOCOL.md "Session IDs").
// express-session's default, uid-safe's 24 bytes, gives 192 bits. Takes no arguments that
// matter (express-session passes the request) and returns a new string each call.
function genid() {
  return crypto.randomBytes(32).toString('base64url');
}

module.exports = { genid };
