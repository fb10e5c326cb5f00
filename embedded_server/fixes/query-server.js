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
'use strict';

var caches = new WeakMap(); // design document object -> {module id: exports}

function queryServerError(name, message) {
  var err = new Error(message);
  err.name = name;
  err.status = 500;
  return err;
}

function resolveModule(names, mod, root) {
  if (names.length === 0) {
    if (typeof mod.current !== 'string') {
      throw queryServerError('invalid_require_path',
        'Must require a JavaScript string, not: ' + typeof mod.current);
    }
    return {current: mod.current, parent: mod.parent, id: mod.id, exports: {}};
  }
  var n = names.shift();
  if (n === '..') {
    if (!(mod && mod.parent && mod.parent.parent)) {
      throw queryServerError('invalid_require_path', 'Object has no parent');
    }
    return resolveModule(names, {
      id: mod.id.slice(0, mod.id.lastIndexOf('/')),
      parent: mod.parent.parent,
      current: mod.parent.current
    });
  } else if (n === '.') {
    if (!(mod && mod.parent)) {
      throw queryServerError('invalid_require_path', 'Object has no parent');
    }
    return resolveModule(names, {parent: mod.parent, current: mod.current, id: mod.id});
  } else if (root) {
    mod = {current: root};
  }
  if (mod.current === null || typeof mod.current !== 'object' || mod.current[n] === undefined) {
    throw queryServerError('invalid_require_path', 'Object has no property "' + n + '"');
  }
  return resolveModule(names, {
    current: mod.current[n],
    parent: mod,
    id: mod.id ? mod.id + '/' + n : n
  });
}

function log(message) {
  process.stdout.write('[query server] ' +
    (typeof message === 'string' ? message : JSON.stringify(message)) + '\n');
}

function sum(values) {
  return values.reduce(function (a, b) { return a + b; }, 0);
}

var GLOBALS = ['require', 'log', 'isArray', 'toJSON', 'sum'];

function evaluate(source, require) {
  /* jshint evil: true */
  var factory = new Function(GLOBALS.join(', '), 'return (' + source + '\n);');
  return factory(require, log, Array.isArray, JSON.stringify, sum);
}

// Compile `source` (a function expression) of design document `ddoc`.
exports.compileFunction = function (source, ddoc) {
  if (!caches.has(ddoc)) {
    caches.set(ddoc, {});
  }
  var cache = caches.get(ddoc);
  function require(name, requiring) {
    // As CouchDB: absolute names resolve from the design document, "." and ".." from the
    // requiring module's parent object.
    var module = resolveModule(String(name).split('/'), (requiring || {}).parent, ddoc);
    if (!Object.prototype.hasOwnProperty.call(cache, module.id)) {
      cache[module.id] = {}; // stops circular requires from filling the stack
      var body = new Function('module, exports, require, log, isArray, toJSON, sum',
        module.current + '\n');
      body(module, module.exports, function (child) { return require(child, module); },
        log, Array.isArray, JSON.stringify, sum);
      cache[module.id] = module.exports;
    }
    return cache[module.id];
  }
  var func;
  try {
    func = evaluate(source, function (name) { return require(name); });
  } catch (err) {
    throw queryServerError('compilation_error', String(err && err.message || err));
  }
  if (typeof func !== 'function') {
    throw queryServerError('compilation_error', 'Expression does not eval to a function.');
  }
  return func;
};
