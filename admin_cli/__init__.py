"""``carecouch``: the admin CLI for IT (server, caseloads) and clinical admins (conflicts)."""
