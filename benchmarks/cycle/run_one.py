"""Measure one series count and print the result as JSON (used by run.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.cycle.run import measure

if __name__ == "__main__":
    bench, work, series, rounds = sys.argv[1:5]
    print(json.dumps(measure(Path(bench), Path(work), int(series), int(rounds))))
