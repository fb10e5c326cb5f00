// Critical updates first (docs/device.md, "The working set"): the urgent records within a
// device's filter as one Mango selector, pulled with `filter: '_selector'` before the backlog.
// The Python twin is carecouch/working_set.py `urgent_selector`; tests/vectors pins both.

export function urgentSelector(registry, query) {
  const listed = query.types;
  const types = listed ? listed.split(',').sort() : Object.keys(registry.types).sort();
  const window = query.not_before;
  const alternatives = [];
  for (const name of types) {
    const spec = registry.types[name];
    if (!spec || !spec.urgent) { continue; }
    const clause = {type: name};
    if (typeof spec.urgent === 'object') { Object.assign(clause, spec.urgent); }
    if (window && spec.class === 'append-only') { clause.at = {$gte: window}; }
    alternatives.push(clause);
  }
  if (alternatives.length === 0) { return null; }
  return alternatives.length === 1 ? alternatives[0] : {$or: alternatives};
}
