// Defect: `POST /_replicate` (one-shot) answers PouchDB's replication result, with the counts
// at the top level ({"ok", "docs_read", "docs_written", "doc_write_failures", "last_seq",
// ...}) and a `history` of whatever this process replicated before. A client written against
// the embedded server read `docs_written` where CouchDB has none: it failed on CouchDB 3.5.
//
// CouchDB behaviour restored (couch_replicator_httpd:handle_req/1 for a one-shot replication,
// couch_replicator_scheduler_job: the checkpoint history it returns): 200
// {"ok": true, "session_id", "source_last_seq", "replication_id_version": 4,
//  "history": [{"session_id", "start_time", "end_time", "start_last_seq", "end_last_seq",
//               "recorded_seq", "missing_checked", "missing_found", "docs_read",
//               "docs_written", "doc_write_failures"}]}
// with RFC 1123 times, and "no_changes": true when there was nothing to replicate. PouchDB does
// not count revisions checked and found missing: both are reported as `docs_read`, the
// revisions it read because the target lacked them, and where it resumed from is not known
// (`start_last_seq` null). Continuous replications are left to
// express-pouchdb (the test suite and carecouch start none).
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var crypto = require('crypto');
var util = require('./util');

function httpDate(date) {
  return date.toUTCString();
}

exports.installAfterAuthentication = function (router) {
  router.post('/_replicate', epUtils.jsonParser, function (req, res, next) {
    var body = req.body;
    if (!body || typeof body !== 'object' || body.continuous || body.cancel) {
      return next();
    }
    var opts = epUtils.makeOpts(req, {});
    if (body.filter) { opts.filter = body.filter; }
    if (body.query_params) { opts.query_params = body.query_params; }
    if (body.doc_ids) { opts.doc_ids = body.doc_ids; }
    var started = new Date();
    var session = crypto.randomBytes(16).toString('hex');
    req.PouchDB.replicate(body.source, body.target, opts).then(function (result) {
      var read = result.docs_read || 0;
      var entry = {
        session_id: session, start_time: httpDate(started), end_time: httpDate(new Date()),
        start_last_seq: null, end_last_seq: result.last_seq, recorded_seq: result.last_seq,
        missing_checked: read, missing_found: read, docs_read: read,
        docs_written: result.docs_written || 0,
        doc_write_failures: result.doc_write_failures || 0
      };
      var answer = {ok: true};
      if (read === 0) { answer.no_changes = true; }
      answer.session_id = session;
      answer.source_last_seq = result.last_seq;
      answer.replication_id_version = 4;
      answer.history = [entry];
      util.sendJSON(res, 200, answer);
    }, function (err) {
      util.sendError(res, err);
    });
  });
};
