function (doc) {
  // Every document that carries conflicting revisions, keyed [type, id] so conflict review
  // can page through one record type at a time. The value holds what `carecouch conflicts`
  // needs without opening the document: its live leaves (the winner and the losing ones), so
  // only those are fetched and a change can be noticed before a resolution writes, and the
  // subject. `carecouch caseload list` reads the reduced count as "conflicted documents".
  // The record class is looked up in the registry by the CLI: a view cannot rely on
  // require(), which the embedded server's views do not offer.
  if (doc._conflicts) {
    emit([doc.type || null, doc._id], {
      rev: doc._rev,
      conflicts: doc._conflicts,
      subject: typeof doc.subject === 'string' ? doc.subject : null
    });
  }
}
