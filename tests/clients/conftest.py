"""Official clients run for real against a real `event-gateway serve` (2 workers, SQLite).

The Node packages (the Elastic browser tracker, `@elastic/elasticsearch` 8 and 9 under the npm aliases
``es8``/``es9``) are pinned by tests/clients/node/package-lock.json and installed by ``npm ci`` once per lock
file (a stamp in node_modules remembers which). Each client acts for its own tenant, so the events one test
reads back with `event-gateway export` are exactly the ones its client sent. Tests skip, naming the binary,
only when `node`/`npm` (or `chromium`, in its module) are not installed; .ci/run installs them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clients.clients_kit import CLIENT_CREDENTIALS, NODE_DIR
from support import CREDENTIALS, RunningServer, base_config, free_port, start_server, write_config

STAMP = NODE_DIR / "node_modules" / ".event-gateway-lock.sha256"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """`npm ci` of tests/clients/node when its lock file changed since the last install."""
    for binary in ("node", "npm"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (.ci/run installs it with apt)")
    digest = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text().strip() != digest:
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
        STAMP.write_text(digest)
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="session")
def page_ports() -> tuple[int, int]:
    """Ports of the two static page servers: the allowed origin and one the gateway does not allow."""
    return free_port(), free_port()


@pytest.fixture(scope="session")
def client_gateway(tmp_path_factory: pytest.TempPathFactory, page_ports: tuple[int, int]
                   ) -> Iterator[RunningServer]:
    """One real gateway for every client test: 2 workers, SQLite, CORS for the allowed page origin only."""
    tmp = tmp_path_factory.mktemp("clients")
    config = base_config(tmp, cors={"allow_origins": [f"http://127.0.0.1:{page_ports[0]}"]},
                         credentials=[*CREDENTIALS, *CLIENT_CREDENTIALS])
    server = start_server(write_config(tmp / "gateway.toml", config), workers=2)
    yield server
    server.stop()

