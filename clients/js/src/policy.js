// The bridge's signed snapshot enforced offline (mobile_stub/policy.py SnapshotPolicy and
// mobile_stub/leases.py LeaseBook.check_edit): which databases may sync, which record types
// this clinician may write in each caseload, no new work after the offline window, and for an
// exclusive record a verified lease token covering the edit. The server enforces the same
// again when the work syncs; the device checks so the clinician learns at once.

import {PolicyRefused, TokenRefused} from './errors.js';
import {formatUtc} from './clock.js';
import {LEASE_TYPE} from './tokens.js';

export const LEASE_FIELDS = ['holder', 'device', 'granted_at', 'expires_at', 'grant'];

export function grantedDatabase(snapshot, database) {
  const granted = snapshot.database(database);
  if (!granted) {
    throw new PolicyRefused(`the access policy does not grant ${database} to this session (log in again if that has changed)`);
  }
  return granted;
}

export function recordTypeOf(doc) {
  return String(doc.type || String(doc._id || '').split(':')[0]);
}

// Throws PolicyRefused unless the snapshot lets this clinician save `doc` in `database` at
// `nowMs` (the server-clock estimate).
export function checkEdit(snapshot, database, doc, nowMs) {
  if (nowMs >= snapshot.offlineUntil) {
    throw new PolicyRefused(`the offline window ended at ${formatUtc(snapshot.offlineUntil)}: connect and log in (or sync) before recording new work`);
  }
  const granted = grantedDatabase(snapshot, database);
  const type = recordTypeOf(doc);
  if (!granted.recordTypes.has(type)) {
    throw new PolicyRefused(`your access policy does not let you write '${type}' records in caseload ${granted.caseload} (you may write there: ${[...granted.recordTypes].sort().join(', ') || 'none'})`);
  }
  return granted;
}

// The claims of a lease token, checked to be this device's lease on `record` in `database`.
export async function verifyLease(pinned, token, database, record, deviceId) {
  if (!token) {
    throw new PolicyRefused(`you hold no lease on ${record}: claim one while online`);
  }
  const claims = await pinned.verify(token, LEASE_TYPE, `the lease token for ${record}`);
  if (claims.db !== database || claims.record !== record) {
    throw new TokenRefused(`the lease token held for ${record} is for another record`);
  }
  if (claims.device !== deviceId) {
    throw new TokenRefused(`the lease token for ${record} is for another device`);
  }
  return claims;
}

function sameLease(a, b) {
  return !!a && typeof a === 'object' && LEASE_FIELDS.every((k) => a[k] === b[k]) &&
    Object.keys(a).length === LEASE_FIELDS.length;
}

// An edit of an exclusive record: the server would refuse it, or no verified lease of this
// clinician covers it (LeaseBook.check_edit).
export function checkLeasedEdit(claims, doc, spec, user, nowMs) {
  const record = String(doc._id);
  const lease = Object.fromEntries(LEASE_FIELDS.map((k) => [k, claims[k]]));
  if (lease.holder !== user) {
    throw new PolicyRefused(`the lease on ${record} is held by ${lease.holder}, not ${user}`);
  }
  if (!sameLease(doc.lease, lease)) {
    throw new PolicyRefused(`${record}: the record's lease is not the one your token grants; sync (or renew the lease) so the device holds the leased revision`);
  }
  const granted = Date.parse(lease.granted_at), expires = Date.parse(lease.expires_at);
  // Only the end is checked against the clock: holding the token proves the grant is past,
  // whatever a clock estimate a fraction of a second off says.
  if (nowMs > expires) {
    throw new PolicyRefused(`your lease on ${record} ended at ${lease.expires_at} (now ${formatUtc(nowMs)}): renew it while online`);
  }
  if (!spec.terminal.includes(doc.status)) { return; }
  if (doc.completed_by !== user) {
    throw new PolicyRefused(`${record}: completed_by must be the lease holder (${user})`);
  }
  const completed = Date.parse(String(doc.completed_at));
  if (Number.isNaN(completed)) {
    throw new PolicyRefused(`${record}: completed_at must be an ISO 8601 UTC time`);
  }
  if (!(granted <= completed && completed <= expires)) {
    throw new PolicyRefused(`${record}: completed_at ${doc.completed_at} is outside the lease (${lease.granted_at} to ${lease.expires_at})`);
  }
}
