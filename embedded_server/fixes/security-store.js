// Defect (issue 10, attack 3): pouchdb-security keeps a database's security object in the
// document `_local/_security`, which the HTTP document API serves like any other local
// document: any member could PUT or DELETE it, and so make themself db admin (and then replace
// validation, or run design-document code in the server process), open the database to
// anonymous users by emptying `members`, or lock everyone out. The fixes read the security
// object from there too.
//
// CouchDB behaviour restored: the security object is database metadata, not a document. It is
// read and written only through `GET`/`PUT /{db}/_security` (couch_db:get_security/1,
// set_security/2, kept in the database header by couch_db_updater and
// fabric_db_meta:set_security/3 on every shard); `PUT /{db}/_local/_security` creates an
// ordinary local document (couch_db:update_doc/3 for a `_local/` id,
// couch_db_updater:update_local_docs/2) and leaves `_security` unchanged, as does its DELETE.
// A database that is deleted and created again starts from the default security object
// (couch_db_updater:init_db/6 writes a fresh header: `[couchdb] default_security`).
//
// How: the security objects live in a LevelDB store of their own, `DATA_DIR/.carecouch-security`
// (a name no CouchDB database can have, and a store express-pouchdb does not know, so no HTTP
// route can reach it), one key per database, loaded into memory at start. Creating or deleting
// a database over HTTP forgets its entry first, so a database with no entry has CouchDB's
// admin-only default. pouchdb-security's getSecurity/putSecurity (still used by pouchdb-auth's
// wrappers of the users database) are pointed at the store too, so nothing reads
// `_local/_security` any more.
//
// Migration: data directories made before this fix keep their security objects in
// `_local/_security`. At the first start with the store (before any request is served) each
// database's `_local/_security` becomes its entry in the store and the document is deleted;
// then the store records that the migration is done, and it never runs again: a database
// created later never takes its security from a `_local/_security` a member wrote.
'use strict';

var path = require('path');
var level = require('level');
var pouchdbSecurity = require('pouchdb-security');
var cleanFilename = require('express-pouchdb/lib/clean-filename');
var getOrCreateDB = require('express-pouchdb/lib/create-or-delete-dbs').getOrCreateDB;

var STORE_DIR = '.carecouch-security';
var LEGACY_DOC_ID = '_local/_security';
var DB_PREFIX = 'db:';
var MIGRATED_KEY = 'meta:migrated-from-local-security';

var store = null; // {db, cache: Map(name -> security object), ready: Promise, queue: Promise}

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

function isObject(value) {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

function open(dataDir) {
  var db = level(path.join(dataDir, STORE_DIR), {valueEncoding: 'json'});
  var cache = new Map();
  var meta = {};
  var ready = new Promise(function (resolve, reject) {
    db.createReadStream().on('data', function (entry) {
      if (entry.key.indexOf(DB_PREFIX) === 0) {
        cache.set(entry.key.slice(DB_PREFIX.length), entry.value);
      } else {
        meta[entry.key] = entry.value;
      }
    }).on('error', reject).on('end', resolve);
  });
  store = {db: db, cache: cache, meta: meta, ready: ready, queue: ready};
}

function requireStore() {
  if (!store) {
    throw new Error('carecouch fixes: the security store is not open');
  }
  return store;
}

// Writes run one after another, in the order they were asked for, and are synced to disk.
function enqueue(work) {
  var s = requireStore();
  var result = s.queue.then(work);
  s.queue = result.catch(function () { /* the caller sees the error */ });
  return result;
}

// The stored security object of database `name` (a copy), or undefined when it was never set.
exports.read = function (name) {
  var s = requireStore();
  return s.ready.then(function () {
    var sec = s.cache.get(name);
    return sec === undefined ? undefined : clone(sec);
  });
};

exports.write = function (name, secObj) {
  var value = clone(secObj);
  return enqueue(function () {
    return store.db.put(DB_PREFIX + name, value, {sync: true}).then(function () {
      store.cache.set(name, value);
    });
  });
};

// A database created or deleted starts again from the default.
exports.forget = function (name) {
  return enqueue(function () {
    store.cache.delete(name);
    return store.db.del(DB_PREFIX + name, {sync: true});
  });
};

function migrateOne(PouchDB, name) {
  return getOrCreateDB(PouchDB, name).then(function (db) {
    return db.get(LEGACY_DOC_ID).catch(function (err) {
      if (err && err.status === 404) {
        return null;
      }
      throw err;
    }).then(function (doc) {
      if (!doc) {
        return false;
      }
      var write = store.cache.has(name) ? Promise.resolve()
        : exports.write(name, isObject(doc.security) ? doc.security : {});
      return write.then(function () {
        return db.remove(doc);
      }).then(function () { return true; });
    });
  });
}

function migrate(PouchDB) {
  if (store.meta[MIGRATED_KEY]) {
    return Promise.resolve();
  }
  return PouchDB.allDbs().then(function (names) {
    var migrated = [];
    return names.reduce(function (previous, name) {
      return previous.then(function () {
        return migrateOne(PouchDB, cleanFilename(name)).then(function (done) {
          if (done) { migrated.push(name); }
        });
      });
    }, Promise.resolve()).then(function () {
      var record = {at: new Date().toISOString(), databases: migrated};
      return enqueue(function () {
        return store.db.put(MIGRATED_KEY, record, {sync: true}).then(function () {
          store.meta[MIGRATED_KEY] = record;
        });
      });
    }).then(function () {
      if (migrated.length) {
        process.stdout.write('carecouch: moved the security object of ' + migrated.length +
          ' database(s) from _local/_security into ' + STORE_DIR + ': ' +
          migrated.join(', ') + '\n');
      }
    });
  });
}

exports.installOnPouch = function (pouchApp, PouchDB, context) {
  open(context.dataDir);
  // pouchdb-security's own functions (pouchdb-auth wraps the users database with them).
  pouchdbSecurity.getSecurity = function (callback) {
    var promise = require('./util').readSecurity(this);
    if (callback) { promise.then(function (s) { callback(null, s); }, callback); }
    return promise;
  };
  pouchdbSecurity.putSecurity = function (secObj, callback) {
    var promise = require('./util').writeSecurity(this, secObj).then(function () {
      return {ok: true};
    });
    if (callback) { promise.then(function (r) { callback(null, r); }, callback); }
    return promise;
  };
};

// Before the server listens: the store is loaded and old data directories are migrated.
exports.prepare = function (pouchApp, PouchDB) {
  return requireStore().ready.then(function () {
    return migrate(PouchDB);
  });
};

exports.installAfterAuthentication = function (router) {
  // ./authorization.js has already refused these to anyone but a server admin.
  router.put('/:db', function (req, res, next) {
    var name = cleanFilename(req.params.db);
    req.PouchDB.allDbs().then(function (names) {
      // An existing database keeps its security (express-pouchdb answers 412).
      return names.indexOf(name) === -1 ? exports.forget(name) : null;
    }).then(function () { next(); }, next);
  });
  router.delete('/:db', function (req, res, next) {
    if (req.query.rev !== undefined) {
      return next(); // refused by express-pouchdb: nothing is deleted
    }
    exports.forget(cleanFilename(req.params.db)).then(function () { next(); }, next);
  });
};
