// A local PouchDB database whose every document body is sealed (AES-256-GCM under the device
// store's data key), for IndexedDB in a browser and LevelDB in Node. transform-pouch (the
// PouchDB community's plugin for exactly this) seals on every write path (put, bulkDocs,
// replication) and opens on every read path (get, allDocs, bulkGet, changes), so PouchDB's
// replicator works unchanged over ciphertext.
//
// What the storage holds in the clear is what PouchDB needs to replicate: document ids
// (carecouch ids carry no patient data), revision ids and trees, deletion flags, sequences and
// the `_local` checkpoints. A stored body is {sealed}: the JSON of the revision's content,
// attachments included, with their data, so PouchDB's own attachment store stays empty and no
// photo reaches it unencrypted. The associated data binds each body to database, id and
// revision: a body copied to another record, or to another revision of the same record,
// fails to open instead of showing the wrong content.
//
// Every write must therefore name the final revision: replication's writes do
// (new_edits: false, with `_revisions`), and so do the library's own (records.js newRev).
// A plain `put` that lets PouchDB choose the revision is refused.

import transform from 'transform-pouch';

import {CarecouchError} from './errors.js';
import {fromBase64, toBase64} from './encoding.js';
import {attachmentDigest} from './provenance.js';

const INTERNAL = ['_id', '_rev', '_revisions', '_deleted'];
let installed = new WeakSet();

function aad(name, doc) {
  return `carecouch-doc-v1\n${name}\n${doc._id}\n${doc._rev}`;
}

async function attachmentBase64(data) {
  if (typeof data === 'string') { return data; }
  if (typeof Blob !== 'undefined' && data instanceof Blob) { return toBase64(new Uint8Array(await data.arrayBuffer())); }
  if (data instanceof Uint8Array) { return toBase64(data); }  // a Node Buffer is one
  throw new CarecouchError('an attachment without data cannot be sealed');
}

async function sealedAttachments(doc) {
  const out = {};
  for (const [name, att] of Object.entries(doc._attachments || {})) {
    if (att.stub) {
      throw new CarecouchError(`${doc._id}: attachment ${name} arrived without its data; a sealed database keeps attachments inside the sealed body`);
    }
    const data = await attachmentBase64(att.data);
    out[name] = {content_type: att.content_type, data,
                 digest: att.digest || attachmentDigest({data}), length: fromBase64(data).length};
  }
  return out;
}

export function sealedDatabase(PouchDB, location, name, box, options = {}) {
  if (!installed.has(PouchDB)) {
    PouchDB.plugin(transform);
    installed.add(PouchDB);
  }
  const db = new PouchDB(location, {auto_compaction: true, ...options});
  db.transform({
    async incoming(doc) {
      if (typeof doc._rev !== 'string' || !doc._revisions) {
        throw new CarecouchError(`${doc._id}: a sealed database takes complete revisions only (write through the device library)`);
      }
      const body = {};
      for (const [k, v] of Object.entries(doc)) {
        if (!INTERNAL.includes(k) && k !== '_attachments') { body[k] = v; }
      }
      if (doc._attachments && Object.keys(doc._attachments).length) {
        body._attachments = await sealedAttachments(doc);
      }
      const stored = {_id: doc._id, _rev: doc._rev, _revisions: doc._revisions,
                      sealed: await box.sealJson(aad(name, doc), body)};
      if (doc._deleted) { stored._deleted = true; }
      return stored;
    },
    async outgoing(doc) {
      if (typeof doc.sealed !== 'string') { return doc; }
      const body = await box.openJson(aad(name, doc), doc.sealed);
      const out = {};
      for (const k of Object.keys(doc)) {
        if (k.startsWith('_') && k !== '_attachments') { out[k] = doc[k]; }
      }
      return {...out, ...body};
    }
  });
  return db;
}
