// Defects (pouchdb-validation 4.2.0, express-pouchdb's part 'validation'):
//  1. With any `validate_doc_update` installed, `_bulk_docs` with `new_edits=false` stores
//     nothing and answers `[]`: validate() does `newDoc._revisions = (oldDoc || {})._revisions`,
//     replacing the incoming history with the winner's, so PouchDB sees a revision it already
//     has (upstream issue #419). Every write also re-read and re-evaluated every design document
//     once per document, which makes a 10,000-document `_bulk_docs` pathologically slow.
//  2. `oldDoc` for a replicated write was the winning revision, not the revision the incoming
//     branch grows from, and revisions already stored were validated again.
//  3. (issue 10, attack 4) A write that reached bulkDocs without `opts.userCtx` was validated as
//     the server admin: express-pouchdb's `PUT`/`DELETE /{db}/{doc}/{att}` (PouchDB's
//     putAttachment/removeAttachment take no options) and `_update` handlers pass none, so a
//     member could add or remove attachments on anyone's record and on design documents.
//  4. validate_doc_update saw attachments with their data: a 50 MB attachment was JSON-cloned
//     (as an array of numbers) for every validator, for seconds and a gigabyte and more.
//  Also: a member writing a design document through `_bulk_docs` got 401 (pouchdb-security)
//  where CouchDB answers 403 to an authenticated user, `_bulk_docs` errors came back out of
//  order (pouchdb-bulkdocs-wrapper puts them first), and express-pouchdb's DatabaseWrapper
//  handed a database to a second concurrent request before its wrappers (validation among
//  them) were installed, so the first writes after a start could skip validation.
//
// CouchDB behaviour restored (couch_db.erl):
//  - validate_doc_update/3: `_local/` documents are never validated; a design document needs a
//    db admin (check_is_admin/1: 401 `unauthorized` anonymous, 403 `forbidden` named, "You are
//    not a db or server admin.") and is not passed to validate_doc_update functions; other
//    documents go through every design document's function, in design-document-id order, as
//    fun(newDoc, oldDoc, userCtx, secObj) with userCtx {db, name, roles} and the database's
//    security object, as the user who sent the request: chttpd_db passes the request's
//    user_ctx to every update (db_doc_req/3, db_attachment_req/4 for attachment PUT/DELETE,
//    COPY, POST, _bulk_docs; chttpd_show for _update). The documents carry attachment stubs,
//    never data (couch_query_servers:validate_doc_update/6 uses couch_doc:to_json_obj(Doc,
//    [revs]); couch_att:to_json/4 then writes {content_type, revpos, digest, length,
//    stub: true}). A thrown {forbidden: M} is 403 {"error": "forbidden", "reason": M}, a thrown
//    {unauthorized: M} is 401, any other thrown value 500 `unknown_error`
//    (couch_query_servers:validate_doc_update/5); per document in `_bulk_docs` (and per
//    failing document for new_edits=false).
//  - interactive edits, prep_and_validate_update/5: oldDoc is the leaf named by `_rev`; no `_rev`
//    means null (a new document, or one whose winner is deleted); a `_rev` that is not a leaf, or
//    no `_rev` for a live document, is a conflict and is not validated. newDoc carries the `_rev`
//    it edits and `_revisions` {start, ids: [that rev id]} (couch_doc:to_json_obj(Doc, [revs])).
//  - replicated writes, prep_and_validate_replicated_updates/5 + make_first_doc_on_disk/4: a
//    revision already in the tree, or one that another document of the same request extends, is
//    not validated (and counts as written); otherwise oldDoc is the nearest ancestor on the
//    incoming branch whose body is still stored (revisions never stored, or whose body
//    compaction removed, are skipped), or null; a document new to the database is validated
//    against null. newDoc keeps its own `_revisions`.
//  Compiled validation functions are cached per database and rebuilt when the set of design
//  document revisions changes (couch_db:load_validation_funs/1 + reload on ddoc updates).
//
// Replaces express-pouchdb's part 'validation' (pouchdb-validation's wrapper); this module is
// our own, written for CouchDB's rules rather than forked.
'use strict';

var lastResort = require('./last-resort');
var queryServer = require('./query-server');
var wrappers = require('pouchdb-wrappers');
var uuid = require('pouchdb-utils').uuid;
var util = require('./util');

exports.excludedParts = ['validation'];

var CHUNK = 64; // documents whose revision trees are read concurrently
var cache = new WeakMap(); // db object -> {key, validators}

function compile(ddoc) {
  try {
    return {ddoc: ddoc, func: queryServer.compileFunction(ddoc.validate_doc_update, ddoc)};
  } catch (err) {
    // Fail closed: a validation function that does not compile refuses every write.
    var message = 'validate_doc_update of ' + ddoc._id + ' does not compile';
    return {ddoc: ddoc, error: util.couchError(500, 'compilation_error', message)};
  }
}

function loadValidators(db) {
  var range = {startkey: '_design/', endkey: '_design0'};
  return db.allDocs(range).then(function (res) {
    var key = res.rows.map(function (row) { return row.id + '@' + row.value.rev; }).join('\n');
    var cached = cache.get(db);
    if (cached && cached.key === key) {
      return cached.validators;
    }
    return db.allDocs({startkey: range.startkey, endkey: range.endkey, include_docs: true})
      .then(function (full) {
        var validators = full.rows.filter(function (row) {
          return row.doc && typeof row.doc.validate_doc_update === 'string';
        }).map(function (row) { return compile(row.doc); });
        cache.set(db, {key: key, validators: validators});
        return validators;
      });
  });
}

function runValidators(validators, newDoc, oldDoc, userCtx, secObj) {
  for (var i = 0; i < validators.length; i++) {
    var validator = validators[i];
    if (validator.error) {
      return validator.error;
    }
    try {
      validator.func.call(validator.ddoc, util.clone(newDoc),
        oldDoc === null ? null : util.clone(oldDoc), util.clone(userCtx), util.clone(secObj));
    } catch (e) {
      if (e && typeof e === 'object' && e.forbidden !== undefined) {
        return util.couchError(403, 'forbidden', messageOf(e.forbidden));
      }
      if (e && typeof e === 'object' && e.unauthorized !== undefined) {
        return util.couchError(401, 'unauthorized', messageOf(e.unauthorized));
      }
      if (e instanceof Error) {
        return util.couchError(500, e.name || 'unknown_error', String(e.message));
      }
      // Any other thrown value: {unknown_error, Message} (the object's one value, or the value).
      var keys = e && typeof e === 'object' ? Object.keys(e) : [];
      return util.couchError(500, 'unknown_error', messageOf(keys.length === 1 ? e[keys[0]] : e));
    }
  }
  return null;
}

function messageOf(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

// {pos, ids} of a document as written: its `_revisions`, else its `_rev`.
function revsOf(doc) {
  var r = doc._revisions;
  if (r && typeof r === 'object' && Number.isInteger(r.start) && Array.isArray(r.ids) &&
      r.ids.length > 0) {
    return {pos: r.start, ids: r.ids};
  }
  var m = typeof doc._rev === 'string' && /^(\d+)-(.+)$/.exec(doc._rev);
  return m ? {pos: Number(m[1]), ids: [m[2]]} : null;
}

// couch_att:to_json/4 without data (couch_doc:to_json_obj(Doc, [revs]) has no `attachments`
// option): {content_type, revpos, digest (once known), length, stub: true}. Data already
// stored arrives as PouchDB's stub; new data (a Buffer, or base64 in JSON) is described by its
// length and never copied.
function attachmentStub(att, revpos) {
  if (!att || typeof att !== 'object' || Array.isArray(att)) {
    return att;
  }
  var stub = {content_type: att.content_type,
    revpos: att.stub && Number.isInteger(att.revpos) ? att.revpos : revpos};
  if (att.stub && typeof att.digest === 'string') {
    stub.digest = att.digest;
  }
  stub.length = att.stub || att.follows ? att.length : util.dataLength(att.data);
  stub.stub = true;
  return stub;
}

// The document as validate_doc_update sees it: a copy with attachment stubs and, when known,
// the `_revisions` it carries. `revpos` is the position of the revision being written.
function validationCopy(doc, revs, revpos) {
  var body = {};
  Object.keys(doc).forEach(function (key) {
    if (key !== '_attachments') {
      body[key] = doc[key];
    }
  });
  var copy = util.clone(body);
  var atts = doc._attachments;
  if (atts && typeof atts === 'object' && !Array.isArray(atts)) {
    copy._attachments = {};
    Object.keys(atts).forEach(function (name) {
      copy._attachments[name] = attachmentStub(atts[name], revpos);
    });
  } else if (atts !== undefined) {
    copy._attachments = util.clone(atts);
  }
  if (revs && !copy._revisions) {
    copy._revisions = {start: revs.pos, ids: revs.ids.slice()};
  }
  return copy;
}

// prep_and_validate_update/5
function interactivePlan(db, doc) {
  return util.getRevTree(db, doc._id).then(function (tree) {
    var nodes = tree ? util.treeNodes(tree) : null;
    if (typeof doc._rev === 'string') {
      var node = nodes && nodes[doc._rev];
      if (!node || !node.leaf) {
        return {skip: true}; // conflict
      }
      var edited = revsOf(doc);
      return {oldRev: doc._rev, newDoc: validationCopy(doc, edited, edited ? edited.pos + 1 : 1)};
    }
    if (!nodes || util.sortedLeaves(nodes)[0].deleted) {
      return {oldRev: null, newDoc: validationCopy(doc, null, 1)};
    }
    return {skip: true}; // conflict
  });
}

// prep_and_validate_replicated_updates/5 and make_first_doc_on_disk/4
function replicatedPlan(db, doc, extended) {
  var revs = revsOf(doc);
  if (!revs) {
    return Promise.resolve({skip: true}); // PouchDB refuses the malformed document itself
  }
  var rev = revs.pos + '-' + revs.ids[0];
  var newDoc = validationCopy(doc, revs, revs.pos);
  return util.getRevTree(db, doc._id).then(function (tree) {
    if (!tree) {
      return {oldRev: null, newDoc: newDoc};
    }
    var nodes = util.treeNodes(tree);
    if (nodes[rev] || (extended[doc._id] && extended[doc._id][rev])) {
      return {skip: true};
    }
    for (var k = 1; k < revs.ids.length; k++) {
      var ancestor = nodes[(revs.pos - k) + '-' + revs.ids[k]];
      if (!ancestor) {
        continue; // not stored: part of this request, or never seen
      }
      // The branch joins the stored tree here: follow the tree towards the root.
      for (var cur = ancestor; cur; cur = cur.parent ? nodes[cur.parent] : null) {
        if (cur.status === 'available') {
          return {oldRev: cur.rev, newDoc: newDoc};
        }
      }
      break;
    }
    return {oldRev: null, newDoc: newDoc};
  });
}

function loadOldDoc(db, id, rev) {
  if (!rev) {
    return Promise.resolve(null);
  }
  return db.get(id, {rev: rev, revs: true}).catch(function (err) {
    if (err && err.status === 404) {
      return null;
    }
    throw err;
  });
}

// Who is writing: the HTTP caller whenever the write belongs to a request, whatever the route
// passed (express-pouchdb's attachment routes and `_update` pass nothing, and a missing
// userCtx used to mean "server admin"); the given userCtx, or a server admin, only for the
// server's own writes outside any request (system databases at start, replications it runs).
function writerOf(opts) {
  var req = lastResort.currentRequest();
  var ctx = req ? util.userCtxOf(req) : (opts.userCtx || {name: null, roles: ['_admin']});
  return {name: ctx.name === undefined ? null : ctx.name,
    roles: Array.isArray(ctx.roles) ? ctx.roles.slice() : []};
}

function validatingBulkDocs(orig, args) {
  var db = args.base;
  var opts = args.options || {};
  var docs = args.docs;
  if (!Array.isArray(docs) || docs.length === 0) {
    return orig();
  }
  var newEdits = opts.new_edits !== false;
  var userCtx = writerOf(opts);
  userCtx.db = db.name;
  var secPromise = util.readSecurity(db);
  var validatorsPromise = loadValidators(db);

  // Revisions that another document of this request extends (not leaves after the merge).
  var extended = {};
  if (!newEdits) {
    docs.forEach(function (doc) {
      var revs = doc && typeof doc === 'object' && revsOf(doc);
      if (!revs || typeof doc._id !== 'string') {
        return;
      }
      extended[doc._id] = extended[doc._id] || {};
      for (var k = 1; k < revs.ids.length; k++) {
        extended[doc._id][(revs.pos - k) + '-' + revs.ids[k]] = true;
      }
    });
  }

  return Promise.all([secPromise, validatorsPromise]).then(function (loaded) {
    var secObj = loaded[0];
    var validators = loaded[1];

    function check(doc) {
      if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
        return Promise.resolve(null);
      }
      if (newEdits && !doc._id) {
        doc._id = uuid();
      }
      var id = doc._id;
      if (typeof id !== 'string' || id.indexOf('_local/') === 0) {
        return Promise.resolve(null);
      }
      var isDesign = id.indexOf('_design/') === 0;
      if (!isDesign && validators.length === 0) {
        return Promise.resolve(null);
      }
      var plan = newEdits ? interactivePlan(db, doc) : replicatedPlan(db, doc, extended);
      return plan.then(function (p) {
        if (p.skip) {
          return null;
        }
        if (isDesign) {
          return util.isDbAdmin(userCtx, secObj) ? null
            : util.securityError(userCtx, 'You are not a db or server admin.');
        }
        return loadOldDoc(db, id, p.oldRev).then(function (oldDoc) {
          return runValidators(validators, p.newDoc, oldDoc, userCtx, secObj);
        });
      });
    }

    var outcomes = [];
    function nextChunk(start) {
      if (start >= docs.length) {
        return Promise.resolve(outcomes);
      }
      return Promise.all(docs.slice(start, start + CHUNK).map(check)).then(function (results) {
        outcomes = outcomes.concat(results);
        return nextChunk(start + CHUNK);
      });
    }
    return nextChunk(0);
  }).then(function (outcomes) {
    var errors = [];
    var passing = [];
    docs.forEach(function (doc, i) {
      var err = outcomes[i];
      if (err) {
        err.id = doc._id;
        var revs = revsOf(doc);
        if (!newEdits && revs) {
          err.rev = revs.pos + '-' + revs.ids[0];
        }
        errors.push(err);
      } else {
        passing.push(doc);
      }
    });
    if (errors.length === 0) {
      return orig();
    }
    args.docs = passing;
    var written = passing.length ? orig() : Promise.resolve([]);
    return written.then(function (results) {
      if (!newEdits) {
        return errors.concat(results); // CouchDB answers only the failures
      }
      var k = 0;
      return outcomes.map(function (err) { return err || results[k++]; });
    });
  });
}

exports.installOnPouch = function (pouchApp) {
  // Every caller waits for the same, complete wrapping of a database object.
  var wrapping = new WeakMap();
  var wrap = pouchApp.dbWrapper.wrap.bind(pouchApp.dbWrapper);
  pouchApp.dbWrapper.wrap = function (name, db) {
    if (!wrapping.has(db)) {
      wrapping.set(db, wrap(name, db));
    }
    return wrapping.get(db);
  };
  pouchApp.dbWrapper.registerWrapper(function (name, db, next) {
    wrappers.installWrapperMethods(db, {bulkDocs: validatingBulkDocs});
    return next();
  });
};
