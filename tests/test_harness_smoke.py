from carecouch.couch import CouchClient, Database


def test_admin_reaches_server(admin: CouchClient) -> None:
    assert "_admin" in admin.session()["userCtx"]["roles"]


def test_fresh_db_is_empty(db: Database) -> None:
    assert db.info()["doc_count"] == 0
