function (doc) {
  // The bridge's side of fleet health, from the append-only audit trail: how many
  // issuances, renewals (credentials.rotate), revocations, break-glass grants and lease
  // claims happened per hour. Each entry is counted once for the whole fleet (caseload "")
  // and once per caseload it concerns: the subject of break-glass, lease and record entries,
  // the caseload:<id> roles of an issuance.
  if (doc.type !== 'audit' || typeof doc.at !== 'string' || typeof doc.action !== 'string') {
    return;
  }
  var hour = doc.at.substring(0, 13);
  var action = doc.action;
  var details = doc.details || {};
  var caseloads = [];
  var i;
  emit([hour, action, ''], 1);
  if ((action.indexOf('break_glass.') === 0 || action.indexOf('lease.') === 0 ||
       action === 'record.create') && typeof doc.subject === 'string') {
    caseloads.push(doc.subject);
  } else if (action === 'credentials.issue' && details.roles && details.roles.length) {
    for (i = 0; i < details.roles.length; i++) {
      if (typeof details.roles[i] === 'string' && details.roles[i].indexOf('caseload:') === 0) {
        caseloads.push(details.roles[i].substring(9));
      }
    }
  }
  for (i = 0; i < caseloads.length; i++) {
    emit([hour, action, caseloads[i]], 1);
  }
}
