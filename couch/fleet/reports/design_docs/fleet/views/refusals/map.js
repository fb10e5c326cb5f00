function (doc) {
  // Writes the server refused, by the rule's code (never its reason: reports carry no
  // clinical content), per caseload and hour of the sync that met them.
  if (doc.type !== 'sync_report' || typeof doc.started_at !== 'string' || !doc.refused) {
    return;
  }
  var hour = doc.started_at.substring(0, 13);
  for (var code in doc.refused) {
    if (Object.prototype.hasOwnProperty.call(doc.refused, code) &&
        typeof doc.refused[code] === 'number') {
      emit([doc.caseload || null, hour, code], doc.refused[code]);
    }
  }
}
