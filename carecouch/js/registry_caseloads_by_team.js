// The caseload records of each team, for the bridge: a login reads the caseloads of the teams
// its policy rules name, never every record of the registry (issue 16), so signing in costs the
// same however many caseloads and devices the organisation has.
function (doc) {
  if (doc.type === 'caseload' && typeof doc.team === 'string') {
    emit(doc.team, null);
  }
}
