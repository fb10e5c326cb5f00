"""The ``carecouch-device`` commands, one module per concern; the library does the work."""
