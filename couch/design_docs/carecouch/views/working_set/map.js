function (doc) {
  // How much of the caseload a device would hold, by [type, at]: the bridge and
  // `carecouch policy explain` count a filter's documents and bytes with range queries
  // (carecouch/working_set.py): every record of a type, or, for append-only types, those at
  // or after the filter's time window. The value is the document's size in JSON plus its
  // attachments' length; the `_stats` reduce gives the count and the sum.
  if (doc._id.indexOf('_design/') === 0 || typeof doc.type !== 'string') { return; }
  var size = JSON.stringify(doc).length;
  var atts = doc._attachments || {};
  for (var name in atts) {
    if (Object.prototype.hasOwnProperty.call(atts, name)) { size += atts[name].length || 0; }
  }
  emit([doc.type, typeof doc.at === 'string' ? doc.at : null], size);
}
