// Defect (issue 10, attack 5c): one 50 MB attachment through `PUT /{db}/{doc}/{att}` blocked
// every other request for 15-30 s and left the process at 1.6-2.3 GB. Measured (node
// --cpu-prof): PouchDB 7 computes a deterministic revision id as md5(JSON.stringify(doc))
// (pouchdb-utils rev/2, called by pouchdb-adapter-utils parseDoc/3) before it turns attachment
// data into stored binary, and JSON.stringify of a Buffer is Buffer.prototype.toJSON: an array
// of one number per byte, a string of ~200 MB, seconds of CPU and garbage collection (~80% of
// the time; the rest was the validation clone, removed in ./validation.js). Every PouchDB API
// call also deep-clones its arguments, Buffers included (pouchdb-utils toPromise/1).
// express-pouchdb's route buffers the body with no limit at all.
//
// CouchDB behaviour restored: a revision id is computed from the body and each attachment's
// md5, never its bytes as JSON (couch_db:new_revid/1); `[couchdb] max_attachment_size` (3.x
// default `infinity`, couch_att:max_attachment_size/0) refuses a larger attachment, inline
// (base64 in JSON), multipart or through the attachment route, with
// 413 {"error": "attachment_too_large", "reason": <attachment name>}
// (couch_att:validate_attachment_size/3, chttpd:error_info({request_entity_too_large,
// {attachment, Name}})); the attachment route checks Content-Length before reading the body
// and counts the bytes of a chunked one.
//
// How: the embedded server reads `[couchdb] max_attachment_size` from its configuration, whose
// defaults come from deploy/couchdb.ini (server.js), the file production CouchDB is given, so
// both servers refuse the same sizes. The attachment PUT route is our own: it reads the body
// with that limit and answers 413 at once. Before PouchDB sees a write, attachment data held as
// a Buffer becomes base64 text (what PouchDB stores from JSON anyway): JSON.stringify and the
// argument clones then copy one string reference instead of building a number per byte.
'use strict';

var rawBody = require('raw-body');
var wrappers = require('pouchdb-wrappers');
var util = require('./util');

var SECTION = 'couchdb';
var KEY = 'max_attachment_size';

// The configured limit in bytes, or Infinity (`infinity`, unset or not a number).
function maxAttachmentSize(pouchApp) {
  var value = pouchApp.couchConfig && pouchApp.couchConfig.get(SECTION, KEY);
  var bytes = typeof value === 'number' ? value : parseInt(String(value), 10);
  return Number.isFinite(bytes) && bytes >= 0 ? bytes : Infinity;
}

function tooLarge(name) {
  return util.couchError(413, 'attachment_too_large', name);
}

// Throws 413 for an attachment over the limit; turns Buffer data into base64 text.
function prepareAttachments(docs, max) {
  (docs || []).forEach(function (doc) {
    var atts = doc && typeof doc === 'object' ? doc._attachments : null;
    if (!atts || typeof atts !== 'object') {
      return;
    }
    Object.keys(atts).forEach(function (name) {
      var att = atts[name];
      if (!att || typeof att !== 'object' || att.stub || att.data === undefined) {
        return;
      }
      if (util.dataLength(att.data) > max) {
        throw tooLarge(name);
      }
      if (Buffer.isBuffer(att.data)) {
        att.data = att.data.toString('base64');
      }
    });
  });
}

function attachmentPath(parts) {
  // /{db}/{doc}/{att...} and /{db}/_design/{name}/{att...}; never /{db}/_local/..., and not
  // /{db}/_design/{name}/_{action}/... (_update, _show, ...: chttpd_db:handle_design_req/2)
  if (parts[1] === '_design') {
    return parts.length >= 4 && parts[3].charAt(0) !== '_'
      ? {id: '_design/' + parts[2], name: parts.slice(3).join('/')} : null;
  }
  if (parts.length >= 3 && parts[1].charAt(0) !== '_') {
    return {id: parts[1], name: parts.slice(2).join('/')};
  }
  return null;
}

// A refused upload: answer now, discard the rest of the body, close the connection.
function refuse(req, res, err) {
  res.setHeader('Connection', 'close');
  util.sendError(res, err);
  req.resume();
}

exports.installOnPouch = function (pouchApp) {
  pouchApp.dbWrapper.registerWrapper(function (name, db, next) {
    wrappers.installWrapperMethods(db, {
      bulkDocs: function (orig, args) {
        try {
          prepareAttachments(args.docs, maxAttachmentSize(pouchApp));
        } catch (err) {
          return Promise.reject(err);
        }
        return orig();
      }
    });
    return next();
  });
};

exports.installAfterAuthentication = function (router, pouchApp) {
  router.put('/:db/*', function (req, res, next) {
    if (util.isServerPath(req.params.db)) {
      return next(); // e.g. PUT /_config/{section}/{key}
    }
    var target = attachmentPath(util.pathParts(req));
    if (!target) {
      return next();
    }
    var max = maxAttachmentSize(pouchApp);
    var declared = req.headers['content-length'];
    rawBody(req, {length: declared, limit: Number.isFinite(max) ? max : null},
      function (err, body) {
        if (err) {
          return refuse(req, res, err.type === 'entity.too.large' ? tooLarge(target.name)
            : util.couchError(400, 'bad_request', String(err.message)));
        }
        var rev = util.rawQuery(req).rev;
        var type = req.get('Content-Type') || 'application/octet-stream';
        util.openDb(req, pouchApp, req.params.db).then(function (db) {
          return db.putAttachment(target.id, target.name, rev, body, type);
        }).then(function (result) {
          res.set('ETag', JSON.stringify(result.rev));
          res.set('Location', '/' + encodeURIComponent(req.params.db) + '/' +
            encodeURIComponent(target.id) + '/' + encodeURIComponent(target.name));
          util.sendJSON(res, 201, result);
        }).catch(function (e) {
          util.sendError(res, e);
        });
      });
  });
};
