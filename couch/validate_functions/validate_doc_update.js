function (newDoc, oldDoc, userCtx, secObj) {
  // The validate_doc_update CouchDB calls for every write to a caseload database (design and
  // _local documents excepted). It only dispatches: each concern lives in its own module
  // (lib/validate/<name>) and every refusal is {forbidden: "<code>: <message>"}.
  // docs/record-rules.md lists every rule, its code and why it exists.
  var common = require('lib/validate/common');
  var ctx = common.context(newDoc, oldDoc, userCtx, secObj);
  var deletion = require('lib/validate/deletion').check(ctx);
  if (deletion === 'tombstone') {
    return;
  }
  require('lib/validate/envelope').check(ctx);
  if (deletion === 'restore') {
    return;
  }
  require('lib/validate/authorship').check(ctx);
  var recordClass = ctx.recordType['class'];
  if (recordClass === 'append-only') {
    require('lib/validate/append_only').check(ctx);
  } else if (recordClass === 'mergeable') {
    require('lib/validate/mergeable').check(ctx);
  } else if (recordClass === 'exclusive') {
    require('lib/validate/exclusive').check(ctx);
  }  // no other class: the registry is checked when it is assembled (carecouch/records.py)
}
