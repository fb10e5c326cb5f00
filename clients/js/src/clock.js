// The device's estimate of the server clock (mobile_stub/clock.py): records carry `at`
// (device time) and `clock_offset_ms` (server minus device), and lease and snapshot times,
// written by the server's clock, are compared with the estimate. `Date` headers have
// one-second resolution: an answer received at `r` bounds the offset to
// [Date - r, Date + 1 s - r]; the bridge's `server_time` read between sending at `s` and
// receiving at `r` bounds it to [t - r, t - s]. The estimate is the middle of the tightest
// recent interval.

export class ClockEstimator {
  constructor(savedOffsetMs = null, now = () => Date.now()) {
    this.saved = savedOffsetMs;
    this.now = now;
    this.low = null;
    this.high = null;
  }

  observeDate(dateHeader) {
    const server = Date.parse(dateHeader || '');
    if (Number.isNaN(server)) { return; }  // a malformed header tells us nothing
    const received = this.now();
    this.narrow(server - received, server + 1000 - received);
  }

  observeExchange(serverTimeMs, sentMs, receivedMs) {
    this.narrow(serverTimeMs - receivedMs, serverTimeMs - sentMs);
  }

  narrow(low, high) {
    if (this.low === null || low > this.high || high < this.low) {
      this.low = low;  // the first sample, or the device clock moved: start over
      this.high = high;
    } else {
      this.low = Math.max(this.low, low);
      this.high = Math.min(this.high, high);
    }
  }

  offsetMs() {
    return this.low === null ? this.saved : Math.round((this.low + this.high) / 2);
  }

  serverNow() {
    return this.now() + (this.offsetMs() || 0);
  }
}

// ISO 8601 UTC with microseconds, fixed width (carecouch/clock.py format_utc), so the strings
// sort by time and agree with what the Python side writes.
export function formatUtc(ms) {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}
