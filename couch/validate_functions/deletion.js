// Deletion: clinical records are never deleted in the ordinary course of care (a wrong entry
// is corrected by a new record that amends it). Deleting a revision is how conflict resolution
// discards the losing branches, so only `carecouch:resolver` and server admins may delete,
// and a resolution record keeps every discarded body. For the same reason only they may
// write on top of a deleted revision (undoing a resolution restores what it discarded).

var common = require('lib/validate/common');
var refuse = common.refuse;

// Returns 'tombstone' (nothing more to check), 'restore' (a resolver or admin puts back a
// revision a resolution discarded, verbatim: only its form is checked, since its author and
// the rules of its time already passed when it was first written) or null (an ordinary write).
exports.check = function (ctx) {
  var privileged = ctx.isAdmin || ctx.isResolver;
  if (ctx.newDoc._deleted === true) {
    if (!privileged) {
      refuse('delete.forbidden', 'clinical records cannot be deleted; write a new record ' +
             'that amends this one');
    }
    return 'tombstone';
  }
  if (ctx.oldDeleted) {
    if (!privileged) {
      refuse('delete.restore_forbidden', 'this record was deleted by conflict resolution; ' +
             'only a resolver may restore it (carecouch conflicts undo)');
    }
    return 'restore';
  }
  return null;
};
