// How the device talks to CouchDB: a `fetch` for PouchDB's http adapter that
//
// - sends the current bridge-issued credentials (basic auth) on every request, read at the
//   moment the request goes out, so a renewed password is used at once;
// - on a 401 renews the credentials through the bridge (once for all requests that met the
//   same stale password) and sends the request again: a live replication never sees the
//   expired credential, so it neither stalls silently nor restarts (apache/pouchdb #5607,
//   where PouchDB's `retry: true` keeps retrying with the old password for ever);
// - when the renewal is refused (revoked device, expired identity token) answers the 401 and
//   tells the device, which stops every replication with the reason, instead of letting
//   PouchDB's backoff retry in silence;
// - gives PouchDB the `name` of a refused write in `_bulk_docs` answers: CouchDB answers
//   `{"id", "rev", "error": "forbidden", "reason"}`, and PouchDB's replicator emits `denied`
//   (and carries on) only for an error whose `name` is forbidden/unauthorized; without it, one
//   refused record fails the whole push;
// - observes `Date` headers for the device's server-clock estimate;
// - refuses to send anything while the device is set offline.

import {CarecouchError} from './errors.js';

export class DeviceOfflineError extends CarecouchError {}

function basic(username, password) {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let binary = '';
  for (const b of bytes) { binary += String.fromCharCode(b); }
  return 'Basic ' + btoa(binary);
}

export function couchFetch({credentials, renew, onStopped, clock, online, baseFetch}) {
  let renewing = null;  // one renewal in flight, shared by every request that meets a 401
  let generation = 0;   // bumps with each renewal: a 401 on an older password just retries

  async function renewOnce(seen) {
    if (seen !== generation) { return true; }
    if (!renewing) {
      renewing = (async () => {
        try {
          await renew();
          generation++;
          return true;
        } catch (err) {
          onStopped(err);
          return false;
        } finally {
          renewing = null;
        }
      })();
    }
    return renewing;
  }

  async function send(url, opts) {
    if (!online()) { throw new DeviceOfflineError('the device is offline: no request leaves it'); }
    const creds = credentials();
    const headers = new Headers(opts.headers || {});
    if (creds) { headers.set('Authorization', basic(creds.username, creds.password)); }
    const response = await baseFetch(url, {...opts, headers, credentials: 'omit'});
    clock.observeDate(response.headers.get('Date'));
    return response;
  }

  return async function (url, opts = {}) {
    const seen = generation;
    let response = await send(url, opts);
    if (response.status === 401 && await renewOnce(seen)) {
      response = await send(url, opts);
    }
    const path = new URL(String(url), 'http://x').pathname;
    if (response.ok && path.endsWith('/_bulk_docs')) {
      const rows = await response.clone().json().catch(() => null);
      if (Array.isArray(rows) && rows.some((r) => r && r.error && !r.name)) {
        const named = rows.map((r) => (r && r.error && !r.name ? {...r, name: String(r.error)} : r));
        return new Response(JSON.stringify(named), {status: response.status, headers: response.headers});
      }
    }
    return response;
  };
}
