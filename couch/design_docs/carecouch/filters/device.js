function (doc, req) {
  // The replication filter the bridge hands each device (`carecouch/device`): it keeps what a
  // device holds to what its user's policy says the device needs. It is not a security
  // boundary (the client chooses the filter; database membership is the read boundary), only
  // data minimisation: a lost tablet should carry as few patients' records as the work needs.
  //
  // Query parameters (all optional, set by the bridge from the policy):
  //   types     comma-separated record types to hold (absent: every type);
  //   not_before  ISO 8601 UTC time: append-only records (observations, notes...) whose `at`
  //               is older are left on the server; mergeable and exclusive records are current
  //               state (a care plan, an open sign-off), so they pass whatever their age
  //               (not `since`: the changes feed's own parameter has that name);
  //   subjects    comma-separated pinned patients, whose records pass whatever their age.
  // Deletions always pass, so a device learns that conflict review discarded a revision;
  // design documents never do (devices do not run them).
  if (doc._id.indexOf('_design/') === 0) { return false; }
  if (doc._deleted) { return true; }
  var query = (req && req.query) || {};
  var registry = require('lib/record_types');
  function list(value) {
    if (typeof value !== 'string' || value === '') { return null; }
    return value.split(',');
  }
  var types = list(query.types);
  if (types !== null && types.indexOf(doc.type) === -1) { return false; }
  var subjects = list(query.subjects);
  if (subjects !== null && subjects.indexOf(doc.subject) !== -1) { return true; }
  var spec = registry.types[doc.type];
  if (typeof query.not_before === 'string' && query.not_before !== '' && spec &&
      spec['class'] === 'append-only') {
    // ISO 8601 UTC strings sort by time (to the second); the record rules check that `at`
    // is one.
    return typeof doc.at === 'string' && doc.at >= query.not_before;
  }
  return true;
}
