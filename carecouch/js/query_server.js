// CouchDB's JavaScript query server, the part carecouch needs outside CouchDB: compile a
// design-document function and give it CouchDB's require() (share/server/util.js:
// Couch.compileFunction and resolveModule). Absolute module names resolve from the design
// document, "./" and "../" from the requiring module; each module runs once per design
// document and its exports are cached, as CouchDB's ddoc._module_cache does.
//
// Environment-neutral (ES5 and WeakMap), so the same file serves every host that runs a caseload's rules:
// the reference device (carecouch/rules.py, in QuickJS, the engine CouchDB 3.5 runs them in),
// the embedded server (Node) and a PouchDB app (a browser).
//
// Use: var compile = carecouchQueryServer(log);  var fn = compile(source, ddoc);
(function (root) {
  'use strict';

  function queryServerError(name, message) {
    var err = new Error(message);
    err.name = name;
    err.status = 500;
    return err;
  }

  function resolveModule(names, mod, ddoc) {
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
    } else if (ddoc) {
      mod = {current: ddoc};
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

  function sum(values) {
    var total = 0;
    for (var i = 0; i < values.length; i++) { total += values[i]; }
    return total;
  }

  function isArray(value) {
    return Object.prototype.toString.call(value) === '[object Array]';
  }

  // Returns compile(source, ddoc): the function `source` (a function expression) of `ddoc`.
  function carecouchQueryServer(log) {
    var caches = new WeakMap();  // design document -> {module id: exports}
    function modulesOf(ddoc) {
      if (!caches.has(ddoc)) { caches.set(ddoc, {}); }
      return caches.get(ddoc);
    }
    var globals = 'require, log, isArray, toJSON, sum';
    return function compile(source, ddoc) {
      var cache = modulesOf(ddoc);
      function require(name, requiring) {
        var module = resolveModule(String(name).split('/'), (requiring || {}).parent, ddoc);
        if (!Object.prototype.hasOwnProperty.call(cache, module.id)) {
          cache[module.id] = {};  // stops circular requires from filling the stack
          var body = new Function('module, exports, ' + globals, module.current + '\n');
          body(module, module.exports, function (child) { return require(child, module); },
            log, isArray, JSON.stringify, sum);
          cache[module.id] = module.exports;
        }
        return cache[module.id];
      }
      var func;
      try {
        func = new Function(globals, 'return (' + source + '\n);')(
          function (name) { return require(name); }, log, isArray, JSON.stringify, sum);
      } catch (err) {
        throw queryServerError('compilation_error', String((err && err.message) || err));
      }
      if (typeof func !== 'function') {
        throw queryServerError('compilation_error', 'Expression does not eval to a function.');
      }
      return func;
    };
  }

  if (typeof module !== 'undefined' && module.exports) {
    module.exports = carecouchQueryServer;
  } else {
    root.carecouchQueryServer = carecouchQueryServer;
  }
}(this));
