// Runs a caseload's own record rules outside CouchDB: its design document's
// validate_doc_update, compiled with CouchDB's require() (query_server.js), and the rule
// modules a device asks directly (the NEWS2 score). Load query_server.js first.
//
// Every call takes and returns JSON text, so any host (QuickJS from Python, a browser) passes
// plain strings. A refusal is returned as CouchDB would answer it, {"forbidden": "<code>:
// <message>"}, plus, when the host asked to collect them, every problem of the record
// (common.js `problem`): the server stops at the first one, a device shows them all at once.
var carecouchCollectProblems = false;

var carecouchRules = (function () {
  'use strict';
  var compile = carecouchQueryServer(function () {});
  var loaded = null;  // {ddoc, validate}

  function outcome(err) {
    if (err && typeof err === 'object' && err.forbidden !== undefined) {
      return {forbidden: String(err.forbidden), problems: err.problems || null};
    }
    if (err && typeof err === 'object' && err.unauthorized !== undefined) {
      return {unauthorized: String(err.unauthorized)};
    }
    return {error: String((err && (err.message || err.name)) || err)};
  }

  return {
    load: function (ddocJson) {
      var ddoc = JSON.parse(ddocJson);
      loaded = {ddoc: ddoc, validate: compile(ddoc.validate_doc_update, ddoc)};
      return 'true';
    },
    validate: function (argsJson) {
      var args = JSON.parse(argsJson);
      carecouchCollectProblems = !!args.collect;
      try {
        loaded.validate(args.newDoc, args.oldDoc, args.userCtx, args.secObj);
        return JSON.stringify({ok: true});
      } catch (err) {
        return JSON.stringify(outcome(err));
      } finally {
        carecouchCollectProblems = false;
      }
    },
    // Whether the design document's filter `name` (filters.<name>) passes each document, as
    // CouchDB's changes feed asks it: fun(doc, {query: <query parameters as strings>}).
    filter: function (name, docsJson, queryJson) {
      var source = loaded.ddoc.filters && loaded.ddoc.filters[name];
      if (typeof source !== 'string') { throw new Error('no filter ' + name); }
      if (!loaded.filters) { loaded.filters = {}; }
      if (!loaded.filters[name]) { loaded.filters[name] = compile(source, loaded.ddoc); }
      var fun = loaded.filters[name];
      var req = {query: JSON.parse(queryJson)};
      var docs = JSON.parse(docsJson);
      var out = [];
      for (var i = 0; i < docs.length; i++) { out.push(!!fun(docs[i], req)); }
      return JSON.stringify(out);
    },
    // exports[name](arg) of the design document's module `module`, e.g. lib/validate/news2.
    call: function (module, name, argJson) {
      var exports = compile('function () { return require(' + JSON.stringify(module) + '); }',
                            loaded.ddoc)();
      return JSON.stringify(exports[name](JSON.parse(argJson)));
    }
  };
}());
