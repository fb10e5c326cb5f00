// Defect 5: `POST /{db}/_changes?filter=_selector` answered 404 (express-pouchdb never passes
// the body's selector, so PouchDB's changes-filter plugin looked for a design document called
// `_selector`) and then crashed the process (the failed Changes emitter raised an 'error' event
// nobody listened to); `GET ...?filter=_selector` crashed it outright. Also: `filter=_design`
// was looked up as a design document, unknown built-in filters were treated as design
// documents, `doc_ids` in a POST body applied without `filter=_doc_ids`, and design-document
// filters ran without `require()` and with a `req` holding only a JSON-parsed `query`.
//
// CouchDB behaviour restored (couch_changes:configure_filter/4 and filter/3, which chttpd_db's
// handle_changes_req1/2 calls):
//  - `_selector`: POST body {"selector": {...}} filters by Mango selector (mango_selector:match
//    on each revision's JSON); a body without a selector object is 400 "Selector error: expected
//    a JSON object"; GET is 400 "Selector must be specified in POST payload"
//    (get_selector_and_fields/1); a `$regex` the embedded server cannot run safely, or a
//    selector nested too deep, is 400 (./selectors.js).
//  - `_doc_ids`: ids from the POST body's `doc_ids` or GET's `doc_ids` query parameter; anything
//    but a list of strings is 400 "`doc_ids` filter parameter is not a list of doc ids."
//    (get_doc_ids/1, check_docids/1). `doc_ids` is ignored without this filter.
//  - `_design`: only design documents.
//  - any other name starting with `_`: 400 "unknown builtin filter name".
//  - `ddoc/name`: the design document's `filters.name` called as fun(doc, req) with CouchDB's
//    request object (query values as the strings sent, userCtx, secObj, ...) and `require()` of
//    the design document's modules; a missing design document is 404 "missing", a missing
//    filter 404 "missing json key: <name>" (check_member_exists/2); a name that is not
//    `designname/filtername` is 400 "`filter` must be of the form `designname/filtername`".
'use strict';

var queryServer = require('./query-server');
var selectors = require('./selectors');
var selectorCore = require('pouchdb-selector-core');
var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

function badRequest(res, reason) {
  util.sendJSON(res, 400, {error: 'bad_request', reason: reason});
}

function selectorFilter(selector) {
  var massaged = selectorCore.massageSelector(selectors.checkSelector(selector));
  var fields = Object.keys(massaged);
  var test = function (doc) {
    var rows = selectorCore.filterInMemoryFields([{doc: doc}], {selector: massaged}, fields);
    return !!rows && rows.length === 1;
  };
  test({}); // throws now, as a 400, for a selector PouchDB cannot evaluate
  return test;
}

// The request object CouchDB hands to design-document functions (chttpd_external:json_req_obj).
function couchRequest(req, raw) {
  var ctx = util.userCtxOf(req);
  var body = req.method === 'POST' && req.body !== undefined ? JSON.stringify(req.body) : 'undefined';
  return {
    info: null,
    id: null,
    uuid: null,
    method: req.method,
    requested_path: util.pathParts(req),
    path: util.pathParts(req),
    raw_path: req.originalUrl,
    query: raw,
    headers: req.headers,
    body: body,
    peer: req.ip,
    form: {},
    cookie: req.cookies || {},
    userCtx: {db: req.params.db, name: ctx.name, roles: ctx.roles},
    secObj: req.couchSecurityObj || {}
  };
}

exports.installAfterAuthentication = function (router, pouchApp) {
  router.all('/:db/_changes', epUtils.jsonParser, function (req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
      return next();
    }
    var raw = util.rawQuery(req);
    var filter = raw.filter;
    var body = (req.method === 'POST' && req.body && typeof req.body === 'object' &&
      !Array.isArray(req.body)) ? req.body : null;
    if (body && filter !== '_doc_ids') {
      delete body.doc_ids;
    }
    delete req.query.doc_ids;
    delete req.query.selector;
    if (filter === undefined || filter === '') {
      delete req.query.filter;
      return next();
    }

    if (filter === '_doc_ids') {
      var ids;
      if (req.method === 'POST') {
        ids = body ? body.doc_ids : undefined;
      } else {
        try {
          ids = JSON.parse(raw.doc_ids === undefined ? 'null' : raw.doc_ids);
        } catch (e) {
          return badRequest(res, 'invalid UTF-8 JSON');
        }
      }
      if (!Array.isArray(ids) || ids.some(function (id) { return typeof id !== 'string'; })) {
        return badRequest(res, '`doc_ids` filter parameter is not a list of doc ids.');
      }
      delete req.query.filter;
      req.query.doc_ids = ids;
      return next();
    }

    if (filter === '_selector') {
      if (req.method !== 'POST') {
        return badRequest(res, 'Selector must be specified in POST payload');
      }
      var selector = body ? body.selector : undefined;
      if (!selector || typeof selector !== 'object' || Array.isArray(selector)) {
        return badRequest(res, 'Selector error: expected a JSON object');
      }
      try {
        req.query.filter = selectorFilter(selector);
      } catch (e) {
        return badRequest(res, String(e && e.message || e));
      }
      return next();
    }

    if (filter === '_design') {
      req.query.filter = function (doc) {
        return typeof doc._id === 'string' && doc._id.indexOf('_design/') === 0;
      };
      return next();
    }

    if (filter === '_view') {
      return next(); // PouchDB's changes-filter plugin runs the view's map function
    }

    if (filter.charAt(0) === '_') {
      return badRequest(res, 'unknown builtin filter name');
    }

    var parts = filter.split('/').filter(Boolean);
    if (parts.length !== 2) {
      return badRequest(res, '`filter` must be of the form `designname/filtername`');
    }
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return db.get('_design/' + parts[0]);
    }).then(function (ddoc) {
      var filters = ddoc.filters;
      if (!filters || typeof filters !== 'object') {
        return util.sendJSON(res, 404, {error: 'not_found', reason: 'missing json key: filters'});
      }
      if (typeof filters[parts[1]] !== 'string') {
        return util.sendJSON(res, 404, {
          error: 'not_found', reason: 'missing json key: ' + parts[1]
        });
      }
      var fun;
      try {
        fun = queryServer.compileFunction(filters[parts[1]], ddoc);
      } catch (e) {
        return util.sendJSON(res, 500, {
          error: 'compilation_error', reason: 'filter ' + filter + ' does not compile'
        });
      }
      var couchReq = couchRequest(req, raw);
      req.query.filter = function (doc) {
        try {
          return !!fun.call(ddoc, doc, couchReq);
        } catch (e) {
          process.stderr.write('filter ' + filter + ' threw: ' + ((e && e.stack) || e) + '\n');
          return false;
        }
      };
      next();
    }).catch(function (err) {
      util.sendError(res, err);
    });
  });
};
