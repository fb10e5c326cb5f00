"""``carecouch-device``: not built yet (see the reference device issue)."""

import sys


def main() -> None:
    print("carecouch-device: not built yet", file=sys.stderr)
    sys.exit(1)
