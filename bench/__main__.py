"""``python -m bench [name ...]`` (``make bench``): run benchmarks, print reports, save JSON results.

Runs every module named in `bench.BENCHMARKS` (or only the names given) in order. Each returns its
results, written with facts about the machine to ``bench/results/<name>.json``. A missed target prints
FAIL and still exits 0 (targets are tracked, not gated: shared machines are noisy); an error that leaves
no trustworthy figure (server crash, non-2xx answers, lost events) exits 1; an unknown name exits 2.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import BENCHMARKS, BenchError

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What a reader needs to compare results across runs."""
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root,
                            check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit or None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or any(a.startswith("-") for a in argv):
        print(f"usage: python -m bench [{' | '.join(BENCHMARKS)} ...]", file=sys.stderr)
        return 2
    errors = 0
    for name in names:
        facts = machine()
        module = importlib.import_module(f"{__package__}.{name}")
        try:
            result = module.run()
        except BenchError as exc:
            print(f"bench {name}: ERROR: {exc}", file=sys.stderr)
            errors += 1
            continue
        result["machine"] = facts
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"{name}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"bench {name}: {'PASS' if result['passed'] else 'FAIL'} (results in {out.relative_to(Path.cwd())})"
              if out.is_relative_to(Path.cwd()) else f"bench {name}: {'PASS' if result['passed'] else 'FAIL'} "
              f"(results in {out})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
