function (doc) {
  // Every document that carries conflicting revisions, keyed [type, id] so conflict review
  // can page through one record type at a time; the value is how many losing leaves it has.
  // `carecouch caseload list` reads the reduced count as "conflicted documents".
  if (doc._conflicts) {
    emit([doc.type || null, doc._id], doc._conflicts.length);
  }
}
