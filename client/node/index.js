'use strict';
// connect-sessd: an express-session store and a connect-flash replacement backed by sessd.

const { SessdStore } = require('./lib/store');
const { flash } = require('./lib/flash');
const { Client, dataTag } = require('./lib/client');
const { SessdError } = require('./lib/connection');
const codec = require('./lib/codec');
const { genid } = require('./lib/genid');

module.exports = { SessdStore, flash, Client, SessdError, codec, dataTag, genid };
