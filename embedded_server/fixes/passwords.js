// Defect: pouchdb-auth 4.2.0 hashes a `_users` password with PBKDF2-SHA1, 10 iterations and a
// 20-byte key, in pure JavaScript on the server's only thread, checks it the same way on every
// request, never caches, never upgrades, and its `_design/_auth` takes any `password_scheme`.
// Production CouchDB 3.5 pays ~600,000 PBKDF2-SHA256 iterations for the same work, so the
// embedded server hid what credential issuance costs (issue 16: 40 ms beside CouchDB's 953 ms).
//
// CouchDB 3.5 behaviour restored (settings from [chttpd_auth], falling back to
// [couch_httpd_auth] as chttpd_util:get_chttpd_auth_config/2 does):
//  - couch_users_db:before_doc_update/3 -> save_doc/1, on every write to `_users` (interactive
//    and replicated): a document whose `password` is absent or null is stored as sent, so an
//    admin may write `password_scheme`, `pbkdf2_prf`, `iterations`, `salt` and `derived_key`
//    itself; otherwise, for `password_scheme = pbkdf2` (the default), the password fields
//    (`password`, `password_sha`, `password_scheme`, `pbkdf2_prf`, `iterations`, `salt`,
//    `derived_key`, `preserve_salt`) are replaced by `password_scheme: "pbkdf2"`,
//    `pbkdf2_prf` (`pbkdf2_prf`, default sha256), `iterations` (`iterations`, default 600000),
//    a fresh `salt` (couch_uuids:random/0: 32 hex digits; the old one when `preserve_salt` is
//    true, as an upgrade writes) and `derived_key` (couch_passwords:pbkdf2/4: hex of
//    crypto:pbkdf2_hmac(PRF, Password, Salt, Iterations, digest size), the salt used as the
//    bytes of its text); `simple` stores sha1(password ++ salt); a password that is not a string
//    is 403 "Password value of '...' is invalid."; another scheme is 403 "Server cannot hash
//    passwords at this time.".
//  - the `_users` validate_doc_update (couch_js_functions.hrl AUTH_DB_DOC_VALIDATE_FUNCTION) also
//    refuses a `password_scheme` other than simple, pbkdf2, simple+pbkdf2, and a pbkdf2 document
//    whose `iterations` is not a number or whose `derived_key` is not a string.
//  - couch_httpd_auth:authenticate/5 (basic auth and POST /_session): couch_passwords_cache
//    first (key: user name and salt; value PBKDF2-SHA256 of the password with 5 iterations;
//    [couch_passwords_cache] enable, max_objects 10,000, max_idle 600,000 ms); on a miss,
//    authenticate_int/3 against the stored hash (`password_scheme` default simple; pbkdf2:
//    `pbkdf2_prf` default sha, one of sha, sha224, sha256, sha384, sha512, else 403 "PRF is
//    invalid"; `iterations` default 10000, outside [min_iterations, max_iterations] 403
//    "Iteration count is too low/high for this server"), then the cache is filled. A cached
//    entry answers a wrong password at once, without the slow hash.
//  - couch_password_hasher:maybe_upgrade_password_hash/6 after a successful login, when
//    `upgrade_hash_on_auth` (default true) and the user is a `_users` document whose scheme,
//    iterations or PRF differ from the settings (needs_upgrade/1): one worker rewrites the
//    documents one at a time with `password` and `preserve_salt: true` (save_doc rehashes them
//    at the configured cost, same salt, so the cache entry stays valid); a user upgraded within
//    the last 5 s is not queued again; a write that conflicts is dropped.
//
// Not done (nothing in carecouch depends on it): `password_regexp`, the `simple+pbkdf2`
// scheme at login (refused as a wrong password), [chttpd_auth_lockout], the admins of the
// config file (still pouchdb-auth's PBKDF2-SHA1 hashes, checked through the same cache).
//
//  - chttpd_auth_cache: user documents are read from memory, and a change to `_users` evicts the
//    user (here at once, from the write itself and from the database's changes feed; CouchDB
//    evicts from its changes feed, asynchronously).
//
// How: pouchdb-auth installs its write wrappers and session API on the `_users` database when
// express-pouchdb first opens it; this module replaces those wrappers, `multiUserLogIn` (basic
// auth, POST /_session) and `multiUserSession` (cookies; it also walked the database's files
// on every request to name it) before any database is opened, and rewrites the `_auth` design
// document's validation at start. Hashing uses Node's asynchronous PBKDF2 (the thread pool), so
// a slow hash delays its own request, not the server.
'use strict';

var crypto = require('crypto');
var PouchPluginError = require('pouchdb-plugin-error');
var base64url = require('base64url');
var calculateSessionId = require('couchdb-calculate-session-id');
var authUtils = require('pouchdb-auth/lib/utils');
var writeWrappers = require('pouchdb-auth/lib/writewrappers');
var sessionApi = require('pouchdb-auth/lib/sessionapi');
var authDesignDoc = require('pouchdb-auth/lib/designdoc');
var epUtils = require('express-pouchdb/lib/utils');
var lastResort = require('./last-resort');

var DEFAULTS = {
  password_scheme: 'pbkdf2', pbkdf2_prf: 'sha256', iterations: 600000,
  upgrade_hash_on_auth: true, min_iterations: 1, max_iterations: 1000000000
};
var CACHE_DEFAULTS = {enable: true, max_objects: 10000, max_idle: 600000};
var FAST_ITERATIONS = 5; // couch_passwords_cache: the in-memory check must be fast
var PRFS = {sha: 'sha1', sha224: 'sha224', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512'};
var PASSWORD_FIELDS = ['derived_key', 'iterations', 'password', 'password_scheme', 'password_sha',
  'preserve_salt', 'pbkdf2_prf', 'salt'];
var BAD_CREDENTIALS = 'Name or password is incorrect.';
var UPGRADE_QUIET_MS = 5000;

var config = null; // express-pouchdb's couchConfig, set by installOnPouch

function valueOf(section, key) {
  var value = config ? config.get(section, key) : undefined;
  return value === undefined || value === null || value === '' ? undefined : value;
}

function setting(key, defaults, section) {
  var value = valueOf(section || 'chttpd_auth', key);
  if (value === undefined && !section) {
    value = valueOf('couch_httpd_auth', key);
  }
  return value === undefined ? defaults[key] : value;
}

function integerSetting(key, defaults, section) {
  var value = setting(key, defaults, section);
  var number = typeof value === 'number' ? value : parseInt(String(value), 10);
  return Number.isInteger(number) ? number : defaults[key];
}

function booleanSetting(key, defaults, section) {
  var value = setting(key, defaults, section);
  if (value === true || value === 'true') {
    return true;
  }
  return value === false || value === 'false' ? false : defaults[key];
}

function couchError(status, name, message) {
  return new PouchPluginError({status: status, name: name, message: message});
}

function unauthorized(message) {
  return couchError(401, 'unauthorized', message || BAD_CREDENTIALS);
}

function pbkdf2Hex(prf, password, salt, iterations) {
  var digest = PRFS[prf];
  var size = crypto.createHash(digest).digest().length;
  return new Promise(function (resolve, reject) {
    crypto.pbkdf2(Buffer.from(password, 'utf8'), Buffer.from(salt, 'utf8'), iterations, size,
      digest, function (err, key) {
        return err ? reject(err) : resolve(key.toString('hex'));
      });
  });
}

function simpleHex(password, salt) {
  return crypto.createHash('sha1').update(password + salt, 'utf8').digest('hex');
}

function sameText(a, b) {
  if (typeof a !== 'string' || typeof b !== 'string') {
    return false;
  }
  var x = Buffer.from(a, 'utf8');
  var y = Buffer.from(b, 'utf8');
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// --- couch_users_db:save_doc/1 --------------------------------------------------------------

function saveDoc(doc) {
  if (!doc || typeof doc !== 'object' || doc.password === undefined || doc.password === null) {
    return Promise.resolve();
  }
  var password = doc.password;
  var scheme = String(setting('password_scheme', DEFAULTS));
  if (scheme !== 'pbkdf2' && scheme !== 'simple') {
    return Promise.reject(couchError(403, 'forbidden',
      'Server cannot hash passwords at this time.'));
  }
  if (typeof password !== 'string') {
    return Promise.reject(couchError(403, 'forbidden',
      "Password value of '" + JSON.stringify(password) + "' is invalid."));
  }
  var salt = doc.preserve_salt === true && typeof doc.salt === 'string' ? doc.salt
    : crypto.randomBytes(16).toString('hex');
  PASSWORD_FIELDS.forEach(function (field) { delete doc[field]; });
  if (scheme === 'simple') {
    doc.password_scheme = 'simple';
    doc.salt = salt;
    doc.password_sha = simpleHex(password, salt);
    return Promise.resolve();
  }
  var prf = String(setting('pbkdf2_prf', DEFAULTS));
  var iterations = integerSetting('iterations', DEFAULTS);
  if (!PRFS[prf] || iterations < 1) {
    return Promise.reject(couchError(403, 'forbidden',
      'Server cannot hash passwords at this time.'));
  }
  return pbkdf2Hex(prf, password, salt, iterations).then(function (derivedKey) {
    doc.password_scheme = 'pbkdf2';
    doc.pbkdf2_prf = prf;
    doc.salt = salt;
    doc.iterations = iterations;
    doc.derived_key = derivedKey;
  });
}

function savingPut(orig, args) {
  var names = [userNameOf(args.doc)];
  forget(names);
  return saveDoc(args.doc).then(orig).then(function (result) {
    forget(names);
    return result;
  }, function (err) {
    forget(names);
    throw err;
  });
}

// The results in the order of the request (pouchdb-bulkdocs-wrapper's order is completion
// order, which asynchronous hashing shuffles).
function savingBulkDocs(orig, args) {
  var docs = args.docs;
  if (!Array.isArray(docs) || docs.length === 0) {
    return orig();
  }
  var newEdits = !(args.options && args.options.new_edits === false);
  var names = docs.map(userNameOf);
  forget(names);
  return Promise.all(docs.map(function (doc) {
    return saveDoc(doc).then(function () { return null; }, function (err) {
      err.id = doc && doc._id;
      return err;
    });
  })).then(function (errors) {
    if (errors.every(function (err) { return !err; })) {
      return orig().then(function (results) {
        forget(names);
        return results;
      }, function (err) {
        forget(names);
        throw err;
      });
    }
    args.docs = docs.filter(function (doc, i) { return !errors[i]; });
    var written = args.docs.length ? orig() : Promise.resolve([]);
    return written.then(function (results) {
      forget(names);
      var failed = errors.filter(Boolean);
      if (!newEdits) {
        return failed.concat(results); // CouchDB answers only the failures
      }
      var k = 0;
      return errors.map(function (err) { return err || results[k++]; });
    });
  });
}

// --- the `_users` validate_doc_update of CouchDB 3.5 -----------------------------------------

/* eslint-disable */
function authValidation(newDoc, oldDoc, userCtx, secObj) {
  var isAdmin = userCtx.roles.indexOf('_admin') !== -1;
  if (newDoc._deleted === true) {
    if (isAdmin || (oldDoc && userCtx.name == oldDoc.name)) {
      return;
    }
    throw({forbidden: 'Only admins may delete other user docs.'});
  }
  if (newDoc.type !== 'user') {
    throw({forbidden: 'doc.type must be user'});
  }
  if (!newDoc.name) {
    throw({forbidden: 'doc.name is required'});
  }
  if (!newDoc.roles) {
    throw({forbidden: 'doc.roles must exist'});
  }
  if (!Array.isArray(newDoc.roles)) {
    throw({forbidden: 'doc.roles must be an array'});
  }
  newDoc.roles.forEach(function (role) {
    if (typeof role !== 'string') {
      throw({forbidden: 'doc.roles can only contain strings'});
    }
  });
  if (newDoc._id !== 'org.couchdb.user:' + newDoc.name) {
    throw({forbidden: 'Doc ID must be of the form org.couchdb.user:name'});
  }
  if (oldDoc && oldDoc.name !== newDoc.name) {
    throw({forbidden: 'Usernames can not be changed.'});
  }
  if (newDoc.password_sha && !newDoc.salt) {
    throw({forbidden: 'Users with password_sha must have a salt.' +
      'See /_utils/script/couch.js for example code.'});
  }
  var schemes = ['simple', 'pbkdf2', 'simple+pbkdf2'];
  if (newDoc.password_scheme && schemes.indexOf(newDoc.password_scheme) === -1) {
    throw({forbidden: 'Password scheme `' + newDoc.password_scheme + '` not supported.'});
  }
  if (newDoc.password_scheme === 'pbkdf2') {
    if (typeof newDoc.iterations !== 'number') {
      throw({forbidden: 'iterations must be a number.'});
    }
    if (typeof newDoc.derived_key !== 'string') {
      throw({forbidden: 'derived_key must be a string.'});
    }
  }
  var dbAdmin = isAdmin || (secObj && secObj.admins && (
    (secObj.admins.names || []).indexOf(userCtx.name) !== -1 ||
    userCtx.roles.some(function (role) { return (secObj.admins.roles || []).indexOf(role) !== -1; })));
  if (!dbAdmin) {
    if (oldDoc) {
      if (userCtx.name !== newDoc.name) {
        throw({forbidden: 'You may only update your own user document.'});
      }
      var before = (oldDoc.roles || []).slice().sort().join('\n');
      if (before !== newDoc.roles.slice().sort().join('\n')) {
        throw({forbidden: 'Only _admin may edit roles'});
      }
    } else if (newDoc.roles.length > 0) {
      throw({forbidden: 'Only _admin may set roles'});
    }
  }
  newDoc.roles.forEach(function (role) {
    if (role !== '_metrics' && role[0] === '_') {
      throw({forbidden: 'No system roles (starting with underscore) in users db.'});
    }
  });
  if (newDoc.name[0] === '_') {
    throw({forbidden: 'Username may not start with underscore.'});
  }
  if (newDoc.name.indexOf(':') >= 0) {
    throw({forbidden: 'Character `:` is not allowed in usernames.'});
  }
}
/* eslint-enable */

var AUTH_VALIDATION = authValidation.toString();

// --- couch_passwords_cache ---------------------------------------------------------------------

var cache = new Map(); // "name\0salt" -> {hash, used}; Map order is least recently used first

function fastHash(password, salt) {
  return crypto.pbkdf2Sync(Buffer.from(password, 'utf8'), Buffer.from(salt, 'utf8'),
    FAST_ITERATIONS, 32, 'sha256').toString('hex');
}

function cacheLookup(key) {
  if (!booleanSetting('enable', CACHE_DEFAULTS, 'couch_passwords_cache')) {
    return null;
  }
  var entry = cache.get(key);
  if (!entry) {
    return null;
  }
  var now = Date.now();
  if (now - entry.used > integerSetting('max_idle', CACHE_DEFAULTS, 'couch_passwords_cache')) {
    cache.delete(key);
    return null;
  }
  cache.delete(key);
  entry.used = now;
  cache.set(key, entry);
  return entry.hash;
}

function cacheInsert(key, hash) {
  if (!booleanSetting('enable', CACHE_DEFAULTS, 'couch_passwords_cache')) {
    return;
  }
  cache.delete(key);
  cache.set(key, {hash: hash, used: Date.now()});
  var max = integerSetting('max_objects', CACHE_DEFAULTS, 'couch_passwords_cache');
  while (cache.size > Math.max(max, 0)) {
    cache.delete(cache.keys().next().value);
  }
}

// --- couch_httpd_auth:authenticate/5 -----------------------------------------------------------

function slowCheck(props, password, salt) {
  var scheme = props.password_scheme === undefined ? 'simple' : props.password_scheme;
  if (scheme === 'simple') {
    return Promise.resolve(sameText(simpleHex(password, salt), props.password_sha));
  }
  if (scheme !== 'pbkdf2') {
    return Promise.resolve(false);
  }
  var prf = props.pbkdf2_prf === undefined ? 'sha' : props.pbkdf2_prf;
  if (typeof prf !== 'string' || !PRFS.hasOwnProperty(prf)) {
    return Promise.reject(couchError(403, 'forbidden', 'PRF is invalid'));
  }
  var iterations = props.iterations === undefined ? 10000 : props.iterations;
  if (!Number.isInteger(iterations)) {
    return Promise.resolve(false);
  }
  if (iterations < integerSetting('min_iterations', DEFAULTS)) {
    return Promise.reject(couchError(403, 'forbidden',
      'Iteration count is too low for this server'));
  }
  if (iterations > integerSetting('max_iterations', DEFAULTS)) {
    return Promise.reject(couchError(403, 'forbidden',
      'Iteration count is too high for this server'));
  }
  return pbkdf2Hex(prf, password, salt, iterations).then(function (key) {
    return sameText(key, props.derived_key);
  });
}

// The admins of the config file keep the hashes pouchdb-auth made of them (its own PBKDF2-SHA1).
function adminCheck(props, password) {
  return authUtils.hashPassword(password, props.salt, props.iterations).then(function (key) {
    return sameText(key, props.derived_key);
  });
}

function authenticate(name, password, creds) {
  var props = creds.props;
  var salt = typeof props.salt === 'string' ? props.salt : '';
  var key = name + '\u0000' + salt;
  var cached = cacheLookup(key);
  if (cached !== null) {
    return Promise.resolve(sameText(cached, fastHash(password, salt)));
  }
  var check = creds.doc ? slowCheck(props, password, salt) : adminCheck(props, password);
  return check.then(function (ok) {
    if (ok) {
      cacheInsert(key, fastHash(password, salt));
    }
    return ok;
  });
}

// --- couch_password_hasher ---------------------------------------------------------------------

var upgrading = new Set(); // user names queued, being upgraded, or upgraded < 5 s ago
var queue = [];
var working = false;

function needsUpgrade(doc) {
  var scheme = String(setting('password_scheme', DEFAULTS));
  var iterations = integerSetting('iterations', DEFAULTS);
  var prf = String(setting('pbkdf2_prf', DEFAULTS));
  if (scheme === 'simple') {
    return !(doc.password_scheme === 'simple' && doc.iterations === iterations);
  }
  if (scheme === 'pbkdf2') {
    return !(doc.password_scheme === 'pbkdf2' && doc.iterations === iterations &&
      doc.pbkdf2_prf === prf);
  }
  return true;
}

function maybeUpgrade(db, name, password, doc) {
  if (!booleanSetting('upgrade_hash_on_auth', DEFAULTS) || !doc || !doc._rev ||
      !needsUpgrade(doc) || upgrading.has(name)) {
    return;
  }
  upgrading.add(name);
  queue.push({db: db, name: name, password: password, doc: doc});
  lastResort.outsideRequest(work); // the server's own write, not the caller's
}

function work() {
  if (working || queue.length === 0) {
    return;
  }
  working = true;
  var job = queue.shift();
  process.stderr.write(new Date().toISOString() + " [notice] upgrading stored password hash for '" +
    job.name + "'\n");
  var doc = Object.assign({}, job.doc, {password: job.password, preserve_salt: true});
  delete doc._conflicts;
  job.db.put(doc).catch(function () {
    // a conflicting write (a rotation, a deletion) wins: nothing to upgrade
  }).then(function () {
    setTimeout(function () { upgrading.delete(job.name); }, UPGRADE_QUIET_MS).unref();
    working = false;
    work();
  });
}

// --- chttpd_auth_cache: user documents in memory ---------------------------------------------

var docs = new Map(); // user name -> their `_users` document, or null: none
var epoch = 0; // bumped by every change to `_users`: a read older than a change caches nothing
var cachingDocs = true;
var USER_PREFIX = 'org.couchdb.user:';

function userNameOf(doc) {
  var id = doc && typeof doc === 'object' ? doc._id : undefined;
  return typeof id === 'string' && id.indexOf(USER_PREFIX) === 0 ? id.slice(USER_PREFIX.length)
    : null;
}

function forget(names) {
  epoch++;
  names.forEach(function (name) {
    if (name !== null) {
      docs.delete(name);
    }
  });
}

function userDoc(db, name) {
  if (cachingDocs && docs.has(name)) {
    return Promise.resolve(docs.get(name));
  }
  var seen = epoch;
  return db.get(USER_PREFIX + name, {conflicts: true}).catch(function (err) {
    if (err && err.status === 404) {
      return null;
    }
    throw err;
  }).then(function (doc) {
    if (cachingDocs && seen === epoch) {
      docs.set(name, doc);
      while (docs.size > 10000) {
        docs.delete(docs.keys().next().value);
      }
    }
    return doc;
  });
}

// --- pouchdb-auth's session API: the credentials of a user -------------------------------------

// The user's credentials as CouchDB's auth cache gives them (chttpd_auth_cache:get_user_creds/2):
// an admin of the config file (with the roles of a `_users` document of the same name), or the
// `_users` document; null for nobody; a conflicted document authenticates nobody.
function credentials(db, info, name) {
  var admin = info.admins[name];
  return userDoc(db, name).then(function (doc) {
    if (doc && (doc._conflicts || []).length) {
      throw unauthorized('User document conflicts must be resolved before the document is ' +
        'used for authentication purposes.');
    }
    if (admin) {
      var merged = Object.assign({}, admin);
      merged.roles = ['_admin'].concat(doc ? doc.roles || [] : []);
      return {props: merged, doc: null};
    }
    return doc ? {props: doc, doc: doc} : null;
  });
}

function sessionId(props, secret, stamp) {
  return calculateSessionId(props.name, props.salt, secret, stamp);
}

function now() {
  return Math.round(Date.now() / 1000);
}

function multiUserLogIn(username, password, callback) {
  var db = this;
  var info = authUtils.dbDataFor(db);
  var promise = Promise.resolve().then(function () {
    if (typeof username !== 'string' || typeof password !== 'string') {
      throw unauthorized();
    }
    return credentials(db, info, username);
  }).then(function (creds) {
    if (!creds) {
      throw unauthorized();
    }
    return authenticate(username, password, creds).then(function (ok) {
      if (!ok) {
        throw unauthorized();
      }
      maybeUpgrade(db, username, password, creds.doc);
      return {ok: true, name: creds.props.name, roles: (creds.props.roles || []).slice(),
        sessionID: sessionId(creds.props, info.secret, now())};
    });
  }).catch(function (err) {
    throw err instanceof PouchPluginError ? err : unauthorized();
  });
  return authUtils.nodify(promise, callback);
}

// pouchdb-auth's multiUserSession (the AuthSession cookie, and the session of a basic-auth
// login), without its db.info() per request, which walked the database's files to size them.
function multiUserSession(sessionID, callback) {
  var db = this;
  var info = authUtils.dbDataFor(db);
  var resp = {ok: true, userCtx: {name: null, roles: []},
    info: {authentication_handlers: ['api'], authentication_db: db.name}};
  if (Object.keys(info.admins).length === 0) {
    resp.userCtx.roles = ['_admin']; // admin party
  }
  var promise = Promise.resolve().then(function () {
    if (!sessionID) {
      return resp;
    }
    var name;
    var stamp;
    try {
      var decoded = base64url.decode(sessionID).split(':');
      name = decoded[0];
      stamp = parseInt(decoded[1], 16);
      if (name === undefined || isNaN(stamp)) {
        throw new Error('malformed');
      }
    } catch (err) {
      throw couchError(400, 'bad_request',
        "Malformed session ID. If you're using a browser, try clearing your cookies.");
    }
    return credentials(db, info, name).then(function (creds) {
      if (creds && now() < stamp + info.timeout &&
          sessionId(creds.props, info.secret, stamp) === sessionID) {
        resp.info.authenticated = 'api';
        resp.userCtx.name = creds.props.name;
        resp.userCtx.roles = (creds.props.roles || []).slice();
        resp.sessionID = sessionId(creds.props, info.secret, now());
      }
      return resp;
    }, function (err) {
      if (err instanceof PouchPluginError) {
        throw err;
      }
      return resp;
    });
  });
  return authUtils.nodify(promise, callback);
}

// --- hooks -------------------------------------------------------------------------------------

exports.installOnPouch = function (pouchApp) {
  config = pouchApp.couchConfig;
  // express-pouchdb's own default of 10 iterations would be read through the
  // [couch_httpd_auth] fallback; CouchDB has no such default.
  config.registerDefault('couch_httpd_auth', 'iterations', undefined);
  writeWrappers.put = savingPut;
  writeWrappers.post = savingPut;
  writeWrappers.bulkDocs = savingBulkDocs;
  sessionApi.multiUserLogIn = multiUserLogIn;
  sessionApi.multiUserSession = multiUserSession;
  authDesignDoc.validate_doc_update = AUTH_VALIDATION;
};

// Every change of `_users`, however written (a replication into it too), evicts the user; if
// the feed fails, or the database is deleted, the documents are no longer kept in memory.
function watch(db, PouchDB) {
  function stop() {
    cachingDocs = false;
    forget([]);
    docs.clear();
  }
  db.changes({live: true, since: 'now'}).on('change', function (change) {
    forget([userNameOf({_id: change.id})]);
  }).on('error', stop);
  PouchDB.on('destroyed', function (name) {
    if (name === db.name) {
      stop();
    }
  });
}

// A `_users` database made before this fix keeps pouchdb-auth's validation: replace it, as
// chttpd_auth_cache:ensure_auth_ddoc_exists/2 does with an outdated `_auth`.
exports.prepare = function (pouchApp, PouchDB) {
  return epUtils.getUsersDB(pouchApp, PouchDB).then(function (db) {
    watch(db, PouchDB);
    return db.get('_design/_auth').then(function (ddoc) {
      if (ddoc.validate_doc_update === AUTH_VALIDATION) {
        return null;
      }
      ddoc.validate_doc_update = AUTH_VALIDATION;
      return db.put(ddoc);
    });
  });
};
