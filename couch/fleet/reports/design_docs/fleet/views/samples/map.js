function (doc) {
  // What CouchDB itself said of a caseload when it was sampled (hourly, by the bridge or
  // `carecouch fleet sample`): how many records were conflicted. Nothing a device claims.
  if (doc.type !== 'caseload_sample' || typeof doc.at !== 'string') {
    return;
  }
  emit([doc.caseload, doc.at.substring(0, 13)], doc.conflicts);
}
