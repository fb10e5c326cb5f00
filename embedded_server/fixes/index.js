// The fixes that make express-pouchdb behave like Apache CouchDB 3.5 where carecouch relies on
// it. Each fix is its own module, opening with the defect it repairs and the CouchDB behaviour
// it restores; tests/conformance/ proves each one over HTTP.
//
// A fix may provide any of these hooks:
//   excludedParts                       express-pouchdb parts it replaces wholesale
//   installBefore(app, pouchApp)        express middleware in front of express-pouchdb
//   installAfterAuthentication(router, pouchApp)
//                                       routes that run once express-pouchdb has authenticated
//                                       the request (req.couchSession is set) and before any
//                                       express-pouchdb route: authorization and route overrides
//   pouchOptions(context)               options for the server's PouchDB constructor (defaults)
//   installOnPouch(pouchApp, PouchDB, context)
//                                       plugins and database wrappers; context is {dataDir}
//   prepare(pouchApp, PouchDB, context) work that must be done before the server listens
//                                       (resolves when done)
//   installAfter(app, pouchApp)         express middleware behind express-pouchdb (error handlers)
'use strict';

var express = require('express');

var FIXES = [
  require('./last-resort'),          // no request can kill the server
  require('./authorization'),        // CouchDB's 401/403 model, _all_dbs, _users (defects 3, 4)
  require('./session-logout'),       // DELETE /_session really ends a cookie session
  require('./passwords'),            // _users hashing, checking, cache and upgrade of CouchDB 3.5
  require('./node-config'),          // /_node/_local/_config as CouchDB 2+ serves it
  require('./security-store'),       // _security out of reach of the document API (attack 3)
  require('./default-security'),     // new databases are admin-only; _security routes (defect 4)
  require('./validation'),           // validate_doc_update as CouchDB runs it (defects 1, 2)
  require('./attachments'),          // max_attachment_size; no per-byte JSON of data (attack 5)
  require('./bulk-docs'),            // CouchDB's _bulk_docs answer (errors of new_edits=false)
  require('./error-reasons'),        // CouchDB's conflict and deleted-document reasons
  require('./selectors'),            // $regex and deep selectors cannot freeze it (attack 5)
  require('./changes-filters'),      // _selector, _doc_ids, _design, design filters (defect 5)
  require('./bulk-get'),             // CouchDB's _bulk_get (every leaf, errors, latest)
  require('./revs-diff'),            // possible_ancestors; compacted revisions are not missing
  require('./doc-revisions'),        // document reads: deleted, deleted_conflicts, latest
  require('./local-docs'),           // GET/POST _local_docs
  require('./replicate'),            // POST /_replicate answers CouchDB's checkpoint history
  require('./deleted-documents'),    // a deleted document is re-created only without _rev
  require('./db-info')               // GET /{db} answers CouchDB's database info
];

// express-pouchdb parts replaced wholesale by a fix (see express-pouchdb/lib/index.js).
exports.excludedParts = [];
FIXES.forEach(function (fix) {
  (fix.excludedParts || []).forEach(function (part) { exports.excludedParts.push(part); });
});

// Express middleware that must run before express-pouchdb's own routes.
exports.installBefore = function (app, pouchApp) {
  FIXES.forEach(function (fix) {
    if (fix.installBefore) { fix.installBefore(app, pouchApp); }
  });
  installAfterAuthentication(pouchApp);
};

// Options every database of the server is opened with (PouchDB.defaults).
exports.pouchOptions = function (context) {
  var options = {};
  FIXES.forEach(function (fix) {
    var extra = fix.pouchOptions ? fix.pouchOptions(context) : {};
    Object.keys(extra).forEach(function (key) { options[key] = extra[key]; });
  });
  return options;
};

// Plugins and database wrappers, registered before the PouchDB constructor is handed over.
exports.installOnPouch = function (pouchApp, PouchDB, context) {
  FIXES.forEach(function (fix) {
    if (fix.installOnPouch) { fix.installOnPouch(pouchApp, PouchDB, context); }
  });
};

// Once express-pouchdb has its PouchDB, before the first request is served.
exports.prepare = function (pouchApp, PouchDB, context) {
  return FIXES.reduce(function (previous, fix) {
    return previous.then(function () {
      return fix.prepare ? fix.prepare(pouchApp, PouchDB, context) : null;
    });
  }, Promise.resolve());
};

// Express middleware behind express-pouchdb (last-resort error handlers).
exports.installAfter = function (app, pouchApp) {
  FIXES.forEach(function (fix) {
    if (fix.installAfter) { fix.installAfter(app, pouchApp); }
  });
};

// express-pouchdb authenticates in a middleware right after `cookieParser` (its part
// routes/authentication). A router holding the fixes' routes is placed directly behind it, so
// they see req.couchSession and run before every express-pouchdb route.
function installAfterAuthentication(pouchApp) {
  var router = express.Router({caseSensitive: true});
  FIXES.forEach(function (fix) {
    if (fix.installAfterAuthentication) { fix.installAfterAuthentication(router, pouchApp); }
  });
  var stack = pouchApp._router && pouchApp._router.stack;
  var cookieIndex = -1;
  (stack || []).forEach(function (layer, i) {
    if (cookieIndex === -1 && layer.name === 'cookieParser') { cookieIndex = i; }
  });
  if (cookieIndex === -1 || !stack[cookieIndex + 1]) {
    throw new Error('carecouch fixes: express-pouchdb authentication middleware not found');
  }
  pouchApp.use(router);
  var layer = stack.pop();
  stack.splice(cookieIndex + 2, 0, layer);
}
