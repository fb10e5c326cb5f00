// The library's errors: each names what went wrong in one line a person can act on, and
// carries a stable `code` where the bridge or the record rules gave one. An app branches on
// the class (or `code`), and shows `message`.

export class CarecouchError extends Error {
  constructor(message, {code = '', status = 0, cause} = {}) {
    super(message, cause === undefined ? undefined : {cause});
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

// The bridge answered with its one error shape ({error, message, details}).
export class BridgeError extends CarecouchError {}
// `device.revoked`: the device must wipe itself.
export class DeviceRevoked extends BridgeError {}
// No answer from the bridge (offline, DNS, refused connection).
export class BridgeUnreachable extends CarecouchError {}
// A snapshot or lease token that does not verify against the pinned keys, or an answer that
// disagrees with its own signed snapshot.
export class TokenRefused extends CarecouchError {}
// The signed snapshot (or a lease) does not allow this, offline.
export class PolicyRefused extends CarecouchError {}
// The caseload's own record rules refuse the edit (`refusal`: {reason, code, problems}).
export class RecordRefused extends CarecouchError {
  constructor(refusal) {
    const problems = (refusal.problems || []).map((p) => `${p.code}: ${p.message}`).join('; ');
    super(`the record rules refuse this record (the server would too): ${problems || refusal.reason}`,
          {code: refusal.code});
    this.refusal = refusal;
  }
}
export class NotEnrolled extends CarecouchError {}
export class NotLoggedIn extends CarecouchError {}
export class WrongPassphrase extends CarecouchError {}
export class WeakPassphrase extends CarecouchError {}
// The local database holds a newer revision than the one edited (re-read and edit again).
export class LocalConflict extends CarecouchError {}
export class NotFound extends CarecouchError {}
// The replication cannot go on without a person: the credentials cannot be renewed
// ("log in again"), or the bridge is unreachable while CouchDB refuses the old ones.
export class SyncStopped extends CarecouchError {}
