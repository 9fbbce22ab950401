"""`config/example-production.toml` works as shipped, with its secrets given by the environment.

The file is loaded unchanged; only what an operator sets outside it differs: the storage URL with its
password, the Redis URL, the credentials, the Buildless salt, and here (for a test on this machine) the
listen address, the worker count and TLS to the database (the test server has none). With those, the
real ``event-gateway check`` reaches a real PostgreSQL and Redis, and ``event-gateway serve`` stores an
event. The file's commented Elasticsearch alternative is checked the same way against `es_fake`.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import requests
from es_fake import VERSION, fake_cluster
from support import CLI, ROOT, start_server, toml_value

from gateway.config import validate_config

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "config" / "example-production.toml"
SECRET = "production-test-secret-0123456789"


def _credentials() -> str:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    return toml_value([{"id": "web-tracker", "secret_sha256": digest, "tenant": "example",
                        "grants": ["elastic_analytics:*"]}])


def _environment(storage_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "EVENT_GATEWAY_STORAGE__URL": storage_url,
        "EVENT_GATEWAY_QUOTAS__STORAGE_URL": redis_url,
        "EVENT_GATEWAY_CREDENTIALS": _credentials(),
        "EVENT_GATEWAY_PLUGINS__BUILDLESS__IP_SALT": "a-random-salt-for-the-test-0123",
        "EVENT_GATEWAY_SERVER__HOST": "127.0.0.1",
        "EVENT_GATEWAY_SERVER__WORKERS": "2",
        **extra,
    }


def _check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([CLI, "check", "--config", str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd=str(path.parent))


def test_every_key_is_documented_and_the_file_is_valid_as_shipped() -> None:
    text = EXAMPLE.read_text()
    config = validate_config(tomllib.loads(text), source="example-production.toml", environ={})
    assert config.storage["url"].startswith("postgresql://") and config.quotas["storage_url"].startswith("redis://")
    for line in text.splitlines():
        if re.match(r"^[a-z_]+ = ", line):
            assert "#" in line or line.startswith(("id =", "tenant =", "grants =")), f"undocumented: {line}"


def test_the_example_runs_on_postgresql_and_redis_with_secrets_from_the_environment(
        tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    path = tmp_path / "example-production.toml"
    path.write_text(EXAMPLE.read_text())  # unchanged
    env = _environment(postgres_url, redis_url.rsplit("/", 1)[0] + "/4",
                       EVENT_GATEWAY_STORAGE__OPTIONS__SSLMODE="disable")
    done = _check(path, env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"storage postgresql \d+\.\d+[^;]* reachable; quota store reachable", done.stdout), done.stdout

    server = start_server(path, workers=2, env=env)
    try:
        headers = {"Authorization": f"Bearer {SECRET}"}
        assert requests.put(f"{server.url}/_application/analytics/site", headers=headers, timeout=10).status_code == 201
        posted = requests.post(f"{server.url}/_application/analytics/site/event/page_view", headers=headers,
                               json={"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "https://x"}},
                               timeout=10)
        assert posted.status_code == 202, posted.text
        health = requests.get(f"{server.url}/_gateway/health", timeout=10)
        assert health.status_code == 200, health.text
    finally:
        server.stop()


def _elasticsearch_variant() -> str:
    """The file with its commented Elasticsearch tables in place of the PostgreSQL ones."""
    text = EXAMPLE.read_text()
    start, end = text.index("[storage]\n"), text.index("# Elasticsearch instead")
    block = text[end:text.index("\n\n", end)].splitlines()[1:]
    uncommented = "\n".join(line.removeprefix("# ") for line in block)
    assert uncommented.startswith("[storage]\nurl = \"elasticsearch")
    rest = text[text.index("\n\n", end):]
    return text[:start] + uncommented + rest


def test_the_elasticsearch_alternative_is_valid_and_checks(tmp_path: Path, redis_url: str) -> None:
    variant = _elasticsearch_variant()
    config = validate_config(tomllib.loads(variant), source="es variant", environ={})
    assert config.storage["url"].startswith("elasticsearch+https://")
    assert {"retries", "retry_wait_ms", "api_key"} <= set(config.storage["options"])
    path = tmp_path / "example-es.toml"
    # the fake cluster speaks plain HTTP: without a CA file (TLS options with an http URL stop start-up)
    path.write_text("\n".join(line for line in variant.splitlines() if not line.startswith("ca_certs")))
    with fake_cluster() as (_cluster, port):
        env = _environment(f"elasticsearch://127.0.0.1:{port}", redis_url.rsplit("/", 1)[0] + "/4",
                           EVENT_GATEWAY_STORAGE__OPTIONS__API_KEY="aWQ6a2V5")
        done = _check(path, env)
    assert done.returncode == 0, done.stderr
    assert f"storage elasticsearch {VERSION} reachable, cluster health green" in done.stdout


def test_check_names_a_missing_secret_store(tmp_path: Path, postgres_url: str) -> None:
    from support import free_port

    path = tmp_path / "example-production.toml"
    path.write_text(EXAMPLE.read_text())
    env: dict[str, Any] = _environment(postgres_url, f"redis://127.0.0.1:{free_port()}/0",
                                       EVENT_GATEWAY_STORAGE__OPTIONS__SSLMODE="disable")
    done = _check(path, env)
    assert done.returncode == 1 and "quota store unreachable" in done.stderr
