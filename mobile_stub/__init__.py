"""carecouch reference field device: replicator, encrypted offline store, offline workflow."""
