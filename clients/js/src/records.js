// Records as the rules read them (docs/record-rules.md); the Python twin of each function is
// named beside it, and tests/vectors/revision_stamps.json pins what both compute.
//
// - ids: `<type>:<account>:<uuid>` for append-only types (the id names the CouchDB account
//   writing it, so no other account can put a revision beside it), `<type>:<uuid>` otherwise
//   (carecouch/records.py `new_record_id`);
// - `changed` stamps of a mergeable record (`stamp_changes`);
// - revision ids: next position, md5 of JCS([parent, deleted, body])
//   (carecouch/revs.py `new_rev`): deterministic, so a retried edit is the same revision.

import {CarecouchError} from './errors.js';
import {utf8} from './encoding.js';
import {canonicalJson} from './jcs.js';
import {md5Hex} from './md5.js';

const RECORD_OWNER = /^[A-Za-z0-9][A-Za-z0-9._@+~-]{0,199}$/;
const META_FIELDS = new Set(['_id', '_rev', '_deleted', '_revisions', '_conflicts',
                             '_deleted_conflicts', '_revs_info', '_local_seq']);

export function newRecordId(registry, recordType, owner, uuid = globalThis.crypto.randomUUID()) {
  const spec = registry.types[recordType];
  if (!spec) {
    throw new CarecouchError(`unknown record type ${JSON.stringify(recordType)} (known: ${Object.keys(registry.types).sort().join(', ')})`);
  }
  if (spec.class !== 'append-only') { return `${recordType}:${uuid}`; }
  if (!RECORD_OWNER.test(owner)) {
    throw new CarecouchError(`${JSON.stringify(owner)} cannot own a record: not a CouchDB account name carecouch issues`);
  }
  return `${recordType}:${owner}:${uuid}`;
}

// `alice~tablet-7` -> {user: 'alice', device: 'tablet-7'}; null for any other name
// (carecouch/ids.py split_session_name: the rules split on the last "~").
export function splitSessionName(name) {
  const at = name.lastIndexOf('~');
  if (at <= 0 || at === name.length - 1) { return null; }
  return {user: name.slice(0, at), device: name.slice(at + 1)};
}

// Equality as the rules' deepEqual sees JSON values (carecouch/records.py same_json).
export function sameJson(a, b) {
  if (a === b) { return true; }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) { return false; }
  if (Array.isArray(a) !== Array.isArray(b)) { return false; }
  if (Array.isArray(a)) { return a.length === b.length && a.every((x, i) => sameJson(x, b[i])); }
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJson(a[k], b[k]));
}

const ABSENT = Symbol('absent');

// The `changed` stamps a new revision of a mergeable record must carry: the base revision's
// stamps as they were, and {by, at} on every field whose value differs from the base (added,
// changed or removed; on a new record, every field). null for a record that is not mergeable.
export function stampChanges(registry, doc, base, by, at) {
  const spec = registry.types[String(doc.type)];
  if (!spec || spec.class !== 'mergeable') { return null; }
  const meta = registry.mergeable_metadata_field;
  const signature = registry.signature_field || 'signature';
  const stamps = base ? {...(base[meta] || {})} : {};
  const names = new Set();
  for (const source of [doc, base || {}]) {
    for (const name of Object.keys(source)) {
      if (!name.startsWith('_') && name !== meta && name !== signature &&
          !Object.prototype.hasOwnProperty.call(registry.envelope, name)) {
        names.add(name);
      }
    }
  }
  for (const name of [...names].sort()) {
    const now = Object.prototype.hasOwnProperty.call(doc, name) ? doc[name] : ABSENT;
    const old = base && Object.prototype.hasOwnProperty.call(base, name) ? base[name] : ABSENT;
    const same = now === ABSENT || old === ABSENT ? now === old : sameJson(now, old);
    if (!same) { stamps[name] = {by, at}; }
  }
  return stamps;
}

export function bodyOf(doc) {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !META_FIELDS.has(k)));
}

export function revPos(rev) {
  const match = /^([1-9][0-9]*)-(.+)$/.exec(rev || '');
  if (!match) { throw new CarecouchError(`not a revision: ${JSON.stringify(rev)}`); }
  return Number(match[1]);
}

export function newRev(parent, body, deleted) {
  const pos = parent ? revPos(parent) + 1 : 1;
  return `${pos}-${md5Hex(utf8(canonicalJson([parent, deleted, body])))}`;
}

// Newest-first full revisions -> {start, ids} (carecouch/revs.py revisions_object).
export function revisionsObject(path) {
  return {start: revPos(path[0]), ids: path.map((rev) => rev.slice(rev.indexOf('-') + 1))};
}

// The stable code of a rule's refusal "<code>: <message>" ('' for another form).
export function refusalCode(reason) {
  const at = String(reason).indexOf(': ');
  const head = at === -1 ? '' : String(reason).slice(0, at);
  return head && !head.includes(' ') ? head : '';
}
