// Append-only records (observations, administrations, consent events, notes, resolutions):
// what a clinician recorded stays exactly as recorded. A record is created once; any later
// revision by a non-admin is refused, including one that arrives by replication with no stored
// ancestor (its revision number gives it away). Corrections are new records whose `amends`
// names the record they correct.
//
// The id names its owner, "<type>:<account>:<uuid>" (the CouchDB account that creates it: a
// device session "<user>~<device>", or a user), and only the owner may write a revision of
// it. Why: validation compares a replicated revision only with its stored ancestor, so a
// first revision pushed with `new_edits=false` on someone else's id has none, passes as a
// creation, sits beside the real record and, if its revision id sorts higher, becomes the
// winner every reader sees: another member replaced a colleague's vitals that way. With the
// owner in the id, no account but the owner can write any revision of it, by construction.
// Admins repair (they are exempt); resolvers only delete and restore (deletion.js).

var common = require('lib/validate/common');
var refuse = common.refuse;

exports.check = function (ctx) {
  var doc = ctx.newDoc;
  if (ctx.isAdmin) { return; }
  if (ctx.oldDoc || ctx.unanchored) {
    refuse('append_only.immutable', common.a(doc.type) + ' cannot be changed once recorded; ' +
           'write a new ' + doc.type + ' with "amends": "' + doc._id + '"');
  }
  var owner = common.parseRecordId(doc._id, doc.type).owner;
  if (owner !== ctx.writer.name) {
    refuse('append_only.not_owner', owner === null ?
           'the id of a new ' + doc.type + ' must name the account writing it: "' +
           doc.type + ':' + ctx.writer.name + ':<uuid>"' :
           'this ' + doc.type + ' belongs to ' + owner + '; only its owner writes it');
  }
  if (doc.amends !== undefined) {
    if (String(doc.amends).indexOf(doc.type + ':') !== 0 || doc.amends === doc._id) {
      refuse('append_only.bad_amends', 'amends must name another ' + doc.type +
             ' (its id starts with "' + doc.type + ':")');
    }
  }
};
