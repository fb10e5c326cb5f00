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

var common = require('lib/validate/common');
var refuse = common.refuse;

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
  for (var i = 0; i < writers.length; i++) {
    if (common.hasRole(ctx.userCtx, writers[i])) { return; }
  }
  refuse('auth.role_required', 'writing a ' + doc.type + ' needs one of the roles ' +
         writers.join(', '));
};
