// Defects (issue 10, attack 5a and 5b): Mango selectors from any member ran unchecked in the
// server's only thread.
//  - `{"note": {"$regex": "^(a+)+$"}}` in `POST /{db}/_find` or a `_changes?filter=_selector`
//    feed, against a note of 28 "a"s and a "!", froze every other request for 12 s (doubling
//    with each character): V8's backtracking regular-expression engine.
//  - A 5,000-deep `$and` answered 500 "Maximum call stack size exceeded" (PouchDB's
//    massageSelector and in-memory matcher recurse once per level).
//
// CouchDB behaviour: mango_selector:norm_ops/1 compiles each `$regex` with Erlang's `re` (400
// for one that does not compile) and match/3 runs `re:run/3`, PCRE with its match limit, in
// the request's own Erlang process: a pathological pattern stops at the limit and counts as
// no match, and no other request waits for it. norm_ops/1, norm_fields/2 and match/3 recurse
// once per level of the selector with no limit of their own (an Erlang process stack grows on
// the heap), so CouchDB has no documented depth limit for selectors.
//
// How, on the embedded server:
//  - node runs with `--enable-experimental-regexp-engine-on-excessive-backtracks`
//    (carecouch/embedded.py): after 50,000 backtracks V8 re-runs the match on its linear-time
//    engine. That engine cannot run backreferences, lookaround or counted repetitions above a
//    small bound; such a pattern is accepted only if it neither repeats nor alternates (then
//    backtracking is bounded by the pattern's length), else refused with 400 and one reason.
//    Which patterns the linear engine runs is asked of V8 itself (`--enable-experimental-
//    regexp-engine` gives the `l` flag, which compiles only those); without it every pattern
//    that repeats or alternates is refused.
//  - nested `$and`s are flattened without recursion ({$and: [{$and: [a, b]}, c]} is
//    {$and: [a, b, c]}), which is exactly equivalent, so a deep `$and` is answered as CouchDB
//    answers it; any other nesting deeper than MAX_DEPTH levels (objects and arrays) is refused
//    with 400, before anything recursive sees it.
// Applied to `_find`, `_explain` and `POST _changes?filter=_selector` (./changes-filters.js).
'use strict';

var epUtils = require('express-pouchdb/lib/utils');
var util = require('./util');

var MAX_DEPTH = 100;

var LINEAR_ENGINE = (function () {
  try {
    return new RegExp('a', 'l').test('a');
  } catch (e) {
    return false;
  }
}());

function badRequest(reason) {
  return util.couchError(400, 'bad_request', reason);
}

function isObject(value) {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

function isAndNode(value) {
  return isObject(value) && Object.keys(value).length === 1 && Array.isArray(value.$and);
}

// The elements of an `$and`, with every nested single-key `$and` spliced in (no recursion).
function flatAnd(list) {
  var out = [];
  var stack = [{list: list, at: 0}];
  while (stack.length) {
    var top = stack[stack.length - 1];
    if (top.at >= top.list.length) {
      stack.pop();
      continue;
    }
    var item = top.list[top.at++];
    if (isAndNode(item)) {
      stack.push({list: item.$and, at: 0});
    } else {
      out.push(item);
    }
  }
  return out;
}

// Does the pattern repeat (*, +, ?, {n,m}) or alternate (|) anywhere?
function repeatsOrAlternates(source) {
  for (var i = 0; i < source.length; i++) {
    var c = source.charAt(i);
    if (c === '\\') {
      i++;
    } else if (c === '[') {
      for (i++; i < source.length && source.charAt(i) !== ']'; i++) {
        if (source.charAt(i) === '\\') { i++; }
      }
    } else if (c === '(' && source.charAt(i + 1) === '?') {
      i++; // a group's kind ((?:, (?=, (?<name>, ...), not a quantifier
    } else if (c === '*' || c === '+' || c === '?' || c === '|' ||
        (c === '{' && /^\{\d+(,\d*)?\}/.test(source.slice(i)))) {
      return true;
    }
  }
  return false;
}

function linear(source) {
  if (!LINEAR_ENGINE) {
    return false;
  }
  try {
    return !!new RegExp(source, 'l');
  } catch (e) {
    return false;
  }
}

function checkRegex(source) {
  if (typeof source !== 'string') {
    throw badRequest('$regex must be a string');
  }
  try {
    new RegExp(source); // eslint-disable-line no-new
  } catch (e) {
    throw badRequest('invalid $regex ' + JSON.stringify(source) + ': ' + e.message);
  }
  if (!linear(source) && repeatsOrAlternates(source)) {
    throw badRequest('$regex ' + JSON.stringify(source) + ' repeats or alternates and needs ' +
      'backtracking (a backreference, a lookaround or a counted repetition): it could run ' +
      'for hours, so the embedded server refuses it');
  }
}

// A copy of `selector` with nested `$and`s flattened; throws a 400 for a `$regex` that could
// backtrack without end, or nesting deeper than MAX_DEPTH. Never recurses.
exports.checkSelector = function (selector) {
  var root = {value: selector};
  var stack = [{holder: root, key: 'value', depth: 0}];
  while (stack.length) {
    var item = stack.pop();
    var value = item.holder[item.key];
    if (!value || typeof value !== 'object') {
      continue;
    }
    if (item.depth >= MAX_DEPTH) {
      throw badRequest('selector is nested more than ' + MAX_DEPTH + ' levels deep');
    }
    var copy;
    if (Array.isArray(value)) {
      copy = value.slice();
    } else {
      copy = {};
      Object.keys(value).forEach(function (key) {
        copy[key] = value[key];
      });
      if (Array.isArray(copy.$and)) {
        copy.$and = flatAnd(copy.$and);
      }
      if (copy.$regex !== undefined) {
        checkRegex(copy.$regex);
      }
    }
    item.holder[item.key] = copy;
    var depth = item.depth + 1;
    Object.keys(copy).forEach(function (key) {
      stack.push({holder: copy, key: key, depth: depth});
    });
  }
  return root.value;
};

exports.installAfterAuthentication = function (router) {
  if (!LINEAR_ENGINE) {
    process.stderr.write('carecouch: node runs without --enable-experimental-regexp-engine; ' +
      'every $regex that repeats or alternates will be refused\n');
  }
  function check(req, res, next) {
    var body = req.body;
    if (!isObject(body) || body.selector === undefined) {
      return next();
    }
    try {
      body.selector = exports.checkSelector(body.selector);
    } catch (err) {
      return util.sendError(res, err);
    }
    next();
  }
  router.post('/:db/_find', epUtils.jsonParser, check);
  router.post('/:db/_explain', epUtils.jsonParser, check);
};
