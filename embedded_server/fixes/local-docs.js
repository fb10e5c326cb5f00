// Defect: express-pouchdb has no `/{db}/_local_docs`: `GET` looked up a document called
// `_local_docs` (404), so a client could not list a database's local documents (replication
// checkpoints among them), and PouchDB offers no way to list them either.
//
// CouchDB behaviour restored (chttpd_db:db_req/2 for ?IS_ALL_DOCS, all_docs_view/4;
// couch_mrview:all_docs_fold/4 with namespace `_local`, which folds couch_db:fold_local_docs/4
// and builds each row in map_fold/3): `GET` and `POST /{db}/_local_docs`, for members, answer
// {"total_rows": null, "offset": null, "rows": [...]} (get_total_rows/2 and get_reduce_fun/1
// give null for `_local`); each row is {"id", "key" (both the `_local/...` id), "value":
// {"rev"}}, plus "doc" with `include_docs=true`; rows sorted by id, reversed with
// `descending=true`, limited by `startkey`/`start_key`, `endkey`/`end_key`, `inclusive_end`,
// `key`, `skip` and `limit`. With `keys` (a JSON query parameter, or the POST body's member)
// the rows follow the keys, a missing one as {"key", "error": "not_found"}; keys that are not a
// list are 400 "`keys` parameter must be an array." (GET) / "`keys` body member must be an
// array." (POST).
//
// How: PouchDB's LevelDB adapter keeps local documents in the sublevel `local-store` of the
// database's LevelDB and exposes no listing. The server's PouchDB opens every database through
// `leveldown` below, which remembers each open LevelDB by location, and the listing reads that
// sublevel's keys (sublevel-pouchdb's '\xff' + name + '\xff' + id) on the same open handle.
'use strict';

var realLeveldown = require('leveldown');
var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

var SUBLEVEL = '\xfflocal-store\xff';
var SUBLEVEL_END = '\xfflocal-store\u0100'; // after every key of the sublevel (UTF-8 order)
var open = new Map(); // location -> leveldown instance

// leveldown as PouchDB's LevelDB adapter calls it (a function of the location), remembering
// each instance. Named, because the adapter caches open databases per leveldown name.
function carecouchLeveldown(location) {
  var instance = realLeveldown(location);
  open.set(location, instance);
  return instance;
}
carecouchLeveldown.destroy = function (location, callback) {
  open.delete(location);
  return realLeveldown.destroy(location, callback);
};
carecouchLeveldown.repair = realLeveldown.repair;

exports.pouchOptions = function () {
  return {db: carecouchLeveldown};
};

// Every local document of `db`, sorted by id: [{_id, _rev, ...}].
function localDocs(db) {
  var instance = open.get(((db.__opts && db.__opts.prefix) || '') + db.name);
  if (!instance) {
    return Promise.reject(util.couchError(500, 'unknown_error',
      'the local documents of ' + db.name + ' cannot be read'));
  }
  return new Promise(function (resolve, reject) {
    var docs = [];
    var it = instance.iterator({gte: SUBLEVEL, lt: SUBLEVEL_END, keyAsBuffer: false,
      valueAsBuffer: false});
    function next() {
      it.next(function (err, key, value) {
        if (err) {
          return it.end(function () { reject(err); });
        }
        if (key === undefined) {
          return it.end(function () { resolve(docs); });
        }
        try {
          docs.push(JSON.parse(value));
        } catch (e) { /* not a document */ }
        next();
      });
    }
    next();
  });
}

function option(params, names) {
  for (var i = 0; i < names.length; i++) {
    if (params[names[i]] !== undefined) {
      return params[names[i]];
    }
  }
  return undefined;
}

function row(doc, includeDocs) {
  var out = {id: doc._id, key: doc._id, value: {rev: doc._rev}};
  if (includeDocs) {
    out.doc = doc;
  }
  return out;
}

// couch_mrview_http:parse_params/2 values: JSON in the query string, as sent in a POST body.
function rows(docs, params) {
  var includeDocs = params.include_docs === true;
  if (params.keys !== undefined) {
    var byId = new Map(docs.map(function (doc) { return [doc._id, doc]; }));
    var keyed = params.keys.map(function (key) {
      return byId.has(key) ? row(byId.get(key), includeDocs) : {key: key, error: 'not_found'};
    });
    return params.descending === true ? keyed.reverse() : keyed;
  }
  var descending = params.descending === true;
  var key = params.key;
  var start = key !== undefined ? key : option(params, ['startkey', 'start_key']);
  var end = key !== undefined ? key : option(params, ['endkey', 'end_key']);
  var inclusiveEnd = params.inclusive_end !== false;
  var list = descending ? docs.slice().reverse() : docs;
  list = list.filter(function (doc) {
    var id = doc._id;
    var afterStart = start === undefined || (descending ? id <= start : id >= start);
    var beforeEnd = end === undefined ||
      (descending ? (inclusiveEnd ? id >= end : id > end) : (inclusiveEnd ? id <= end : id < end));
    return afterStart && beforeEnd;
  });
  var skip = Number.isInteger(params.skip) && params.skip > 0 ? params.skip : 0;
  var limit = Number.isInteger(params.limit) && params.limit >= 0 ? params.limit : Infinity;
  return list.slice(skip, skip + limit).map(function (doc) { return row(doc, includeDocs); });
}

function parsedQuery(req) {
  var raw = util.rawQuery(req);
  var params = {};
  Object.keys(raw).forEach(function (name) {
    try {
      params[name] = JSON.parse(raw[name]);
    } catch (e) {
      params[name] = raw[name];
    }
  });
  return params;
}

exports.installAfterAuthentication = function (router, pouchApp) {
  function answer(req, res, params) {
    util.openDb(req, pouchApp, req.params.db).then(function (db) {
      return localDocs(db);
    }).then(function (docs) {
      util.sendJSON(res, 200, {total_rows: null, offset: null, rows: rows(docs, params)});
    }).catch(function (err) {
      util.sendError(res, err);
    });
  }

  router.get('/:db/_local_docs', function (req, res) {
    var params = parsedQuery(req);
    if (params.keys !== undefined && !Array.isArray(params.keys)) {
      return util.sendJSON(res, 400, {error: 'bad_request',
        reason: '`keys` parameter must be an array.'});
    }
    answer(req, res, params);
  });

  router.post('/:db/_local_docs', epUtils.jsonParser, function (req, res) {
    var params = parsedQuery(req);
    var body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? req.body
      : {};
    Object.keys(body).forEach(function (name) { params[name] = body[name]; });
    if (params.keys !== undefined && params.keys !== null && !Array.isArray(params.keys)) {
      return util.sendJSON(res, 400, {error: 'bad_request',
        reason: '`keys` body member must be an array.'});
    }
    if (params.keys === null) {
      delete params.keys;
    }
    answer(req, res, params);
  });
};
