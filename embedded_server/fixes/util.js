// Helpers shared by the fixes: CouchDB's security model (couch_db.erl is_member/is_admin/
// throw_security_error), the security object (kept by ./security-store.js), revision trees, and
// CouchDB-shaped JSON errors. Nothing here changes behaviour on its own.
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var cleanFilename = require('express-pouchdb/lib/clean-filename');
var getOrCreateDB = require('express-pouchdb/lib/create-or-delete-dbs').getOrCreateDB;
var securityStore = require('./security-store');

// CouchDB 3 `[couchdb] default_security = admin_only`: what a database whose security object was
// never set answers (couch_db_updater:default_security_object/1).
var DEFAULT_SECURITY = {
  members: {roles: ['_admin']},
  admins: {roles: ['_admin']}
};

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function defaultSecurity() {
  return clone(DEFAULT_SECURITY);
}

// The database's security object (./security-store.js); the CouchDB 3 default when it was
// never set.
function readSecurity(db) {
  return securityStore.read(db.name).then(function (sec) {
    if (sec === undefined) {
      return defaultSecurity();
    }
    return (sec && typeof sec === 'object' && !Array.isArray(sec)) ? sec : {};
  });
}

function writeSecurity(db, secObj) {
  return securityStore.write(db.name, secObj);
}

function userCtxOf(req) {
  var ctx = (req.couchSession || {}).userCtx;
  return ctx || {name: null, roles: []};
}

function isServerAdmin(userCtx) {
  return !!userCtx && Array.isArray(userCtx.roles) && userCtx.roles.indexOf('_admin') !== -1;
}

function section(sec, name) {
  var value = sec && sec[name];
  if (name === 'members' && (value === undefined || value === null)) {
    value = sec && sec.readers; // couch_db:get_members/1 falls back to `readers`
  }
  return (value && typeof value === 'object') ? value : {};
}

function list(value) {
  return Array.isArray(value) ? value : [];
}

// couch_db:is_authorized/2: the `_admin` role, a listed role or a listed name.
function isAuthorized(userCtx, group) {
  var roles = list(userCtx && userCtx.roles);
  var groupRoles = ['_admin'].concat(list(group.roles));
  if (roles.some(function (role) { return groupRoles.indexOf(role) !== -1; })) {
    return true;
  }
  var name = userCtx && userCtx.name;
  return name !== null && name !== undefined && list(group.names).indexOf(name) !== -1;
}

// couch_db:is_admin/1
function isDbAdmin(userCtx, sec) {
  return isAuthorized(userCtx, section(sec, 'admins'));
}

// couch_db:is_public_db/1: no member names and no member roles.
function isPublicDb(sec) {
  var members = section(sec, 'members');
  return list(members.names).length === 0 && list(members.roles).length === 0;
}

// couch_db:is_member/1
function isMember(userCtx, sec) {
  return isDbAdmin(userCtx, sec) || isPublicDb(sec) || isAuthorized(userCtx, section(sec, 'members'));
}

// couch_db:throw_security_error/1,2: anonymous users get 401 `unauthorized`, named users who
// lack the right get 403 `forbidden`.
function securityError(userCtx, reason) {
  var anonymous = !userCtx || userCtx.name === null || userCtx.name === undefined;
  if (!reason) {
    reason = anonymous ? 'You are not authorized to access this db.'
      : 'You are not allowed to access this db.';
  }
  return anonymous ? couchError(401, 'unauthorized', reason) : couchError(403, 'forbidden', reason);
}

// An Error that express-pouchdb's utils.sendError and the bulk-docs mapping both render as
// {"error": name, "reason": message} with HTTP `status`.
function couchError(status, name, message) {
  var err = new Error(message);
  err.status = status;
  err.name = name;
  err.error = true;
  err.reason = message;
  return err;
}

function sendJSON(res, status, body) {
  epUtils.sendJSON(res, status, body);
}

function sendError(res, err) {
  if (err && err.status && err.name && err.message !== undefined) {
    return sendJSON(res, err.status, {error: err.name, reason: err.reason || err.message});
  }
  epUtils.sendError(res, err);
}

// A first path part that names a server resource (`/_config`, `/_node`, `/_session`...), not a
// database: `_` opens no database name except the system databases.
var SYSTEM_DBS = ['_users', '_replicator', '_global_changes'];
function isServerPath(first) {
  return typeof first === 'string' && first.charAt(0) === '_' && SYSTEM_DBS.indexOf(first) === -1;
}

// The request's path split into URL-decoded parts, as chttpd's #httpd.path_parts.
function pathParts(req) {
  return req.path.split('/').filter(Boolean).map(function (part) {
    try {
      return decodeURIComponent(part);
    } catch (e) {
      return part;
    }
  });
}

// The query string exactly as sent (CouchDB hands strings to design-document functions;
// express-pouchdb JSON-parses every value).
function rawQuery(req) {
  var query = {};
  var index = req.originalUrl.indexOf('?');
  if (index !== -1) {
    new URLSearchParams(req.originalUrl.slice(index + 1)).forEach(function (value, key) {
      query[key] = value;
    });
  }
  return query;
}

// Opens (and wraps, as express-pouchdb's setDBOnReq does) the database `name`, or resolves null
// when it does not exist.
function openDb(req, pouchApp, name) {
  var dbName = cleanFilename(name);
  return req.PouchDB.allDbs().then(function (dbs) {
    if (dbs.indexOf(dbName) === -1) {
      return null;
    }
    return getOrCreateDB(req.PouchDB, dbName).then(function (db) {
      return pouchApp.dbWrapper.wrap(dbName, db);
    });
  });
}

// Bytes of attachment data as PouchDB holds it: a Buffer, or base64 text (from JSON).
function dataLength(data) {
  if (Buffer.isBuffer(data) || data instanceof Uint8Array) {
    return data.length;
  }
  if (typeof data === 'string') {
    return Buffer.byteLength(data, 'base64');
  }
  return data && typeof data.size === 'number' ? data.size : 0;
}

// --- revision trees (pouchdb-merge's format: [{pos, ids: [id, opts, children]}]) -----------

function getRevTree(db, id) {
  return new Promise(function (resolve, reject) {
    db._getRevisionTree(id, function (err, tree) {
      if (err) {
        return err.status === 404 ? resolve(null) : reject(err);
      }
      resolve(tree);
    });
  });
}

// Every node: {rev, pos, id, status, deleted, leaf, parent (rev or null)}.
function treeNodes(tree) {
  var nodes = {};
  (tree || []).forEach(function (root) {
    var stack = [{pos: root.pos, node: root.ids, parent: null}];
    while (stack.length) {
      var item = stack.pop();
      var node = item.node;
      var rev = item.pos + '-' + node[0];
      var opts = node[1] || {};
      nodes[rev] = {
        rev: rev, pos: item.pos, id: node[0], status: opts.status,
        deleted: !!opts.deleted, leaf: node[2].length === 0, parent: item.parent
      };
      node[2].forEach(function (child) {
        stack.push({pos: item.pos + 1, node: child, parent: rev});
      });
    }
  });
  return nodes;
}

// couch_doc:to_doc_info/1 order: not deleted first, then the longest, then the highest rev id.
// Rev ids compare as CouchDB compares them (hex ids as the bytes they encode; hex preserves order).
function compareLeaves(a, b) {
  if (a.deleted !== b.deleted) {
    return a.deleted ? 1 : -1;
  }
  if (a.pos !== b.pos) {
    return b.pos - a.pos;
  }
  return a.id < b.id ? 1 : (a.id > b.id ? -1 : 0);
}

function sortedLeaves(nodes) {
  return Object.keys(nodes).map(function (rev) { return nodes[rev]; })
    .filter(function (node) { return node.leaf; })
    .sort(compareLeaves);
}

// couch_key_tree:get_key_leafs/2 for one rev: the leaves at or below it.
function leavesUnder(nodes, rev) {
  if (!nodes[rev]) {
    return [];
  }
  return sortedLeaves(nodes).filter(function (leaf) {
    for (var cur = leaf.rev; cur; cur = nodes[cur].parent) {
      if (cur === rev) {
        return true;
      }
    }
    return false;
  });
}

module.exports = {
  DEFAULT_SECURITY: DEFAULT_SECURITY,
  clone: clone,
  defaultSecurity: defaultSecurity,
  readSecurity: readSecurity,
  writeSecurity: writeSecurity,
  userCtxOf: userCtxOf,
  isServerAdmin: isServerAdmin,
  isDbAdmin: isDbAdmin,
  isMember: isMember,
  isPublicDb: isPublicDb,
  securityError: securityError,
  couchError: couchError,
  sendJSON: sendJSON,
  sendError: sendError,
  pathParts: pathParts,
  isServerPath: isServerPath,
  rawQuery: rawQuery,
  openDb: openDb,
  dataLength: dataLength,
  getRevTree: getRevTree,
  treeNodes: treeNodes,
  sortedLeaves: sortedLeaves,
  leavesUnder: leavesUnder,
  compareLeaves: compareLeaves
};
