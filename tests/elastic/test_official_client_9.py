"""The official `elasticsearch` Python client 9.x runs the same tests as 8.x (test_official_client.py).

Why a subprocess: the test extra pins ``elasticsearch<9`` (the 8.x client is what most users have, and the
Elasticsearch backend's tests use it), and two majors of one package cannot be imported in one interpreter.
So 9.x is installed with ``pip install --target`` into a directory of the active virtualenv (once per
requirement: a stamp file remembers it) and the unchanged 8.x test module runs again in a child pytest whose
``PYTHONPATH`` starts with that directory. The module checks it really got 9.x
(`test_the_client_is_the_one_asked_for`) and starts its gateway without the directory, so only the client
differs. Parametrising by import path inside one process would need two copies of `elasticsearch` and
`elastic_transport` under different module names, which is not how anyone runs the client.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REQUIREMENT = "elasticsearch>=9,<10"
TARGET = Path(sys.prefix) / "clients" / "elasticsearch9"
MODULE = Path(__file__).with_name("test_official_client.py")


@pytest.fixture(scope="session")
def es9_dir() -> Path:
    """The 9.x client and its dependencies, installed from PyPI by pip into their own directory."""
    stamp = TARGET / ".requirement"
    if not stamp.is_file() or stamp.read_text() != REQUIREMENT:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--no-warn-conflicts", "--upgrade", "--target", str(TARGET), REQUIREMENT],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"pip could not install {REQUIREMENT}:\n{done.stdout}\n{done.stderr}"
        stamp.write_text(REQUIREMENT)
    return TARGET


def _collected_with_8x() -> int:
    """How many tests the module has (its parametrisation does not depend on the client)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           str(MODULE)], cwd=MODULE.parent.parent.parent, capture_output=True, text=True,
                          timeout=120)
    found = re.search(r"(\d+) tests? collected", done.stdout)
    assert found, done.stdout + done.stderr
    return int(found.group(1))


def test_python_client_9_passes_the_official_client_tests(es9_dir: Path, tmp_path: Path) -> None:
    expected = _collected_with_8x()
    env = {**os.environ, "EVENT_GATEWAY_TEST_ES_CLIENT": f"9:{es9_dir}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(es9_dir), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs",
                           f"--basetemp={tmp_path / 'run'}", str(MODULE)],
                          cwd=MODULE.parent.parent.parent, env=env, capture_output=True, text=True, timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) == expected, summary
    assert not re.search(r"failed|error|skipped|xfail", summary), summary
