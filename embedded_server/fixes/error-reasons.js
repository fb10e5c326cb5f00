// Defect: write errors carry PouchDB's wording: an update conflict is
// {"error": "conflict", "reason": "Document update conflict"} (no full stop), for `PUT`, `DELETE`
// and each `_bulk_docs` item; reading a deleted document answers {"reason": "missing"}.
//
// CouchDB behaviour restored: chttpd:error_info(conflict) is
// 409 {"error": "conflict", "reason": "Document update conflict."}; reading a document whose
// winning revision is deleted is 404 {"error": "not_found", "reason": "deleted"}
// (fabric:open_doc/3 -> {not_found, deleted}, chttpd_db:couch_doc_open/4). The second is done by
// ./doc-revisions.js, which serves document reads.
'use strict';

var wrappers = require('pouchdb-wrappers');

var REASONS = {conflict: 'Document update conflict.'};

function couchReasons(orig) {
  return orig().then(function (results) {
    (results || []).forEach(function (info) {
      if (info && info.error && REASONS[info.name]) {
        info.message = info.reason = REASONS[info.name];
      }
    });
    return results;
  });
}

exports.installOnPouch = function (pouchApp) {
  pouchApp.dbWrapper.registerWrapper(function (name, db, next) {
    wrappers.installWrapperMethods(db, {bulkDocs: couchReasons});
    return next();
  });
};
