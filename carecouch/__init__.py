"""carecouch's shared core: the CouchDB client, configuration and the pieces every program uses.

The three programs (``admin_cli``, ``bridge``, ``mobile_stub``) import this package and never
each other.
"""

__version__ = "0.1.0.dev0"
