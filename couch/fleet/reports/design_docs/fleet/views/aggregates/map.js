function (doc) {
  // Everything the fleet summary reads of one day (carecouch/fleet_read.py), in one view so
  // that each report is indexed once: plain ES5, no require() (the embedded server's views
  // run in a bare VM). The _stats reduce gives count, sum, min and max of each key's values.
  //
  // ["sync", caseload, hour, result, bucket] -> duration in ms. Buckets are a quarter of an
  //   octave wide (19%): a percentile is found from the counts and placed by rank between
  //   its bucket's own min and max.
  // ["refused", caseload, hour, code] -> writes the server refused, by the rule's code
  //   (never its reason: reports carry no clinical content).
  // ["sample", caseload, hour] -> conflicted records CouchDB itself held then (the hourly
  //   sample of each caseload's conflicts view): nothing a device claims.
  var hour, ms, code;
  if (doc.type === 'sync_report' && typeof doc.started_at === 'string') {
    hour = doc.started_at.substring(0, 13);
    ms = typeof doc.duration_ms === 'number' && doc.duration_ms > 0 ? doc.duration_ms : 0;
    emit(['sync', doc.caseload || null, hour, doc.result,
          Math.floor(4 * Math.log(1 + ms) / Math.LN2)], ms);
    if (doc.refused) {
      for (code in doc.refused) {
        if (Object.prototype.hasOwnProperty.call(doc.refused, code) &&
            typeof doc.refused[code] === 'number') {
          emit(['refused', doc.caseload || null, hour, code], doc.refused[code]);
        }
      }
    }
  } else if (doc.type === 'caseload_sample' && typeof doc.at === 'string' &&
             typeof doc.conflicts === 'number') {
    emit(['sample', doc.caseload, doc.at.substring(0, 13)], doc.conflicts);
  }
}
