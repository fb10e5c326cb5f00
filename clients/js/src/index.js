// carecouch for PouchDB apps (docs/js-device.md): the device library. `Device` is what an app
// uses; the rest is exported for tests (tests/vectors/) and for apps that need a piece.

export {Device, APP_VERSION, MAIN_DDOC, DEVICE_FILTER, windowSlid} from './device.js';
export * from './errors.js';
export {BridgeClient} from './bridge_client.js';
export {canonicalRequest, requestHeaders} from './request_signing.js';
export {PinnedKeys, verifyToken, SNAPSHOT_TYPE, LEASE_TYPE} from './tokens.js';
export {verifySnapshot, snapshotFromClaims} from './snapshot.js';
export {signingInput, signRecord, verifyRecord, signedContent} from './provenance.js';
export {canonicalJson} from './jcs.js';
export {newRecordId, newRev, stampChanges, splitSessionName, sameJson} from './records.js';
export {RulesEngine} from './rules.js';
export {urgentSelector} from './working_set.js';
export {checkPassphrase} from './passphrase.js';
export {ClockEstimator, formatUtc} from './clock.js';
export {keyId, publicKeyOf, sign, verify} from './keys.js';
export {DeviceOfflineError} from './transport.js';
export * as encoding from './encoding.js';
