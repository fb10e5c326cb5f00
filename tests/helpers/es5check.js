// Parses JavaScript sources as ECMAScript 5 with acorn and prints the ones that are not.
// Input (stdin): JSON {"<name>": {"kind": "function" | "module", "source": "..."}}.
// Output (stdout): JSON {"<name>": "<acorn's error>"} for each source that fails.
'use strict';
var acorn = require('acorn');

var input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
var failures = {};
Object.keys(input).forEach(function (name) {
  var item = input[name];
  // CouchDB evaluates a function source as an expression; a module as a function body.
  var code = item.kind === 'function' ? '(' + item.source + ')' :
    '(function (module, exports, require) {' + item.source + '\n})';
  try {
    acorn.parse(code, {ecmaVersion: 5, sourceType: 'script'});
  } catch (e) {
    failures[name] = e.message;
  }
});
process.stdout.write(JSON.stringify(failures));
