"""``carecouch-bridge``: not built yet (see the bridge issue)."""

import sys


def main() -> None:
    print("carecouch-bridge: not built yet", file=sys.stderr)
    sys.exit(1)
