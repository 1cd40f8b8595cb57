"""Make the repository's ``benchmarks`` folder importable in these tests.

The installed package contains only the four service packages, so the
benchmark harnesses are imported from the checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.insert(0, str(REPOSITORY_ROOT))
