// Defect: express-pouchdb's `POST /{db}/_bulk_get` answers PouchDB's bulkGet shim: requests
// for the same id are merged (a request without `rev` disappears), a document that does not
// exist comes back as `{}`, a missing revision as {"missing": rev}, and `latest=true` returns
// only one leaf below the requested revision.
//
// CouchDB behaviour restored (chttpd_db: db_req/2 for _bulk_get, bulk_get_parse_args/2,
// bulk_get_docs/3, bulk_get_ret_json/4): one result per request, in request order,
// {"id", "docs": [...]}; a request without `rev` returns every leaf revision (open_revs=all),
// with `rev` that revision, with `latest=true` every leaf at or below it
// (couch_key_tree:get_key_leafs/2); each found revision is {"ok": doc} (with `_revisions` for
// `revs=true`), each missing one {"error": {"id", "rev", "error": "not_found",
// "reason": "missing"}} (rev "undefined" when none was asked for and the document does not
// exist); a request that is not an object or has no id is a `bad_request` error entry; the
// query parameters open_revs, new_edits, w, rev, atts_since are refused with 400; a body
// without `docs` is 400 "Missing JSON list of 'docs'.". Answers are always JSON.
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

var REFUSED_PARAMS = ['open_revs', 'new_edits', 'w', 'rev', 'atts_since'];

function errorEntry(id, rev, error, reason) {
  return {error: {id: id, rev: rev, error: error, reason: reason}};
}

function readRevs(db, id, revs, options) {
  if (revs.length === 0) {
    return Promise.resolve([]);
  }
  var opts = {open_revs: revs};
  Object.keys(options).forEach(function (key) { opts[key] = options[key]; });
  return db.get(id, opts).then(function (results) {
    return results.map(function (result) {
      return result.ok ? {ok: result.ok} : errorEntry(id, result.missing, 'not_found', 'missing');
    });
  });
}

function fetchOne(db, request, options, latest) {
  if (!request || typeof request !== 'object' || Array.isArray(request)) {
    return Promise.resolve({
      id: null, docs: [errorEntry(null, null, 'bad_request', 'document must be a JSON object')]
    });
  }
  var id = request.id;
  if (id === undefined) {
    return Promise.resolve({
      id: null, docs: [errorEntry(null, null, 'bad_request', 'document id missed')]
    });
  }
  var rev = request.rev;
  return util.getRevTree(db, id).then(function (tree) {
    var nodes = tree ? util.treeNodes(tree) : {};
    var revs;
    if (rev === undefined) {
      revs = util.sortedLeaves(nodes).map(function (leaf) { return leaf.rev; });
      if (revs.length === 0) {
        return [errorEntry(id, 'undefined', 'not_found', 'missing')];
      }
    } else if (latest && nodes[rev]) {
      revs = util.leavesUnder(nodes, rev).map(function (leaf) { return leaf.rev; });
    } else {
      revs = [rev];
    }
    if (!tree) {
      return revs.map(function (r) { return errorEntry(id, r, 'not_found', 'missing'); });
    }
    return readRevs(db, id, revs, options);
  }).then(function (docs) {
    return {id: id, docs: docs};
  });
}

exports.installAfterAuthentication = function (router, pouchApp) {
  router.post('/:db/_bulk_get', epUtils.jsonParser, function (req, res) {
    var raw = util.rawQuery(req);
    for (var i = 0; i < REFUSED_PARAMS.length; i++) {
      if (raw[REFUSED_PARAMS[i]] !== undefined) {
        return util.sendJSON(res, 400, {
          error: 'bad_request',
          reason: '"' + REFUSED_PARAMS[i] + '" query parameter is not acceptable'
        });
      }
    }
    var body = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body) || body.docs === undefined) {
      return util.sendJSON(res, 400, {error: 'bad_request', reason: 'Missing JSON list of \'docs\'.'});
    }
    var options = {};
    ['revs', 'attachments', 'att_encoding_info', 'conflicts', 'deleted_conflicts', 'revs_info']
      .forEach(function (name) {
        if (raw[name] === 'true') { options[name] = true; }
      });
    var latest = raw.latest === 'true';
    var requests = Array.isArray(body.docs) ? body.docs : [];
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return Promise.all(requests.map(function (request) {
        return fetchOne(db, request, options, latest);
      }));
    }).then(function (results) {
      util.sendJSON(res, 200, {results: results});
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};
