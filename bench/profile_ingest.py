"""Where the gateway spends a single-event ingest request, measured in-process (no sockets, no gunicorn).

``python -m bench.profile_ingest [sqlite|memory] [N] [--profile]`` builds the gateway app exactly as a
worker does (same config as the ingest benchmark) and the bare app, and calls each through WSGI with a
prebuilt environ (cheaper and steadier than Flask's test client), N requests per measurement (default
2000), three interleaved repeats, best kept. It prints CPU and wall time per request for the bare app,
the gateway as configured, and the gateway with one pipeline stage removed at a time (quotas, storage,
SQLite's fsync per commit), which prices each stage without cProfile's distortion; ``--profile`` adds a
cProfile of the gateway loop.

It exists because py-spy is not available. It is a proxy: one thread, so it shows CPU and fsync time,
not lock waits between gunicorn threads or workers.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

from .bare_app import PATH
from .bare_app import create_app as create_bare_app
from .ingest import BODY, HEADERS
from .servers import write_gateway_config


def _environ() -> dict[str, Any]:
    builder = EnvironBuilder(path=PATH, method="POST", data=BODY, headers=HEADERS,
                             environ_base={"REMOTE_ADDR": "127.0.0.1"})
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _call(app: Any, base: dict[str, Any], body: bytes = BODY) -> str:
    """One WSGI call of `app` with the prebuilt environ and `body`; returns the status line."""
    environ = dict(base)
    environ["wsgi.input"] = io.BytesIO(body)
    status: list[str] = []
    chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
    for _ in chunks:
        pass
    if hasattr(chunks, "close"):
        chunks.close()
    return status[0]


def _loop(app: Any, base: dict[str, Any], n: int, body: bytes = BODY) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per request, after one unmeasured request."""
    first = _call(app, base, body)
    if not first.startswith("2"):
        raise SystemExit(f"app answered {first}")
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        _call(app, base, body)
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n


def _profile(app: Any, base: dict[str, Any], n: int, body: bytes = BODY, top: tuple[int, int] = (45, 25)) -> None:
    """cProfile of `n` requests, printed by cumulative then by own time (`top` lines of each)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        _call(app, base, body)
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top[0])
    stats.sort_stats("tottime").print_stats(top[1])


def _nothing() -> None:
    pass


def _ablations(gateway: Any, kind: str) -> list[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(label, switch on, switch off): pipeline stages removed one at a time, in this process only."""
    from gateway.state import get_state

    state = get_state(gateway)
    backend, quotas = state.backend, state.quotas
    assert quotas is not None

    def quotas_off() -> None:
        quotas.check = lambda credential, endpoint: None

    def quotas_on() -> None:
        del quotas.check

    appended = backend.append  # (instance attribute when metrics time it: put back what was there)

    def storage_off() -> None:
        backend.append = lambda events: len(events)

    def storage_on() -> None:
        backend.append = appended

    def both_off() -> None:
        quotas_off()
        storage_off()

    def both_on() -> None:
        quotas_on()
        storage_on()

    def observe_off() -> None:
        _observability(gateway, False)

    def observe_on() -> None:
        _observability(gateway, True)

    out = [("without quotas (check is a no-op)", quotas_off, quotas_on),
           ("without metrics and access log", observe_off, observe_on),
           ("without storage (append is a no-op)", storage_off, storage_on),
           ("without quotas and storage", both_off, both_on)]
    if kind == "sqlite":
        def normal() -> None:
            backend._connection(backend._writer_slot).execute("PRAGMA synchronous = NORMAL")

        def full() -> None:
            backend._connection(backend._writer_slot).execute("PRAGMA synchronous = FULL")

        out.append(("SQLite synchronous=NORMAL instead of FULL", normal, full))
    return out


_SAVED: dict[str, Any] = {}


def _observability(gateway: Any, on: bool) -> None:
    """Switch the metrics/access-log hooks (gateway.metrics) and the backend timing off, or back on."""
    import gateway.api as core_api
    from gateway.state import get_state

    backend = get_state(gateway).backend
    if not on:
        _SAVED["before"] = list(gateway.before_request_funcs[None])
        _SAVED["after"] = list(gateway.after_request_funcs[None])
        _SAVED["count"] = core_api.count_accepted
        _SAVED["backend"] = {name: value for name, value in vars(backend).items() if hasattr(value, "__wrapped__")}
        gateway.before_request_funcs[None] = [f for f in _SAVED["before"] if "metrics" not in f.__module__]
        gateway.after_request_funcs[None] = [f for f in _SAVED["after"] if "metrics" not in f.__module__]
        core_api.count_accepted = lambda api, count: None
        for name, timed in _SAVED["backend"].items():
            setattr(backend, name, timed.__wrapped__)
    else:
        gateway.before_request_funcs[None] = _SAVED["before"]
        gateway.after_request_funcs[None] = _SAVED["after"]
        core_api.count_accepted = _SAVED["count"]
        for name, timed in _SAVED["backend"].items():
            setattr(backend, name, timed)


def main(argv: list[str]) -> None:
    profile = "--profile" in argv
    args = [a for a in argv if not a.startswith("--")]
    kind = args[0] if args else "sqlite"
    n = int(args[1]) if len(args) > 1 else 2000
    repeat = 3
    from gateway.app import create_app
    from gateway.config import load_config

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        url = f"sqlite:///{tmp}/bench.db" if kind == "sqlite" else "memory://"
        config = load_config(write_gateway_config(Path(tmp), url, workers=1, threads=1))
        gateway = create_app(config)
        client = gateway.test_client()
        put = client.put("/_application/analytics/bench", headers={"Authorization": HEADERS["Authorization"]})
        assert put.status_code == 201, put.data
        base = _environ()
        bare = create_bare_app()
        variants: list[tuple[str, Any, Callable[[], None], Callable[[], None]]] = [
            ("bare app", bare, _nothing, _nothing), ("gateway", gateway, _nothing, _nothing),
            *[(f"gateway {label}", gateway, on, off) for label, on, off in _ablations(gateway, kind)],
        ]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(repeat):  # interleaved repeats, best of each: steadier on a shared machine
            for label, app, on, off in variants:
                on()
                try:
                    cpu, wall = _loop(app, base, n)
                finally:
                    off()
                old = best.get(label)
                best[label] = (cpu, wall) if old is None or wall < old[1] else old
        bare_wall = best["bare app"][1]
        print(f"{kind}: best of {repeat} x {n} requests, one thread, in-process WSGI (no HTTP, no gunicorn)")
        print(f"  {'':<50} {'CPU us/req':>10} {'wall us/req':>11} {'bare/this':>9}")
        for label, (cpu, wall) in best.items():
            print(f"  {label:<50} {cpu * 1e6:>10.0f} {wall * 1e6:>11.0f} {bare_wall / wall:>9.3f}")
        if profile:
            _profile(gateway, base, n)
        from gateway.state import get_state

        get_state(gateway).backend.close()


if __name__ == "__main__":
    main(sys.argv[1:])
