"""Conflict review: find, inspect, resolve, undo and audit conflicted clinical records.

One module per step (docs/design.md, "Conflict resolution"):

- :mod:`.branches` reads the leaf revisions of conflicted documents;
- :mod:`.finder` lists conflicts across caseloads from the ``conflicts`` view;
- :mod:`.diff` compares branches field by field, with their common ancestor;
- :mod:`.merge` and :mod:`.policy` decide what each record class allows;
- :mod:`.plan` turns a decision into the exact documents to write;
- :mod:`.apply` writes them (resolution record first, then one ``_bulk_docs``);
- :mod:`.undo` restores what a resolution discarded;
- :mod:`.trail` reports who resolved what, when and why.
"""
