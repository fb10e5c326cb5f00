"""carecouch bridge: policy-scoped, short-lived, revocable replication credentials (Flask)."""
