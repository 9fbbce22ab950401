"""Fixtures of the storage-hardening tests: real `event-gateway serve` processes on SQLite files.

The servers serve the Fluid Topics API (its routes are the ones the hostile requests of issue 10 used)
with the Fluid Topics test credentials; each test gets its own data directory under `tmp_path`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fluid_topics.ft_helpers import ft_config
from support import RunningServer, start_server, write_config


@pytest.fixture
def ft_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start a real server serving Fluid Topics on an SQLite file (`db`), extra config sections merged in."""
    started: list[RunningServer] = []

    def run(db: Path, *, workers: int = 2, threads: int = 4, storage: dict[str, Any] | None = None,
            **sections: Any) -> RunningServer:
        config = ft_config(tmp_path, storage="sqlite", **sections)
        config["storage"] = {"url": f"sqlite:///{db}", **(storage or {})}
        path = write_config(tmp_path / f"gateway-{len(started)}.toml", config)
        server = start_server(path, workers=workers, threads=threads)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file holding `SEEDED` Fluid Topics events of tenant acme (made once per session)."""
    from hardening_storage.hs_helpers import SEEDED, seed_sqlite

    db = tmp_path_factory.mktemp("seeded") / "events.db"
    seed_sqlite(db, SEEDED)
    return db


@pytest.fixture
def seeded_db(seeded_template: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded file (tests may write to it)."""
    import shutil

    db = tmp_path / "data" / "events.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seeded_template, db)
    return db
