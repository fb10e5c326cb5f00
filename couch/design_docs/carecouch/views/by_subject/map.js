function (doc) {
  // The same sizes by [subject, type, at]: a pinned patient's records pass the device filter
  // whatever their age, so the scope count adds a pinned patient's older records from here.
  if (doc._id.indexOf('_design/') === 0 || typeof doc.type !== 'string' ||
      typeof doc.subject !== 'string') { return; }
  var size = JSON.stringify(doc).length;
  var atts = doc._attachments || {};
  for (var name in atts) {
    if (Object.prototype.hasOwnProperty.call(atts, name)) { size += atts[name].length || 0; }
  }
  emit([doc.subject, doc.type, typeof doc.at === 'string' ? doc.at : null], size);
}
