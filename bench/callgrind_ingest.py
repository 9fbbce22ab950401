"""CPU instructions per single-event ingest request, gateway vs bare Flask route, counted by callgrind.

``python -m bench.callgrind_ingest`` (part of ``python -m bench``) runs each app in-process (the apps and
prebuilt WSGI environ of `bench.profile_ingest`: no sockets, no gunicorn, memory backend) under
``valgrind --tool=callgrind``, twice with different request counts, and takes the difference: instructions
per request with start-up (imports, app creation) cancelled out. Instruction counts do not depend on the
machine's load, which makes this the steadiest figure of the issue 11 table. Target: gateway / bare <= 1.6.

Skipped (reported, not failed) without ``valgrind``. Environment: BENCH_CALLGRIND_REQUESTS (the larger
count, 120; the smaller is a sixth of it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import BenchError, env_number

NAME = "callgrind_ingest"
TARGET = 1.6
REPO = Path(__file__).resolve().parent.parent


def child(kind: str, n: int) -> None:
    """Inside valgrind: build one app, serve `n` requests through WSGI."""
    from .profile_ingest import _call, _environ
    from .servers import write_gateway_config

    base = _environ()
    if kind == "bare":
        from .bare_app import create_app

        app: Any = create_app()
    else:
        from gateway.app import create_app as create_gateway
        from gateway.config import load_config

        tmp = tempfile.mkdtemp(prefix="bench-callgrind-")
        app = create_gateway(load_config(write_gateway_config(Path(tmp), "memory://", workers=1, threads=1)))
        from .ingest import HEADERS

        put = app.test_client().put("/_application/analytics/bench",
                                    headers={"Authorization": HEADERS["Authorization"]})
        assert put.status_code == 201, put.data
    for _ in range(2):
        status = _call(app, base)
        if not status.startswith("2"):
            raise SystemExit(f"{kind} answered {status}")
    for _ in range(n):
        _call(app, base)


def instructions(kind: str, n: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
                "bench.callgrind_ingest", "--child", kind, str(n)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=1800, check=False)
        if done.returncode != 0 or not out.exists():
            raise BenchError(f"callgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if found is None:
            raise BenchError("no totals in the callgrind output")
        return int(found.group(1))


def run() -> dict[str, Any]:
    if not shutil.which("valgrind"):
        print("callgrind_ingest: valgrind is not installed; skipped\n")
        return {"benchmark": NAME, "skipped": "valgrind not installed", "passed": False}
    large = int(env_number("BENCH_CALLGRIND_REQUESTS", 120, minimum=12))
    small = large // 6
    per: dict[str, float] = {}
    for kind in ("bare", "gateway"):
        low, high = instructions(kind, small), instructions(kind, large)
        per[kind] = (high - low) / (large - small)
        print(f"  {kind:<8} {per[kind]:>12,.0f} instructions per request", flush=True)
    ratio = per["gateway"] / per["bare"]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"callgrind_ingest: in-process WSGI, memory backend, ({large} - {small}) requests: gateway/bare = "
          f"{ratio:.2f}  target <= {TARGET:.1f}  {verdict}\n")
    return {"benchmark": NAME, "requests": [small, large], "instructions_per_request": per, "ratio": ratio,
            "target": TARGET, "passed": ratio <= TARGET}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        print("usage: python -m bench callgrind_ingest", file=sys.stderr)
        sys.exit(2)
