// Envelope and schema: every clinical record says what it is (a known type), whom it is about
// (subject), who wrote this revision on which device and when (author, device, at, and the
// device's estimate of its offset from the server clock), and carries exactly the fields its
// type declares, with the declared JSON types. Why: a record that cannot be attributed, dated
// or read by the next clinician is a clinical risk, and unknown fields hide data from review.
//
// A field the registry marks `"derive": "<module>"` must hold what lib/validate/<module>
// computes from the record (an observation's NEWS2 from its vitals: news2.js).
//
// The signature (`signature_field`: {signer, key, alg, sig}) that proves which device wrote a
// revision is checked here for form only; whether it is right is for `carecouch audit verify`
// (carecouch/provenance.py), which holds the enrolled devices' keys: a wrong or missing one is
// reported, never refused, since no rule can check Ed25519 here.
//
// The problems of one record are independent of each other, so each is reported through
// common.problem: the server refuses at the first, a device collects them all and shows every
// problem at once (carecouch/js/rules_host.js).

var common = require('lib/validate/common');
var refuse = common.refuse;

var SUBJECT = /^[A-Za-z0-9._:-]{1,64}$/;
var ALWAYS_ALLOWED = ['_id', '_rev', '_revisions', '_attachments', '_deleted', '_conflicts',
                      '_deleted_conflicts', '_revs_info', '_local_seq'];

// Checks one value; reports its first problem and returns false, or returns true.
function checkValue(ctx, name, value, spec, where) {
  var type = spec.type || spec;
  var ok;
  if (type === 'string') {
    ok = typeof value === 'string' && value.length > 0;
  } else if (type === 'number') {
    ok = typeof value === 'number' && isFinite(value);
  } else if (type === 'integer') {
    ok = typeof value === 'number' && isFinite(value) && Math.floor(value) === value;
  } else if (type === 'boolean') {
    ok = typeof value === 'boolean';
  } else if (type === 'array') {
    ok = common.isArray(value);
  } else if (type === 'object') {
    ok = common.isObject(value);
  } else if (type === 'datetime') {
    ok = common.parseTime(value) !== null;
  }  // the registry is checked when it is assembled (carecouch/records.py): no other types
  if (!ok) {
    common.problem(ctx, 'schema.wrong_type', where + ' field ' + name + ' must be ' +
                   (type === 'datetime' ? 'an ISO 8601 UTC time (2026-01-31T09:30:00Z)' :
                    type === 'string' ? 'a non-empty string' : 'of type ' + type));
  } else if (spec.enum && spec.enum.indexOf(value) === -1) {
    common.problem(ctx, 'schema.not_allowed', 'field ' + name + ' must be one of ' +
                   JSON.stringify(spec.enum));
  } else if (typeof spec.min === 'number' && value < spec.min) {
    common.problem(ctx, 'schema.out_of_range', 'field ' + name + ' must be at least ' +
                   spec.min);
  } else if (typeof spec.max === 'number' && value > spec.max) {
    common.problem(ctx, 'schema.out_of_range', 'field ' + name + ' must be at most ' +
                   spec.max);
  } else {
    return true;
  }
  return false;
}

exports.check = function (ctx) {
  var doc = ctx.newDoc;
  var registry = ctx.registry;
  if (typeof doc.type !== 'string' ||
      !Object.prototype.hasOwnProperty.call(registry.types, doc.type)) {
    refuse('envelope.unknown_type', 'type ' + JSON.stringify(doc.type === undefined ? null :
           doc.type) + ' is not a record type of this caseload');
  }
  var recordType = registry.types[doc.type];
  ctx.recordType = recordType;

  // Append-only ids name their owner (append_only.js); ids of the other classes never do.
  // Append-only records stored before ids were bound have no owner: restoring or repairing
  // one must still pass here.
  var appendOnly = recordType['class'] === 'append-only';
  var parsed = common.parseRecordId(doc._id, doc.type);
  if (!parsed || (parsed.owner !== null && !appendOnly)) {
    common.problem(ctx, 'envelope.bad_id', 'the id of ' + common.a(doc.type) + ' must be "' +
                   doc.type + ':' + (appendOnly ? '<your account>:' : '') +
                   '<uuid made on the device>"');
  }

  var name;
  for (name in registry.envelope) {
    if (doc[name] === undefined || doc[name] === null) {
      common.problem(ctx, 'envelope.missing_field', 'every record needs ' + name);
    } else if (checkValue(ctx, name, doc[name], registry.envelope[name], 'envelope') &&
               name === 'subject' && !SUBJECT.test(doc.subject)) {
      common.problem(ctx, 'envelope.bad_subject', 'subject must be a patient id (letters, ' +
                     'digits, . _ : -)');
    }
  }

  var fields = recordType.fields;
  var extra = {};
  if (recordType['class'] === 'exclusive') { extra = registry.exclusive_fields; }
  if (recordType['class'] === 'mergeable') {
    extra = {};
    extra[registry.mergeable_metadata_field] = 'object';
  }
  var signature = registry.signature_field;
  if (signature && doc[signature] !== undefined) {
    var sig = doc[signature];
    if (!common.isObject(sig) || typeof sig.signer !== 'string' || typeof sig.key !== 'string' ||
        sig.alg !== 'Ed25519' || typeof sig.sig !== 'string') {
      common.problem(ctx, 'schema.bad_signature', signature + ' must be {"signer", "key", ' +
                     '"alg": "Ed25519", "sig"}');
    }
  }
  var valid = {};  // fields whose value passed: only those can be derived from
  for (name in doc) {
    if (!Object.prototype.hasOwnProperty.call(doc, name)) { continue; }
    if (ALWAYS_ALLOWED.indexOf(name) !== -1 || registry.envelope[name] ||
        name === signature) { continue; }
    if (fields[name]) {
      if (doc[name] !== null) {
        valid[name] = checkValue(ctx, name, doc[name], fields[name], doc.type);
      } else if (fields[name].required) {
        common.problem(ctx, 'schema.missing_field', common.a(doc.type) + ' needs ' + name);
      }
    } else if (extra[name]) {
      if (doc[name] !== null) { checkValue(ctx, name, doc[name], extra[name], doc.type); }
    } else {
      common.problem(ctx, 'schema.unknown_field', common.a(doc.type) + ' has no field ' + name);
    }
  }
  var derivable = true;
  for (name in fields) {
    if (fields[name].required && doc[name] === undefined) {
      common.problem(ctx, 'schema.missing_field', common.a(doc.type) + ' needs ' + name);
    }
    if (fields[name].required && !valid[name]) { derivable = false; }
  }
  for (name in fields) {
    if (fields[name].derive && derivable) {
      var expected = require('lib/validate/' + fields[name].derive).derive(doc);
      if (doc[name] !== expected) {
        common.problem(ctx, 'schema.derived_mismatch', 'field ' + name + ' must be ' +
                       expected + ', the ' + fields[name].derive + ' of this ' + doc.type +
                       ' (not ' + JSON.stringify(doc[name]) + ')');
      }
    }
  }
  // What a record is and whom it is about never change (a mistaken patient is corrected by a
  // new record for the right one, so the wrong chart keeps its trail).
  var old = ctx.oldDoc;
  if (old && !ctx.isAdmin && (old.type !== doc.type || old.subject !== doc.subject)) {
    common.problem(ctx, 'envelope.identity_changed', 'type and subject of a record cannot ' +
                   'change');
  }
  common.endProblems(ctx);
};
