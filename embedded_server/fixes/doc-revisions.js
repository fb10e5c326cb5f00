// Defect: `GET /{db}/{docid}?deleted_conflicts=true` (and `meta=true`) never returns
// `_deleted_conflicts`, `open_revs=[...]&latest=true` returns a single leaf below each
// requested revision where there may be several, and a deleted document reads as
// 404 "missing".
//
// CouchDB behaviour restored: couch_db:open_doc_int/3 adds `_deleted_conflicts`, the deleted
// leaf revisions other than the winner in couch_doc:to_doc_info/1 order, when non-empty
// (`meta=true` means revs_info + conflicts + deleted_conflicts, chttpd_db:parse_doc_query/2);
// open_revs with `latest` returns every leaf at or below each requested revision
// (couch_db:open_doc_revs_int/3 -> couch_key_tree:get_key_leafs/2), and {"missing": rev} for a
// revision not in the tree; a document whose winning revision is deleted is
// 404 {"error": "not_found", "reason": "deleted"} (fabric:open_doc/3 -> {not_found, deleted}).
'use strict';

var util = require('./util');

function docIdOf(parts) {
  if (parts.length === 2 && parts[1].charAt(0) !== '_') {
    return parts[1];
  }
  if (parts.length === 3 && parts[1] === '_design') {
    return '_design/' + parts[2];
  }
  if (parts.length === 2 && parts[1].indexOf('_design/') === 0) {
    return parts[1];
  }
  return null;
}

function getOptions(query, drop) {
  var opts = {};
  Object.keys(query).forEach(function (key) {
    if (drop.indexOf(key) === -1) {
      opts[key] = query[key];
    }
  });
  return opts;
}

exports.installAfterAuthentication = function (router, pouchApp) {
  router.get('/:db/*', function (req, res, next) {
    if (util.isServerPath(req.params.db)) {
      return next(); // e.g. /_config/{section}: express-pouchdb's own routes
    }
    var id = docIdOf(util.pathParts(req));
    var raw = util.rawQuery(req);
    var meta = raw.meta === 'true';
    var deletedConflicts = raw.deleted_conflicts === 'true' || meta;
    var latestOpenRevs = raw.open_revs !== undefined && raw.latest === 'true';
    var plain = raw.open_revs === undefined && raw.rev === undefined;
    if (id === null || (!deletedConflicts && !latestOpenRevs && !plain)) {
      return next();
    }
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return util.getRevTree(db, id).then(function (tree) {
        var nodes = tree ? util.treeNodes(tree) : {};
        if (latestOpenRevs) {
          var opts = getOptions(req.query, ['open_revs', 'latest']);
          var wanted = req.query.open_revs;
          var leaves;
          if (wanted === 'all') {
            leaves = util.sortedLeaves(nodes).map(function (leaf) { return leaf.rev; });
          } else if (Array.isArray(wanted)) {
            leaves = [];
            wanted.forEach(function (rev) {
              var below = nodes[rev] ? util.leavesUnder(nodes, rev).map(function (l) { return l.rev; })
                : [rev];
              below.forEach(function (r) { if (leaves.indexOf(r) === -1) { leaves.push(r); } });
            });
          } else {
            throw util.couchError(400, 'bad_request', 'invalid open_revs');
          }
          if (!tree) {
            return leaves.map(function (rev) { return {missing: rev}; });
          }
          opts.open_revs = leaves;
          return db.get(id, opts);
        }
        var getOpts = getOptions(req.query, ['deleted_conflicts', 'meta']);
        if (meta) {
          getOpts.conflicts = true;
          getOpts.revs_info = true;
        }
        return db.get(id, getOpts).catch(function (err) {
          var winner = util.sortedLeaves(nodes)[0];
          if (err && err.status === 404 && plain && winner && winner.deleted) {
            throw util.couchError(404, 'not_found', 'deleted');
          }
          throw err;
        }).then(function (doc) {
          if (!deletedConflicts) {
            return doc;
          }
          var leaves = util.sortedLeaves(nodes);
          var deleted = leaves.slice(1).filter(function (leaf) { return leaf.deleted; })
            .map(function (leaf) { return leaf.rev; });
          if (deleted.length) {
            doc._deleted_conflicts = deleted;
          }
          return doc;
        });
      });
    }).then(function (body) {
      util.sendJSON(res, 200, body);
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};
