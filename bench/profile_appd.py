"""Where an AppDynamics publish of 1,000 events spends its CPU, measured in-process (no sockets, no gunicorn).

``python -m bench.profile_appd [N] [--profile]`` builds the gateway app as a worker does (the publish
benchmark's config, `bench.appdynamics`, on a SQLite file), creates ``myProducts`` and POSTs the benchmark's
array of 1,000 events N times (default 50) through WSGI with a prebuilt environ; it prints CPU and wall
microseconds per event, with and without storage (append a no-op). ``--profile`` adds a cProfile of the loop.
It exists because the HTTP benchmark shows only per-worker CPU; this names the functions behind it.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

from werkzeug.test import EnvironBuilder

from .appdynamics import ARRAY, HEADERS, SCHEMA, _config, document
from .profile_ingest import _loop, _profile

PATH = "/events/publish/myProducts"


def main(argv: list[str]) -> None:
    profile = "--profile" in argv
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 50
    from gateway.app import create_app
    from gateway.config import load_config
    from gateway.state import get_state

    rng = random.Random(7)
    body = json.dumps([document(i, rng) for i in range(ARRAY)], separators=(",", ":")).encode()
    with tempfile.TemporaryDirectory(prefix="bench-profile-appd-") as tmp:
        config = load_config(_config(Path(tmp), f"sqlite:///{tmp}/appd.db", 1, 1))
        app = create_app(config)
        answer = app.test_client().post("/events/schema/myProducts", data=json.dumps({"schema": SCHEMA}),
                                        headers=HEADERS)
        assert answer.status_code == 201, answer.data
        builder = EnvironBuilder(path=PATH, method="POST", data=body, headers=HEADERS,
                                 environ_base={"REMOTE_ADDR": "127.0.0.1"})
        base = builder.get_environ()
        builder.close()
        backend = get_state(app).backend
        appended = backend.append
        rows = []
        for _ in range(3):
            rows.append(("gateway", *_loop(app, base, n, body)))
            backend.append = lambda events, **kw: len(events)
            try:
                rows.append(("gateway without storage", *_loop(app, base, n, body)))
            finally:
                backend.append = appended
        print(f"appdynamics publish, arrays of {ARRAY}, SQLite file, one thread, in-process WSGI; best of 3 x {n}")
        for label in dict.fromkeys(r[0] for r in rows):
            cpu, wall = min((r[1], r[2]) for r in rows if r[0] == label)
            print(f"  {label:<30} CPU {cpu / ARRAY * 1e6:6.1f} us/event, wall {wall / ARRAY * 1e6:6.1f} us/event")
        if profile:
            _profile(app, base, n, body, top=(40, 30))
        backend.close()


if __name__ == "__main__":
    main(sys.argv[1:])
