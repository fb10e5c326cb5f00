// RFC 8785 JSON Canonicalization Scheme: what a record signature covers
// (docs/record-rules.md, "Provenance"; the Python twin is carecouch/provenance.py `jcs`).
// RFC 8785 defines its strings and numbers as ECMAScript's JSON.stringify prints them, and
// orders keys by UTF-16 code units, which is what Array.prototype.sort does: in JavaScript
// the scheme is this short.

export function canonicalJson(value) {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) { throw new TypeError('NaN and Infinity are not JSON'); }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return '[' + value.map(canonicalJson).join(',') + ']';
  }
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(value[k])).join(',') + '}';
  }
  throw new TypeError(`not JSON: ${typeof value}`);
}
