"""``python -m synib_client``: the ``synib`` console script."""

from __future__ import annotations

import sys

from synib_client.main import main

if __name__ == "__main__":
    sys.exit(main())
