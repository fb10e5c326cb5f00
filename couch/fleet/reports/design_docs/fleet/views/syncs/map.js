function (doc) {
  // Device sync reports, one database per UTC day (carecouch/fleet.py). Keyed
  // [caseload, hour, result, duration bucket] so that one grouped read gives, per caseload
  // and hour, how many syncs succeeded, were refused or stopped, and a histogram of their
  // durations: buckets a quarter of an octave wide (19%), each with the _stats of the
  // durations in it, so a percentile is read from the counts and placed between the
  // bucket's own min and max. Plain ES5, no require(): the embedded server's views run in
  // a bare VM.
  if (doc.type !== 'sync_report' || typeof doc.started_at !== 'string') {
    return;
  }
  var ms = typeof doc.duration_ms === 'number' && doc.duration_ms > 0 ? doc.duration_ms : 0;
  var bucket = Math.floor(4 * Math.log(1 + ms) / Math.LN2);
  emit([doc.caseload || null, doc.started_at.substring(0, 13), doc.result, bucket], ms);
}
