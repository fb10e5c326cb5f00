// Shared by every rule file: the one helper that refuses a write, the writer's identity, and
// small ES5 utilities. Why one helper: every refusal must have the same shape,
// {forbidden: "<code>: <message>"}, with a stable code that devices, tests and the safety
// case (docs/record-rules.md) can rely on.
//
// ES5 only: CouchDB 3.x runs validation in SpiderMonkey (1.8.5 up to 91) or QuickJS.

var registry = require('lib/record_types');

var TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;
var SESSION_SEPARATOR = '~';
// Record ids: "<type>:<suffix>", or "<type>:<owner>:<suffix>" where the owner is the CouchDB
// account that created the record (append-only records: see append_only.js). The owner is a
// user name or a device session "<user>~<device>" (carecouch/ids.py), so it holds no ":".
var ID_SUFFIX = /^[A-Za-z0-9-]{8,64}$/;
var ID_OWNER = /^[A-Za-z0-9][A-Za-z0-9._@+~-]{0,199}$/;

function refuse(code, message) {
  throw({forbidden: code + ': ' + message});
}

// A problem of one record that does not stop the others being found (envelope.js): on the
// server it refuses at once, as every refusal does; on a device that runs these rules before
// saving (carecouch/js/rules_host.js sets carecouchCollectProblems) it is collected, and
// endProblems refuses with the first and carries them all, so the clinician sees every
// missing field at once. The server's answer is the same either way: the first problem.
function problem(ctx, code, message) {
  if (!ctx.problems) { refuse(code, message); }
  ctx.problems.push({code: code, message: message});
}

function endProblems(ctx) {
  if (ctx.problems && ctx.problems.length) {
    var first = ctx.problems[0];
    throw({forbidden: first.code + ': ' + first.message, problems: ctx.problems});
  }
}

function hasRole(userCtx, role) {
  return !!userCtx && userCtx.roles && userCtx.roles.indexOf(role) !== -1;
}

// A role granted for one caseload holds in that caseload only. CouchDB roles belong to the
// user, not to a database, so the bridge writes the caseload into the role
// ("clinical:nurse@north-1", carecouch/ids.py scoped_role) and the rules read the database
// they run in from userCtx.db (couch_util:json_user_ctx/1: the database's name, on a cluster
// too). A role without "@" holds everywhere: human accounts made by IT, and device
// credentials issued before roles were scoped, until they expire.
var SCOPE_SEPARATOR = '@';
var CASELOAD_DB_PREFIX = 'caseload_';

function caseloadOf(userCtx) {
  var db = userCtx && typeof userCtx.db === 'string' ? userCtx.db : '';
  return db.indexOf(CASELOAD_DB_PREFIX) === 0 ? db.substring(CASELOAD_DB_PREFIX.length) : null;
}

function hasRoleHere(userCtx, role) {
  var caseload = caseloadOf(userCtx);
  return hasRole(userCtx, role) ||
    (caseload !== null && hasRole(userCtx, role + SCOPE_SEPARATOR + caseload));
}

// A device session's CouchDB user is named "<user>~<device>" by the bridge, so that one
// clinician on two devices holds two revocable credentials; the clinician is the part before
// the last "~". Any other name is a person without a device binding.
function writerOf(userCtx) {
  var name = (userCtx && userCtx.name) || null;
  var at = name ? name.lastIndexOf(SESSION_SEPARATOR) : -1;
  if (at > 0 && at < name.length - 1) {
    return {name: name, user: name.substring(0, at), device: name.substring(at + 1)};
  }
  return {name: name, user: name, device: null};
}

// {owner, suffix} of a record id of `type` (owner null for "<type>:<suffix>"), or null when
// the id has neither form.
function parseRecordId(id, type) {
  var prefix = type + ':';
  if (typeof id !== 'string' || id.indexOf(prefix) !== 0) { return null; }
  var rest = id.substring(prefix.length);
  var at = rest.lastIndexOf(':');
  var owner = at === -1 ? null : rest.substring(0, at);
  var suffix = rest.substring(at + 1);
  if (!ID_SUFFIX.test(suffix) || (owner !== null && !ID_OWNER.test(owner))) { return null; }
  return {owner: owner, suffix: suffix};
}

// ISO 8601 UTC ("2026-11-22T09:30:00.000Z") to milliseconds, or null. Parsed by hand so that
// every engine agrees (Date.parse differs on fractional digits across engines).
function parseTime(value) {
  if (typeof value !== 'string') { return null; }
  var m = TIME.exec(value);
  if (!m) { return null; }
  var year = +m[1], month = +m[2], day = +m[3], hour = +m[4], minute = +m[5], second = +m[6];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return null;
  }
  var ms = Date.UTC(year, month - 1, day, hour, minute, second,
                    m[7] ? +(m[7] + '00').substring(0, 3) : 0);
  if (new Date(ms).getUTCDate() !== day) { return null; }  // 31 February and the like
  return ms;
}

// "an observation", "a task": messages are read by clinicians.
function a(word) {
  return ('aeiou'.indexOf(String(word).charAt(0)) === -1 ? 'a ' : 'an ') + word;
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !isArray(value);
}

function isArray(value) {
  return Object.prototype.toString.call(value) === '[object Array]';
}

function deepEqual(a, b) {
  if (a === b) { return true; }
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') {
    return false;
  }
  if (isArray(a) !== isArray(b)) { return false; }
  var ka = Object.keys(a), kb = Object.keys(b), i;
  if (ka.length !== kb.length) { return false; }
  for (i = 0; i < ka.length; i++) {
    if (!Object.prototype.hasOwnProperty.call(b, ka[i]) || !deepEqual(a[ka[i]], b[ka[i]])) {
      return false;
    }
  }
  return true;
}

// Whether the edit is based on `oldDoc` itself. An ordinary write names the stored leaf it
// edits (newDoc._rev is oldDoc's revision); a replicated write carries its history, whose
// second entry is its parent. When the parent is not oldDoc, the server holds no body for the
// revisions between them: a device's own unsynced edits, or, on a cluster, a revision the
// other copies hold and this copy has not received yet (docs/record-rules.md, "On a
// cluster"). Without a history to compare (or without oldDoc) there is nothing to tell.
function basedOnOldDoc(newDoc, oldDoc) {
  var revisions = newDoc._revisions;
  if (!oldDoc || typeof oldDoc._rev !== 'string' || !revisions || !isArray(revisions.ids)) {
    return true;
  }
  var dash = oldDoc._rev.indexOf('-');
  var position = +oldDoc._rev.substring(0, dash), id = oldDoc._rev.substring(dash + 1);
  if (revisions.start === position && revisions.ids[0] === id) { return true; }
  return revisions.start === position + 1 && revisions.ids[1] === id;
}

// Everything a rule needs to know about one write.
function context(newDoc, oldDoc, userCtx, secObj) {
  var roles = registry.roles;
  var isAdmin = hasRole(userCtx, '_admin');
  var live = oldDoc && !oldDoc._deleted ? oldDoc : null;
  var revisions = newDoc._revisions;
  return {
    newDoc: newDoc,
    oldDoc: live,
    oldDeleted: !!(oldDoc && oldDoc._deleted),
    userCtx: userCtx,
    secObj: secObj,
    writer: writerOf(userCtx),
    isAdmin: isAdmin,
    isBridge: hasRole(userCtx, roles.bridge),
    isResolver: hasRoleHere(userCtx, roles.resolver),
    // No stored ancestor although the revision is not a first one: the server no longer has
    // (or never had) the revision this edit was made on: compaction, or a made-up history.
    unanchored: !oldDoc && !!revisions && revisions.start > 1,
    // False when the nearest stored ancestor is older than the edit's parent (see above).
    basedOnOldDoc: basedOnOldDoc(newDoc, live),
    registry: registry,
    recordType: null,
    /* global carecouchCollectProblems */
    problems: typeof carecouchCollectProblems === 'boolean' && carecouchCollectProblems ? [] :
      null
  };
}

exports.refuse = refuse;
exports.problem = problem;
exports.endProblems = endProblems;
exports.a = a;
exports.hasRole = hasRole;
exports.hasRoleHere = hasRoleHere;
exports.writerOf = writerOf;
exports.parseRecordId = parseRecordId;
exports.parseTime = parseTime;
exports.isObject = isObject;
exports.isArray = isArray;
exports.deepEqual = deepEqual;
exports.context = context;
