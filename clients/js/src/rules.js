// The caseload's own record rules, run on the device before anything is saved: the
// `validate_doc_update` of its `_design/carecouch`, compiled with CouchDB's require() by the
// very files the reference device and the embedded server use (carecouch/js/query_server.js
// and rules_host.js), not a copy of them (docs/device.md, "The server's rules, before
// saving"). The host keeps one design document loaded at a time; switching caseloads
// reloads it (a few milliseconds).
//
// The host files are plain scripts that define globals (`carecouchQueryServer`,
// `carecouchRules`, and `carecouchCollectProblems`, which the rules read as a global), so
// they are evaluated in the global scope, once. Like CouchDB itself, this compiles design
// document code with `new Function`: a page running it needs `'unsafe-eval'` in its CSP.

import {CarecouchError} from './errors.js';
import {refusalCode} from './records.js';

let host = null;

function installHost(sources) {
  if (host) { return host; }
  if (!sources || typeof sources.queryServer !== 'string' || typeof sources.rulesHost !== 'string') {
    throw new CarecouchError('the rules host needs the text of carecouch/js/query_server.js and rules_host.js');
  }
  const globalEval = eval;  // indirect: runs in the global scope, so `var` makes globals
  globalEval(sources.queryServer);
  globalEval(sources.rulesHost + '\n;globalThis.carecouchRules = carecouchRules;');
  host = {rules: globalThis.carecouchRules, compile: globalThis.carecouchQueryServer(() => {}),
          loaded: null};
  return host;
}

export class RulesEngine {
  constructor(sources) {
    this.host = installHost(sources);
    this.registries = new Map();  // ddoc JSON -> registry
  }

  load(ddoc) {
    const text = JSON.stringify(ddoc);
    if (this.host.loaded !== text) {
      if (typeof ddoc.validate_doc_update !== 'string') {
        throw new CarecouchError(`${ddoc._id} holds no validate_doc_update`);
      }
      this.host.rules.load(text);
      this.host.loaded = text;
    }
  }

  // null when the rules accept `newDoc` on top of `oldDoc`, else {error, reason, code,
  // problems}: what the server would answer, with every problem the rules found.
  check(ddoc, newDoc, oldDoc, userCtx, secObj = {}) {
    this.load(ddoc);
    const answer = JSON.parse(this.host.rules.validate(JSON.stringify({newDoc, oldDoc: oldDoc || null,
                                                                       userCtx, secObj, collect: true})));
    if (answer.ok) { return null; }
    if (answer.forbidden !== undefined) {
      const reason = String(answer.forbidden);
      const problems = (answer.problems || []).map((p) => ({code: String(p.code), message: String(p.message)}));
      return {error: 'forbidden', reason, code: refusalCode(reason),
              problems: problems.length ? problems : [{code: refusalCode(reason), message: reason.slice(reason.indexOf(': ') + 2)}]};
    }
    if (answer.unauthorized !== undefined) {
      return {error: 'unauthorized', reason: String(answer.unauthorized), code: '', problems: []};
    }
    throw new CarecouchError(`a rule of ${ddoc._id} failed: ${answer.error}`);
  }

  // require(module)[fn](arg) in the design document, e.g. the NEWS2 score.
  call(ddoc, module, fn, arg) {
    this.load(ddoc);
    return JSON.parse(this.host.rules.call(module, fn, JSON.stringify(arg)));
  }

  // The record-type registry the rules read (the design document's lib/record_types).
  registry(ddoc) {
    const text = JSON.stringify(ddoc);
    if (!this.registries.has(text)) {
      const exported = this.host.compile('function () { return require("lib/record_types"); }', ddoc)();
      this.registries.set(text, JSON.parse(JSON.stringify(exported)));
    }
    return this.registries.get(text);
  }
}
