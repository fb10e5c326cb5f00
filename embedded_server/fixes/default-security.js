// Defect: a new database has an empty security object, so it is readable and writable by anyone
// (`GET /{db}/_security` answers `{}`). express-pouchdb's part 'routes/security' also installs
// pouchdb-security's database wrappers, whose answers contradict CouchDB's (401 to
// authenticated users, 401 to members writing design documents in _bulk_docs) and which are
// replaced by ./authorization.js and ./validation.js.
//
// CouchDB behaviour restored: with the 3.x default `[couchdb] default_security = admin_only`, a
// database whose security object was never set has
// {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
// (couch_db_updater:default_security_object/1), which `GET /{db}/_security` returns; a security
// object written explicitly is used as written, so an explicit `{}` makes the database public
// (couch_db:is_public_db/1). `PUT /{db}/_security`:
//  - on the users database: 403 "You can't edit the security object of the user database."
//    (chttpd_db:validate_security_can_be_edited/1, `users_db_security_editable = false`);
//  - by anyone but a db admin, or with names/roles that are not lists of strings:
//    couch_db:set_security/2 throws (check_is_admin/1, validate_security_object/1) on every
//    shard, fabric_rpc replies the thrown term, fabric_db_meta:set_security/3 is left without a
//    majority and chttpd answers 500 {"error": "error", "reason": "no_majority"}.
//
// Replaces express-pouchdb's part 'routes/security'; the object is kept by ./security-store.js,
// out of reach of the document API.
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

exports.excludedParts = ['routes/security'];

function validateSecurity(secObj) {
  if (!secObj || typeof secObj !== 'object' || Array.isArray(secObj)) {
    return 'admins or members must be a JSON list of strings';
  }
  var groups = ['admins', secObj.members !== undefined ? 'members' : 'readers'];
  for (var i = 0; i < groups.length; i++) {
    var group = secObj[groups[i]];
    if (group === undefined) {
      continue;
    }
    if (!group || typeof group !== 'object' || Array.isArray(group)) {
      return 'admins or members must be a JSON list of strings';
    }
    var names = group.names === undefined ? [] : group.names;
    var roles = group.roles === undefined ? [] : group.roles;
    if (!Array.isArray(names) || names.some(function (n) { return typeof n !== 'string'; })) {
      return 'names must be a JSON list of strings';
    }
    if (!Array.isArray(roles) || roles.some(function (r) { return typeof r !== 'string'; })) {
      return 'roles must be a JSON list of strings';
    }
  }
  return null;
}

exports.installOnPouch = function (pouchApp) {
  pouchApp.daemonManager.registerDaemon({
    start: function (PouchDB) {
      // db.getSecurity()/putSecurity() as pouchdb-security offers them, but with CouchDB's
      // default for a never-set object. Its authorization wrappers are not installed.
      PouchDB.plugin({
        getSecurity: function (callback) {
          var promise = util.readSecurity(this);
          if (callback) { promise.then(function (s) { callback(null, s); }, callback); }
          return promise;
        },
        putSecurity: function (secObj, callback) {
          var promise = util.writeSecurity(this, secObj).then(function () { return {ok: true}; });
          if (callback) { promise.then(function (r) { callback(null, r); }, callback); }
          return promise;
        }
      });
    }
  });
};

exports.installAfterAuthentication = function (router, pouchApp) {
  function usersDbName() {
    return pouchApp.couchConfig.get('couch_httpd_auth', 'authentication_db') || '_users';
  }

  // ./authorization.js has already opened the database and checked membership.
  router.get('/:db/_security', function (req, res) {
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return util.readSecurity(db);
    }).then(function (sec) {
      util.sendJSON(res, 200, sec);
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });

  router.put('/:db/_security', epUtils.jsonParser, function (req, res) {
    if (req.params.db === usersDbName()) {
      return util.sendJSON(res, 403, {
        error: 'forbidden',
        reason: 'You can\'t edit the security object of the user database.'
      });
    }
    if (!util.isDbAdmin(util.userCtxOf(req), req.couchSecurityObj) || validateSecurity(req.body)) {
      return util.sendJSON(res, 500, {error: 'error', reason: 'no_majority'});
    }
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return util.writeSecurity(db, req.body);
    }).then(function () {
      util.sendJSON(res, 200, {ok: true});
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};
