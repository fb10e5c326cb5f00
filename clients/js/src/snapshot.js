// The policy snapshot as the device trusts it: verified against the pinned bridge keys every
// time it is read, for this device only. The claims are defined once, in carecouch/snapshot.py
// (`Snapshot.to_claims`); this reads them back the way `Snapshot.from_claims` does: roles and
// record types hold per database (a snapshot from before they were scoped says them only at
// the top, where they held everywhere).

import {TokenRefused} from './errors.js';
import {SNAPSHOT_TYPE} from './tokens.js';

function text(claims, name) {
  const value = claims[name];
  if (typeof value !== 'string' || value === '') { throw new TypeError(`${name} must be text`); }
  return value;
}

function time(claims, name) {
  const ms = Date.parse(text(claims, name));
  if (Number.isNaN(ms)) { throw new TypeError(`${name} must be an ISO 8601 time`); }
  return ms;
}

function list(claims, name) {
  const value = claims[name] === undefined ? [] : claims[name];
  if (!Array.isArray(value)) { throw new TypeError(`${name} must be a list`); }
  return value;
}

function seconds(claims, name) {
  const value = claims[name];
  if (value === undefined || value === null) { return null; }
  if (!Number.isInteger(value) || value < 0) { throw new TypeError(`${name} must be a number of seconds`); }
  return value;
}

export function snapshotFromClaims(claims) {
  const databases = list(claims, 'databases').map((db) => {
    const scope = db.record_types !== undefined ? db : claims;
    return {
      caseload: text(db, 'caseload'), name: text(db, 'name'), filter: db.filter || {},
      clinicalRoles: list(scope, 'clinical_roles').map(String),
      recordTypes: new Set(list(scope, 'record_types').map(String)),
      resolver: !!db.resolver, breakGlass: !!db.break_glass,
      timeWindowSeconds: seconds(db, 'time_window_seconds'),
      attachmentRetentionSeconds: seconds(db, 'attachment_retention_seconds')
    };
  });
  return {
    user: text(claims, 'sub'), device: text(claims, 'device'), username: text(claims, 'username'),
    issuedAt: time(claims, 'issued_at'), credentialExpiresAt: time(claims, 'credential_expires_at'),
    offlineUntil: time(claims, 'offline_until'), policyVersion: String(claims.policy_version || ''),
    leaseLifetimeSeconds: Number(claims.lease_lifetime_seconds || 0), databases,
    breakGlass: claims.break_glass && typeof claims.break_glass === 'object' ? claims.break_glass : null,
    database(name) { return databases.find((db) => db.name === name) || null; }
  };
}

export async function verifySnapshot(token, pinned, deviceId) {
  const claims = await pinned.verify(token, SNAPSHOT_TYPE, 'the policy snapshot');
  let snapshot;
  try {
    snapshot = snapshotFromClaims(claims);
  } catch (err) {
    throw new TokenRefused(`the policy snapshot is malformed (${err.message})`);
  }
  if (snapshot.device !== deviceId) {
    throw new TokenRefused(`the policy snapshot is for device ${snapshot.device}, not this one`);
  }
  return snapshot;
}
