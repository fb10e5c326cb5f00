// The device's one way to the bridge: JSON over HTTP(S), signed by the device key
// (mobile_stub/bridge_api.py). The bridge's error shape becomes a named error:
// `device.revoked` is DeviceRevoked (the device must wipe itself), no answer is
// BridgeUnreachable, anything else a BridgeError with the bridge's code and message.
//
// Signed requests are stamped with the device's estimate of the server clock; when the
// bridge still answers `device.stale_timestamp`, the request is signed again once on the
// bridge's own time (its `details.server_time`): a tablet whose clock drifted still logs in.
//
// The path signed is the API path (`/v1/credentials`), which is what the bridge sees also
// when the app reaches it through a reverse proxy under a prefix (`/bridge/v1/...`).

import {BridgeError, BridgeUnreachable, DeviceRevoked, NotLoggedIn} from './errors.js';
import {utf8} from './encoding.js';
import {requestHeaders} from './request_signing.js';

export const STALE_TIMESTAMP = 'device.stale_timestamp';
export const REVOKED = 'device.revoked';

export class BridgeClient {
  constructor({baseUrl, deviceId, seed, token = null, clockOffsetMs = () => null,
               fetch = globalThis.fetch.bind(globalThis), now = () => Date.now(), online = () => true}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.deviceId = deviceId;
    this.seed = seed;
    this.token = token;
    this.clockOffsetMs = clockOffsetMs;
    this.fetch = fetch;
    this.now = now;
    this.online = online;
  }

  async keys() {
    return (await this.send('GET', '/v1/keys', null, {signed: false, bearer: false})).body;
  }

  async device() {
    return (await this.send('GET', `/v1/devices/${encodeURIComponent(this.deviceId)}`, null,
                            {signed: false, bearer: true})).body;
  }

  async post(path, body) {
    return this.send('POST', path, body, {signed: true, bearer: true});
  }

  async send(method, path, body, {signed, bearer}) {
    const content = body === null ? new Uint8Array(0) : utf8(JSON.stringify(body));
    const headers = {Accept: 'application/json'};
    if (body !== null) { headers['Content-Type'] = 'application/json'; }
    if (bearer) {
      if (!this.token) { throw new NotLoggedIn('no identity token: sign in again'); }
      headers.Authorization = `Bearer ${this.token}`;
    }
    let skewMs = this.clockOffsetMs() || 0;
    for (let attempt = 0; ; attempt++) {
      if (signed) {  // a fresh nonce and timestamp for every attempt
        Object.assign(headers, await requestHeaders(this.seed, this.deviceId, method, path, content,
                                                    {timestamp: Math.floor((this.now() + skewMs) / 1000)}));
      }
      const sent = this.now();
      let response;
      try {
        response = await this.fetch(this.baseUrl + path, {method, headers,
                                                          body: body === null ? undefined : content});
      } catch (err) {
        throw new BridgeUnreachable(`cannot reach the bridge at ${this.baseUrl}: ${err.message || err}`, {cause: err});
      }
      const received = this.now();
      const answer = await readJson(response);
      if (response.ok) {
        if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) {
          throw new BridgeError(`the bridge answered ${response.status} without a JSON object`, {status: response.status});
        }
        return {status: response.status, body: answer, sent, received};
      }
      const error = bridgeError(response, answer);
      const serverTime = answer && answer.details && answer.details.server_time;
      if (attempt === 0 && signed && error.code === STALE_TIMESTAMP && typeof serverTime === 'number') {
        skewMs = serverTime * 1000 - received;  // the bridge's clock, to the second
        continue;
      }
      throw error;
    }
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function bridgeError(response, answer) {
  const fields = answer && typeof answer === 'object' ? answer : {};
  const code = String(fields.error || '');
  const message = String(fields.message || response.statusText || 'no reason given');
  const text = `the bridge refused (${response.status}${code ? ' ' + code : ''}): ${message}`;
  const Kind = code === REVOKED ? DeviceRevoked : BridgeError;
  const error = new Kind(text, {status: response.status, code});
  error.details = fields.details || null;
  return error;
}
