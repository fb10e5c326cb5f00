// MD5, which WebCrypto lacks, for the two places CouchDB's formats use it: attachment digests
// (`md5-<base64>`) and revision ids. spark-md5 is the implementation PouchDB itself computes
// attachment digests with in browsers, so the digests agree with what PouchDB stores.

import SparkMD5 from 'spark-md5';

function arrayBuffer(bytes) {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

export function md5Hex(bytes) {
  return SparkMD5.ArrayBuffer.hash(arrayBuffer(bytes));
}

// The 16 digest bytes as a binary string (what btoa takes).
export function md5Binary(bytes) {
  return SparkMD5.ArrayBuffer.hash(arrayBuffer(bytes), true);
}
