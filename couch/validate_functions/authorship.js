// Authorship and roles: a revision is signed by the person who wrote it. `author` must be the
// CouchDB user writing it (for a device session "<user>~<device>", the user part, and `device`
// must be that device), and the writer must hold a role the record type admits
// (`clinical:<role>`, or `carecouch:resolver` for resolution records). Why: the clinical
// record must say truthfully who did what, and only clinicians trained for a record type may
// write it (an HCA does not record medication administrations).
//
// Exempt: server admins (repairs) and, for exclusive records only, the bridge, which creates
// them and writes leases on the clinicians' behalf. A resolver signs what they write but needs
// no clinical role to write on an existing record: merging a care plan's branches is review
// work, not care.
//
// Narrowed sessions: the bridge's policy may let a clinician write fewer record types than
// their clinical roles admit (an HCA on a school caseload writes observations only). Such a
// session carries the marker role `carecouch:writes-restricted` and one
// `carecouch:writes:<type>` per type granted; any other type is refused, so the narrowing holds
// on the server and not only on the device.
//
// Every role is read for this caseload (common.hasRoleHere): a nurse who is a prescriber on
// another team's caseload is a nurse here, and a narrowing granted for one caseload narrows
// that caseload only.

var common = require('lib/validate/common');
var refuse = common.refuse;

var RESTRICTED = 'carecouch:writes-restricted';
var WRITES_PREFIX = 'carecouch:writes:';

exports.check = function (ctx) {
  var doc = ctx.newDoc;
  if (ctx.isAdmin) { return; }
  if (ctx.isBridge && ctx.recordType['class'] === 'exclusive') { return; }
  var writer = ctx.writer;
  if (doc.author !== writer.user) {
    refuse('auth.author_mismatch', 'author must be the user writing this revision (' +
           writer.user + '), not ' + JSON.stringify(doc.author));
  }
  if (writer.device !== null && doc.device !== writer.device) {
    refuse('auth.device_mismatch', 'device must be the device of this session (' +
           writer.device + '), not ' + JSON.stringify(doc.device));
  }
  if (ctx.isResolver && ctx.oldDoc) { return; }
  var writers = ctx.recordType.writers;
  var admitted = false;
  for (var i = 0; i < writers.length && !admitted; i++) {
    admitted = common.hasRoleHere(ctx.userCtx, writers[i]);
  }
  if (!admitted) {
    refuse('auth.role_required', 'writing ' + common.a(doc.type) + ' needs one of the roles ' +
           writers.join(', '));
  }
  if (common.hasRoleHere(ctx.userCtx, RESTRICTED) &&
      !common.hasRoleHere(ctx.userCtx, WRITES_PREFIX + doc.type)) {
    refuse('auth.type_not_granted', 'your access policy does not let this device session ' +
           'write ' + common.a(doc.type) + ' (ask IT to grant the record type)');
  }
};
