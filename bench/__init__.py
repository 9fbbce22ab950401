"""Benchmarks for `make bench` (``python -m bench [name ...]``).

Each benchmark is a module of this package listed in `BENCHMARKS`, exposing ``run() -> dict`` that prints
its own report and returns JSON-ready results with a boolean ``"passed"``. `bench.__main__` runs them in
order and writes each result to ``bench/results/<name>.json`` (gitignored).
"""

from __future__ import annotations

#: Run in this order by ``python -m bench``; a later issue adds "query" (query p50 over 1M events).
BENCHMARKS: tuple[str, ...] = ("ingest", "fluid_topics")


class BenchError(RuntimeError):
    """The benchmark could not produce a trustworthy figure (a server failed, non-2xx answers, lost events).

    Distinct from missing a target: a missed target is reported as FAIL with exit code 0, an error exits 1.
    """
