// Defect: PouchDB accepts an interactive edit (`PUT`, `POST`, `_bulk_docs` without
// `new_edits=false`) whose `_rev` is the tombstone of a deleted document, and extends it.
//
// CouchDB behaviour restored (couch_db_updater:merge_rev_tree/4 for interactive edits of a
// document whose winning revision is deleted): such a document is re-created only from the
// root: the edit must carry no `_rev` (revision depth 1) and must not itself be a deletion;
// CouchDB then grows the new revision from the winning tombstone. Anything else is
// 409 {"error": "conflict", "reason": "Document update conflict."}. (Its validation sees a
// null oldDoc: couch_db:prep_and_validate_update/5, the `[]` revisions case; ./validation.js.)
'use strict';

var wrappers = require('pouchdb-wrappers');
var util = require('./util');

function conflict(id) {
  var err = util.couchError(409, 'conflict', 'Document update conflict.');
  err.id = id;
  return err;
}

function refusedEdit(db, doc) {
  if (!doc || typeof doc !== 'object' || typeof doc._id !== 'string' ||
      doc._id.indexOf('_local/') === 0 || (typeof doc._rev !== 'string' && !doc._deleted)) {
    return Promise.resolve(false);
  }
  return util.getRevTree(db, doc._id).then(function (tree) {
    if (!tree) {
      return false;
    }
    var winner = util.sortedLeaves(util.treeNodes(tree))[0];
    return !!winner && winner.deleted;
  });
}

function recreatingBulkDocs(orig, args) {
  var opts = args.options || {};
  var docs = args.docs;
  if (opts.new_edits === false || !Array.isArray(docs) || docs.length === 0) {
    return orig();
  }
  return Promise.all(docs.map(function (doc) { return refusedEdit(args.base, doc); }))
    .then(function (refused) {
      if (refused.indexOf(true) === -1) {
        return orig();
      }
      args.docs = docs.filter(function (doc, i) { return !refused[i]; });
      var written = args.docs.length ? orig() : Promise.resolve([]);
      return written.then(function (results) {
        var k = 0;
        return docs.map(function (doc, i) { return refused[i] ? conflict(doc._id) : results[k++]; });
      });
    });
}

exports.installOnPouch = function (pouchApp) {
  pouchApp.dbWrapper.registerWrapper(function (name, db, next) {
    wrappers.installWrapperMethods(db, {bulkDocs: recreatingBulkDocs});
    return next();
  });
};
