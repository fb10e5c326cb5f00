// Exclusive records (order sign-offs, controlled-drug checks): only one clinician may complete
// each one. CouchDB validation never sees a competing branch, so no validation function alone
// can stop two offline devices completing the same record; carecouch's lease protocol makes
// the race impossible where it can (docs/record-rules.md):
//
// - only the bridge (or a server admin) creates an exclusive record or changes its `lease`
//   ({holder, device, granted_at, expires_at, grant}); the bridge changes nothing else;
// - anyone else may change it only as the lease holder, on the leased device, leaving `lease`
//   exactly as it was, and completes it (a terminal status) with `completed_by` = themselves
//   and `completed_at` inside the lease;
// - terminal states are final;
// - an edit whose base revision the server no longer holds (null oldDoc: compaction removed
//   it, or the history is made up) is refused: the device must re-read the record and retry,
//   because the lease it acted on may have changed;
// - so is an edit whose parent the server does not hold although an older ancestor is stored:
//   the rules would otherwise judge it against that older revision. On a cluster this is a
//   copy that has not yet received the revision the edit was made on — possibly the
//   completion itself: judged against the revision before it, an edit of a signed order
//   would pass on that copy, be kept there although the cluster answered 403, and reach the
//   other copies by internal replication, which does not validate (docs/record-rules.md,
//   "On a cluster").

var common = require('lib/validate/common');
var refuse = common.refuse;

var LEASE_FIELDS = ['holder', 'device', 'granted_at', 'expires_at', 'grant'];
var REREAD = 'the server no longer holds the revision this edit is based on; re-read the ' +
             'record and retry';
var NOT_HERE = 'this server does not hold the revision this edit is based on (on a cluster: ' +
               'not yet); re-read the record and retry';

function checkLease(lease) {
  if (lease === undefined || lease === null) { return; }
  if (!common.isObject(lease)) {
    refuse('exclusive.bad_lease', 'lease must be an object');
  }
  for (var i = 0; i < LEASE_FIELDS.length; i++) {
    if (typeof lease[LEASE_FIELDS[i]] !== 'string' || !lease[LEASE_FIELDS[i]]) {
      refuse('exclusive.bad_lease', 'lease.' + LEASE_FIELDS[i] + ' is required');
    }
  }
  var granted = common.parseTime(lease.granted_at);
  var expires = common.parseTime(lease.expires_at);
  if (granted === null || expires === null || expires <= granted) {
    refuse('exclusive.bad_lease', 'lease times must be ISO 8601 UTC with granted_at before ' +
           'expires_at');
  }
}

function isTerminal(recordType, status) {
  return recordType.terminal.indexOf(status) !== -1;
}

function contentChanged(doc, old, registry) {
  var names = {}, name;
  for (name in doc) { names[name] = true; }
  for (name in old) { names[name] = true; }
  for (name in names) {
    if (name.charAt(0) === '_' || name === 'lease' || registry.envelope[name] ||
        name === registry.signature_field) { continue; }
    if (!common.deepEqual(doc[name], old[name])) { return name; }
  }
  return null;
}

function bridgeWrite(ctx) {
  var doc = ctx.newDoc, old = ctx.oldDoc, recordType = ctx.recordType;
  if (!old) {
    if (ctx.unanchored) {
      refuse('exclusive.reread', REREAD);
    }
    if (doc.status !== recordType.initial_status) {
      refuse('exclusive.bad_create', 'a new ' + doc.type + ' starts as ' +
             JSON.stringify(recordType.initial_status));
    }
    if (doc.completed_by !== undefined || doc.completed_at !== undefined) {
      refuse('exclusive.bad_create', 'a new ' + doc.type + ' cannot be completed');
    }
    return;
  }
  if (isTerminal(recordType, old.status)) {
    refuse('exclusive.terminal', 'this ' + doc.type + ' is ' + old.status + ', which is final');
  }
  if (!ctx.basedOnOldDoc) {
    refuse('exclusive.reread', NOT_HERE);
  }
  var changed = contentChanged(doc, old, ctx.registry);
  if (changed) {
    refuse('exclusive.bridge_content', 'the bridge may change only the lease, not ' + changed);
  }
}

function holderWrite(ctx) {
  var doc = ctx.newDoc, old = ctx.oldDoc, recordType = ctx.recordType, writer = ctx.writer;
  if (!old) {
    if (ctx.unanchored) {
      refuse('exclusive.reread', REREAD);
    }
    refuse('exclusive.create_forbidden', common.a(doc.type) + ' is created by the bridge, not ' +
           'by a device');
  }
  if (isTerminal(recordType, old.status)) {
    refuse('exclusive.terminal', 'this ' + doc.type + ' is ' + old.status + ', which is final');
  }
  var lease = old.lease;
  if (!common.isObject(lease) || lease.holder !== writer.user) {
    refuse('exclusive.not_holder', 'only the lease holder may change this ' + doc.type +
           (common.isObject(lease) ? ' (held by ' + lease.holder + ')' : ' (no lease: ask ' +
           'the bridge for one)'));
  }
  if (writer.device !== null && lease.device !== writer.device) {
    refuse('exclusive.not_holder', 'the lease is held on device ' + lease.device +
           ', not this one');
  }
  if (!common.deepEqual(doc.lease, lease)) {
    refuse('exclusive.lease_changed', 'the lease is written by the bridge only; leave it as ' +
           'it was');
  }
  if (!ctx.basedOnOldDoc) {
    refuse('exclusive.reread', NOT_HERE);
  }
  if (doc.status !== old.status) {
    var allowed = recordType.transitions[old.status] || [];
    if (allowed.indexOf(doc.status) === -1) {
      refuse('exclusive.bad_transition', doc.type + ' cannot go from ' + old.status + ' to ' +
             doc.status);
    }
  }
  if (isTerminal(recordType, doc.status)) {
    if (doc.completed_by !== writer.user) {
      refuse('exclusive.bad_completion', 'completed_by must be the lease holder (' +
             writer.user + ')');
    }
    var at = common.parseTime(doc.completed_at);
    if (at === null) {
      refuse('exclusive.bad_completion', 'completed_at (ISO 8601 UTC) is required to complete');
    }
    if (at < common.parseTime(lease.granted_at) || at > common.parseTime(lease.expires_at)) {
      refuse('exclusive.outside_lease', 'completed_at ' + doc.completed_at + ' is outside the ' +
             'lease (' + lease.granted_at + ' to ' + lease.expires_at + ')');
    }
  } else if (doc.completed_by !== undefined || doc.completed_at !== undefined) {
    refuse('exclusive.bad_completion', 'completed_by and completed_at belong to a terminal ' +
           'status only');
  }
}

exports.check = function (ctx) {
  checkLease(ctx.newDoc.lease);
  if (ctx.isAdmin) { return; }
  if (ctx.isBridge) {
    bridgeWrite(ctx);
  } else {
    holderWrite(ctx);
  }
};
