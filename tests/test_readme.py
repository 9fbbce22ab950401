"""The README's promises, checked as a new user would: the pasted curls get 201 and 202 against the
shipped config, and the plugin example printed there is exactly the one the suite installs and tests."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from support import start_server, write_config

from gateway.config import validate_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_example_plugin_in_readme_is_the_tested_one() -> None:
    for name in ("gateway_hello.py", "setup.cfg"):
        source = (ROOT / "examples" / "hello-plugin" / name).read_text()
        assert source in README, f"README's copy of examples/hello-plugin/{name} is out of date"


def test_shipped_configs_are_valid() -> None:
    for name in ("gateway.toml", "example-production.toml"):
        with open(ROOT / "config" / name, "rb") as fh:
            validate_config(tomllib.load(fh), source=name, environ={})


@pytest.mark.slow
def test_readme_curls_against_the_shipped_config(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    with open(ROOT / "config" / "gateway.toml", "rb") as fh:
        config = tomllib.load(fh)
    config["storage"]["url"] = f"sqlite:///{tmp_path}/events.db"
    server = start_server(write_config(tmp_path / "gateway.toml", config), workers=2)
    try:
        curls = [line for line in README.splitlines() if line.startswith("curl ")]
        assert len(curls) == 2
        statuses = []
        for line in curls:
            argv = shlex.split(line.replace("http://127.0.0.1:8080", server.url))
            out = subprocess.run([*argv, "-s", "-o", "/dev/null", "-w", "%{http_code}"], capture_output=True,
                                 text=True, timeout=30)
            statuses.append(out.stdout)
        assert statuses == ["201", "202"], server.log()
        assert re.search(r"`202 \{\"accepted\":true\}`", README)
    finally:
        server.stop()
