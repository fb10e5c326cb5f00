// How CouchDB's JavaScript query server compiles design-document functions, for the fixes that
// run them (validation.js, changes-filters.js).
//
// Defect: express-pouchdb evaluates functions with couchdb-eval, which
//  - evaluates "return " + source, so a function whose file opens with a comment compiles to
//    `return;` and fails ("Expression does not eval to a function");
//  - re-evaluates every CommonJS module on every require(), so a validation function that
//    requires its rules and the record-type registry re-parses them for every document written
//    (10,000 documents took ~5x longer than without validation);
//  - does not resolve "./" and "../" module paths.
// CouchDB (share/server/util.js, Couch.compileFunction and resolveModule) evaluates the source
// as an expression, resolves module paths from the design document (or relative to the
// requiring module) and caches each module's exports per design document
// (ddoc._module_cache), so a module runs once per design document load.
//
// The implementation is carecouch's one copy of it, carecouch/js/query_server.js, which the
// reference device (QuickJS) and PouchDB apps (browsers) run too: the rules are compiled the
// same way wherever they run.
'use strict';

var carecouchQueryServer = require('../../carecouch/js/query_server.js');

function log(message) {
  process.stdout.write('[query server] ' +
    (typeof message === 'string' ? message : JSON.stringify(message)) + '\n');
}

// Compile `source` (a function expression) of design document `ddoc`.
exports.compileFunction = carecouchQueryServer(log);
