"""Benchmarks for `make bench` (``python -m bench [name ...]``).

Each benchmark is a module of this package listed in `BENCHMARKS`, exposing ``run() -> dict`` that prints
its own report and returns JSON-ready results with a boolean ``"passed"``. `bench.__main__` runs them in
order and writes each result to ``bench/results/<name>.json`` (gitignored).
"""

from __future__ import annotations

import os

#: Run in this order by ``python -m bench``.
BENCHMARKS: tuple[str, ...] = ("ingest", "batch_ingest", "callgrind_ingest", "fluid_topics", "appdynamics",
                               "postgresql")


class BenchError(RuntimeError):
    """The benchmark could not produce a trustworthy figure (a server failed, non-2xx answers, lost events).

    Distinct from missing a target: a missed target is reported as FAIL with exit code 0, an error exits 1.
    """


def env_number(name: str, default: float, *, minimum: float = 0) -> float:
    """A numeric knob from the environment (a trailing ``s`` for seconds is allowed), checked against `minimum`."""
    raw = os.environ.get(name, "").strip().rstrip("s")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BenchError(f"{name}={os.environ[name]!r}: expected a number") from None
    if value < minimum:
        raise BenchError(f"{name}={os.environ[name]!r}: must be at least {minimum:g}")
    return value
