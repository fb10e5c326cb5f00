// Mergeable records (care plans, task lists): members with a writing role may update them, and
// every field says who changed it last and when, in `changed[<field>] = {by, at}`. Why: when
// two devices edit the same care plan offline, conflict resolution merges field by field
// using this metadata, deterministically, so the metadata must be truthful: a revision that
// changes a field must stamp it with the writer's name, and nobody may rewrite the stamp of a
// field they did not change.
//
// Limit: when the server no longer holds the revision an edit was based on (compaction, or a
// record created and edited offline before its first sync), unchanged fields cannot be told
// from changed ones; stamps are then only checked for form, and the revision is still
// attributed to its author.

var common = require('lib/validate/common');
var refuse = common.refuse;

var ENVELOPE_SKIP = ['_id', '_rev', '_revisions', '_attachments', '_deleted', '_conflicts',
                     '_deleted_conflicts'];

function recordFields(doc, registry) {
  var names = [];
  for (var name in doc) {
    if (Object.prototype.hasOwnProperty.call(doc, name) &&
        ENVELOPE_SKIP.indexOf(name) === -1 && !registry.envelope[name] &&
        name !== registry.mergeable_metadata_field && name !== registry.signature_field) {
      names.push(name);
    }
  }
  return names;
}

function checkStamp(field, stamp) {
  if (!common.isObject(stamp) || typeof stamp.by !== 'string' || !stamp.by ||
      common.parseTime(stamp.at) === null) {
    refuse('mergeable.bad_stamp', 'changed.' + field + ' must be {"by": <user>, "at": ' +
           '<ISO 8601 UTC time>}');
  }
}

exports.check = function (ctx) {
  var doc = ctx.newDoc;
  var registry = ctx.registry;
  var metaField = registry.mergeable_metadata_field;
  var meta = doc[metaField];
  if (!common.isObject(meta)) {
    refuse('mergeable.missing_stamps', common.a(doc.type) + ' needs "' + metaField +
           '": {<field>: {"by", "at"}} for its fields');
  }
  var field, i;
  for (field in meta) {
    if (!Object.prototype.hasOwnProperty.call(meta, field)) { continue; }
    if (!ctx.recordType.fields[field]) {
      refuse('mergeable.bad_stamp', 'changed.' + field + ' names no field of a ' + doc.type);
    }
    checkStamp(field, meta[field]);
  }
  var present = recordFields(doc, registry);
  for (i = 0; i < present.length; i++) {
    if (!meta[present[i]]) {
      refuse('mergeable.unstamped_change', 'field ' + present[i] + ' has no entry in ' +
             metaField);
    }
  }
  if (ctx.isAdmin || ctx.isResolver) { return; }  // merges carry other writers' stamps
  var writer = ctx.writer.user;
  var old = ctx.oldDoc;
  if (!old) {
    if (ctx.unanchored) { return; }  // see "Limit" above
    for (field in meta) {
      if (Object.prototype.hasOwnProperty.call(meta, field) && meta[field].by !== writer) {
        refuse('mergeable.forged_stamp', 'a new ' + doc.type + ' is stamped by its author ' +
               'only; changed.' + field + '.by is ' + JSON.stringify(meta[field].by));
      }
    }
    return;
  }
  var oldMeta = common.isObject(old[metaField]) ? old[metaField] : {};
  var names = {};
  var lists = [present, recordFields(old, registry), Object.keys(meta), Object.keys(oldMeta)];
  for (i = 0; i < lists.length; i++) {
    for (var j = 0; j < lists[i].length; j++) { names[lists[i][j]] = true; }
  }
  for (field in names) {
    var valueChanged = !common.deepEqual(doc[field], old[field]);
    var stampChanged = !common.deepEqual(meta[field], oldMeta[field]);
    if (valueChanged && !stampChanged) {
      refuse('mergeable.unstamped_change', 'field ' + field + ' changed; stamp ' + metaField +
             '.' + field + ' with your name and the time');
    }
    if (stampChanged && !valueChanged) {
      refuse('mergeable.forged_stamp', metaField + '.' + field + ' changed but ' + field +
             ' did not; only a change is stamped');
    }
    if (stampChanged && (!meta[field] || meta[field].by !== writer)) {
      refuse('mergeable.forged_stamp', metaField + '.' + field + ' may only be stamped by ' +
             'the writer of the change (' + writer + ')');
    }
  }
};
