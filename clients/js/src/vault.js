// The device's secrets, sealed (docs/device.md, "Secrets in the store"): its Ed25519 seed,
// the pinned bridge keys, the identity token, the CouchDB credentials, the signed snapshot,
// lease tokens, and what the device knows of each edit (a refusal's reason can quote clinical
// content). One small local PouchDB database that never replicates; every value is sealed
// under the data key and bound to its name. In the clear: the keyring (salt, KDF cost, the
// wrapped data key), the bridge URL and the device id (no patient data, needed before unlock).

import {createKeyring, openKeyring} from './crypto_box.js';
import {NotFound} from './errors.js';

const KEYRING = 'keyring';
const CLEAR = 'clear';

export class Vault {
  constructor(db, box) {
    this.db = db;
    this.box = box;
  }

  static async exists(db) {
    return (await getOrNull(db, KEYRING)) !== null;
  }

  static async create(db, storeId, passphrase, options) {
    const {keyring, box} = await createKeyring(storeId, passphrase, options);
    await db.put({_id: KEYRING, ...keyring});
    await db.put({_id: CLEAR, values: {device_id: storeId}});
    return new Vault(db, box);
  }

  static async open(db, passphrase) {
    const keyring = await getOrNull(db, KEYRING);
    if (keyring === null) { throw new NotFound('no device store here (create one first)'); }
    return new Vault(db, await openKeyring(keyring, passphrase));
  }

  async get(name) {
    const doc = await getOrNull(this.db, `secret:${name}`);
    return doc === null ? null : this.box.openJson(`carecouch-secret-v1\n${name}`, doc.sealed);
  }

  async put(name, value) {
    const id = `secret:${name}`;
    const old = await getOrNull(this.db, id);
    if (value === null || value === undefined) {
      if (old) { await this.db.remove(old); }
      return;
    }
    const sealed = await this.box.sealJson(`carecouch-secret-v1\n${name}`, value);
    await this.db.put({_id: id, _rev: old ? old._rev : undefined, sealed});
  }

  async names(prefix) {
    const rows = (await this.db.allDocs({startkey: `secret:${prefix}`, endkey: `secret:${prefix}\ufff0`})).rows;
    return rows.map((row) => row.id.slice('secret:'.length));
  }

  // What is kept in the clear (device id, bridge URL).
  async clear() {
    return ((await getOrNull(this.db, CLEAR)) || {values: {}}).values;
  }

  async setClear(name, value) {
    const doc = (await getOrNull(this.db, CLEAR)) || {_id: CLEAR, values: {}};
    doc.values = {...doc.values, [name]: value};
    await this.db.put(doc);
  }
}

export async function getOrNull(db, id, options = {}) {
  try {
    return await db.get(id, options);
  } catch (err) {
    if (err.status === 404) { return null; }
    throw err;
  }
}
