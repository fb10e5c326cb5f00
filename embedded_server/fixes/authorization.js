// Defect: express-pouchdb leaves authorization to pouchdb-security's database wrappers, which
// (a) see no user at all when a route forgets utils.makeOpts(req) and then assume a server
// admin: anonymous `POST _bulk_get`, `POST _find`, `GET _index` and `POST _explain` read a
// members-only database; (b) answer every refusal with 401, where CouchDB tells an authenticated
// non-member 403; (c) answer a missing database with {"reason": "no_db_file"}; and (d) let
// anyone list `GET /_all_dbs`.
//
// CouchDB behaviour restored (chttpd_auth_request:authorize_request/1, which runs before any
// handler): `/_all_dbs` needs a server admin (`[chttpd] admin_only_all_dbs = true`, the 3.x
// default); `PUT`/`DELETE /{db}`, `/_users/_all_docs`, `/_users/_changes` and any other
// `/_...` path except `/`, `_session`, `_uuids`, `_up`, `_utils` need a server admin
// (couch_httpd:verify_is_server_admin/1: 401 "You are not a server admin." for everyone);
// `/{db}/_compact` and `/{db}/_view_cleanup` need a db admin (require_db_admin: 401 "You are not
// a server or db admin."); every other `/{db}/...` request first needs the database to exist
// (404 "Database does not exist.", chttpd:error_info(database_does_not_exist)) and then a member
// (db_authorization_check -> couch_db:check_is_member/1 -> throw_security_error/1: 401
// `unauthorized` "You are not authorized to access this db." for anonymous users, 403
// `forbidden` "You are not allowed to access this db." for authenticated ones).
//
// Deliberately stricter than CouchDB on the embedded server: `POST /_replicate` and
// `/_active_tasks` need a server admin (express-pouchdb would replicate any local database
// without checking the caller's membership), and creating or deleting a Mango index needs a db
// admin (it writes a design document). express-pouchdb's part 'routes/temp-views' is removed:
// it let any member run arbitrary JavaScript in the server process, and CouchDB 2+ has no
// `_temp_view`.
'use strict';

var util = require('./util');

exports.excludedParts = ['routes/temp-views'];

var OPEN_SERVER_PATHS = ['_up', '_uuids', '_session', '_stats'];

function requireServerAdmin(req, res, next) {
  if (util.isServerAdmin(util.userCtxOf(req))) {
    return next();
  }
  util.sendJSON(res, 401, {error: 'unauthorized', reason: 'You are not a server admin.'});
}

exports.installAfterAuthentication = function (router, pouchApp) {
  function usersDbName() {
    return pouchApp.couchConfig.get('couch_httpd_auth', 'authentication_db') || '_users';
  }

  // db_authorization_check: the database must exist and the user must be a member; then
  // `extra(userCtx, sec)` may refuse with an error.
  function dbCheck(req, res, next, name, extra) {
    var userCtx = util.userCtxOf(req);
    util.openDb(req, pouchApp, name).then(function (db) {
      if (!db) {
        return util.sendJSON(res, 404, {error: 'not_found', reason: 'Database does not exist.'});
      }
      return util.readSecurity(db).then(function (sec) {
        if (!util.isMember(userCtx, sec)) {
          return util.sendError(res, util.securityError(userCtx));
        }
        var refusal = extra && extra(userCtx, sec);
        if (refusal) {
          return util.sendError(res, refusal);
        }
        req.couchSecurityObj = sec;
        next();
      });
    }).catch(function (err) {
      util.sendError(res, err);
    });
  }

  router.use(function authorize(req, res, next) {
    var parts = util.pathParts(req);
    var method = req.method;
    if (parts.length === 0 || parts[0] === 'favicon.ico') {
      return next();
    }
    var first = parts[0];
    if (first === '_all_dbs' || first === '_dbs_info') {
      return requireServerAdmin(req, res, next);
    }
    if (first === '_replicator' || first === usersDbName()) {
      if (parts.length === 1 && (method === 'PUT' || method === 'DELETE')) {
        return requireServerAdmin(req, res, next);
      }
      if (parts[1] === '_all_docs' || parts[1] === '_changes') {
        return requireServerAdmin(req, res, next);
      }
      return dbCheck(req, res, next, first);
    }
    if (first.charAt(0) === '_') {
      if (OPEN_SERVER_PATHS.indexOf(first) !== -1 ||
          (first === '_utils' && (method === 'GET' || method === 'HEAD'))) {
        return next();
      }
      return requireServerAdmin(req, res, next);
    }
    if (parts.length === 1 && (method === 'PUT' || method === 'DELETE')) {
      return requireServerAdmin(req, res, next);
    }
    var second = parts[1];
    if (second === '_compact' || (second === '_view_cleanup' && parts.length === 2)) {
      return dbCheck(req, res, next, first, function (userCtx, sec) {
        return util.isDbAdmin(userCtx, sec) ? null
          : util.couchError(401, 'unauthorized', 'You are not a server or db admin.');
      });
    }
    if (second === '_index' && method !== 'GET' && method !== 'HEAD') {
      return dbCheck(req, res, next, first, function (userCtx, sec) {
        return util.isDbAdmin(userCtx, sec) ? null
          : util.securityError(userCtx, 'You are not a db or server admin.');
      });
    }
    return dbCheck(req, res, next, first);
  });
};
