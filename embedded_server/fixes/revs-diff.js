// Defect: PouchDB's revsDiff never reports `possible_ancestors`, and reports a revision whose
// body compaction removed as missing, so a replicator sends it again.
//
// CouchDB behaviour restored (chttpd_db:db_req/2 for _revs_diff, couch_db:get_missing_revs/2
// and find_missing/2): a revision is missing only when it is not in the revision tree at all
// (couch_key_tree:find_missing/2 looks at keys, not bodies); for each document with missing
// revisions the answer is {"missing": [...]} plus, when non-empty, "possible_ancestors": the
// document's leaf revisions (deleted ones included) whose position is lower than that of some
// missing revision; documents with nothing missing are left out; an unknown document has all
// its revisions missing.
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

function posOf(rev) {
  var pos = parseInt(String(rev), 10);
  return isNaN(pos) ? 0 : pos;
}

exports.installAfterAuthentication = function (router, pouchApp) {
  router.post('/:db/_revs_diff', epUtils.jsonParser, function (req, res) {
    var body = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return util.sendJSON(res, 400, {error: 'bad_request', reason: 'Request body must be a JSON object'});
    }
    var ids = Object.keys(body);
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return Promise.all(ids.map(function (id) {
        var revs = Array.isArray(body[id]) ? body[id] : [];
        return util.getRevTree(db, id).then(function (tree) {
          if (!tree) {
            return {missing: revs.slice(), possible: []};
          }
          var nodes = util.treeNodes(tree);
          var missing = revs.filter(function (rev) { return !nodes[rev]; });
          var maxPos = Math.max.apply(null, missing.map(posOf).concat([0]));
          var possible = util.sortedLeaves(nodes).filter(function (leaf) {
            return missing.length > 0 && leaf.pos < maxPos;
          }).map(function (leaf) { return leaf.rev; });
          return {missing: missing, possible: possible};
        });
      }));
    }).then(function (diffs) {
      var out = {};
      diffs.forEach(function (diff, i) {
        if (diff.missing.length === 0) {
          return;
        }
        out[ids[i]] = {missing: diff.missing};
        if (diff.possible.length) {
          out[ids[i]].possible_ancestors = diff.possible;
        }
      });
      util.sendJSON(res, 200, out);
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};
