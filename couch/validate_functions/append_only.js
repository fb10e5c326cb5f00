// Append-only records (observations, administrations, consent events, notes, resolutions):
// what a clinician recorded stays exactly as recorded. A record is created once; any later
// revision by a non-admin is refused, including one that arrives by replication with no stored
// ancestor (its revision number gives it away). Corrections are new records whose `amends`
// names the record they correct.

var common = require('lib/validate/common');
var refuse = common.refuse;

exports.check = function (ctx) {
  var doc = ctx.newDoc;
  if (ctx.isAdmin) { return; }
  if (ctx.oldDoc || ctx.unanchored) {
    refuse('append_only.immutable', common.a(doc.type) + ' cannot be changed once recorded; ' +
           'write a new ' + doc.type + ' with "amends": "' + doc._id + '"');
  }
  if (doc.amends !== undefined) {
    if (String(doc.amends).indexOf(doc.type + ':') !== 0 || doc.amends === doc._id) {
      refuse('append_only.bad_amends', 'amends must name another ' + doc.type +
             ' (its id starts with "' + doc.type + ':")');
    }
  }
};
