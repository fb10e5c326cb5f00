// The fixes that make express-pouchdb behave like Apache CouchDB 3.5 where carecouch relies on
// it. Each fix is its own module, opening with the defect it repairs and the CouchDB behaviour
// it restores; tests/conformance/ proves each one over HTTP.
'use strict';

var FIXES = [];

// express-pouchdb parts replaced wholesale by a fix (see express-pouchdb/lib/index.js).
exports.excludedParts = [];
FIXES.forEach(function (fix) {
  (fix.excludedParts || []).forEach(function (part) { exports.excludedParts.push(part); });
});

// Express middleware that must run before express-pouchdb's own routes.
exports.installBefore = function (app, pouchApp) {
  FIXES.forEach(function (fix) {
    if (fix.installBefore) { fix.installBefore(app, pouchApp); }
  });
};

// Plugins and database wrappers, registered before the PouchDB constructor is handed over.
exports.installOnPouch = function (pouchApp, PouchDB) {
  FIXES.forEach(function (fix) {
    if (fix.installOnPouch) { fix.installOnPouch(pouchApp, PouchDB); }
  });
};
