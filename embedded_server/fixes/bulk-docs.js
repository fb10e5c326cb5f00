// Defect: express-pouchdb's `POST /{db}/_bulk_docs` drops the `rev` of a failed document, which
// for `new_edits=false` is the only way to tell which revision of a document was refused, and
// its body checks answer with PouchDB's wording.
//
// CouchDB behaviour restored (chttpd_db:db_req/2 for _bulk_docs and
// update_doc_result_to_json/1,2): 201 with one entry per document in request order for
// interactive edits ({"ok": true, "id", "rev"} or {"id", "error", "reason"}); for
// `new_edits: false` only the failures, each {"id", "rev", "error", "reason"}; 400
// "POST body must include `docs` parameter." / "`docs` parameter must be an array." /
// "`new_edits` parameter must be a boolean.".
// Also `PUT /{db}/{docid}?new_edits=false` (a replicated write of one document) answered `{}`;
// CouchDB answers 201 {"ok": true, "id", "rev"} with the incoming revision
// (couch_db:update_doc/4: `{ok, []}` -> the document's own rev), or the refusal's status.
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

function resultJSON(info, newEdits) {
  if (info && info.error) {
    var out = {id: info.id};
    if (!newEdits && info.rev) {
      out.rev = info.rev;
    }
    out.error = info.name;
    out.reason = info.reason || info.message;
    return out;
  }
  return info;
}

function docIdOf(parts) {
  if (parts.length === 2 && parts[1].charAt(0) !== '_') {
    return parts[1];
  }
  if (parts.length === 3 && parts[1] === '_design') {
    return '_design/' + parts[2];
  }
  return null;
}

exports.installAfterAuthentication = function (router, pouchApp) {
  router.put('/:db/*', function (req, res, next) {
    // PUT /_config/{section}/{key} carries a bare JSON string: not ours to parse
    return next(util.isServerPath(req.params.db) ? 'route' : undefined);
  }, epUtils.jsonParser, function (req, res, next) {
    var id = docIdOf(util.pathParts(req));
    var doc = req.body;
    if (util.rawQuery(req).new_edits !== 'false' || id === null || !doc ||
        typeof doc !== 'object' || Array.isArray(doc)) {
      return next();
    }
    doc._id = id;
    var revs = doc._revisions;
    var rev = revs && Array.isArray(revs.ids) && revs.ids.length ? revs.start + '-' + revs.ids[0]
      : doc._rev;
    if (typeof rev !== 'string') {
      return util.sendJSON(res, 400, {
        error: 'bad_request',
        reason: 'When `new_edits: false`, the document needs `_rev` or `_revisions` specified'
      });
    }
    var opts = epUtils.makeOpts(req, {new_edits: false});
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return db.bulkDocs({docs: [doc]}, opts);
    }).then(function (results) {
      var failure = (results || []).filter(function (info) { return info && info.error; })[0];
      if (failure) {
        return util.sendError(res, failure);
      }
      util.sendJSON(res, 201, {ok: true, id: id, rev: rev});
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });

  router.post('/:db/_bulk_docs', epUtils.jsonParser, function (req, res) {
    var body = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body) || body.docs === undefined) {
      return util.sendJSON(res, 400, {
        error: 'bad_request', reason: 'POST body must include `docs` parameter.'
      });
    }
    if (!Array.isArray(body.docs)) {
      return util.sendJSON(res, 400, {
        error: 'bad_request', reason: '`docs` parameter must be an array.'
      });
    }
    var newEdits = body.new_edits === undefined ? true : body.new_edits;
    if (typeof newEdits !== 'boolean') {
      return util.sendJSON(res, 400, {
        error: 'bad_request', reason: '`new_edits` parameter must be a boolean.'
      });
    }
    var opts = epUtils.makeOpts(req, {new_edits: newEdits});
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return db.bulkDocs({docs: body.docs}, opts);
    }).then(function (results) {
      util.sendJSON(res, 201, results.map(function (info) { return resultJSON(info, newEdits); }));
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};
