"""The event-gateway command: keys, check, plugins, serve's refusals, export."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from click.testing import CliRunner
from support import base_config, free_port, write_config

from gateway import create_app
from gateway.api import Event, Stream
from gateway.cli import main
from gateway.config import validate_config
from gateway.state import get_state


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_keys_new_prints_a_valid_credentials_block() -> None:
    result = _run("keys", "new", "--tenant", "acme", "--grant", "elastic_analytics:post_event", "--grant",
                  "elastic_analytics:manage:*")
    assert result.exit_code == 0
    secret = re.search(r"secret \(shown once, store it in the client\): (\S+)", result.output).group(1)
    block = tomllib.loads(result.output)["credentials"][0]
    assert block["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert block["tenant"] == "acme"
    assert block["grants"] == ["elastic_analytics:post_event", "elastic_analytics:manage:*"]
    validate_config({"credentials": [block]}, environ={})
    again = _run("keys", "new", "--tenant", "acme", "--grant", "buildless:emit")
    assert tomllib.loads(again.output)["credentials"][0]["secret_sha256"] != block["secret_sha256"]


def test_keys_new_refuses_bad_grants() -> None:
    result = _run("keys", "new", "--tenant", "acme", "--grant", "no-colon")
    assert result.exit_code == 2 and "grants" in result.output


def test_check_passes_and_fails_with_one_line(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.toml", base_config(tmp_path))
    ok = _run("check", "--config", str(good))
    assert ok.exit_code == 0 and ok.output.startswith("ok:")
    bad = write_config(tmp_path / "bad.toml", {**base_config(tmp_path), "server": {"prot": 1}})
    failed = _run("check", "--config", str(bad))
    assert failed.exit_code == 2 and "server.prot" in failed.output and failed.output.count("\n") == 1
    no_redis = write_config(tmp_path / "redis.toml", base_config(
        tmp_path, quotas={"storage_url": f"redis://127.0.0.1:{free_port()}/0"}))
    down = _run("check", "--config", str(no_redis))
    assert down.exit_code == 1 and "quota store unreachable" in down.output


def test_plugins_lists_routes_and_hooks(tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.toml", base_config(tmp_path))
    result = _run("plugins", "--config", str(config), "--json")
    described = {p["name"]: p for p in json.loads(result.output)}
    assert "POST /_application/analytics/<collection>/event/<event_type>" in described["elastic_analytics"]["routes"]
    assert "register_apis" in described["elastic_analytics"]["hooks"]
    assert "storage_backends" in described["backends.sqlite"]["hooks"]
    text = _run("plugins", "--config", str(config)).output
    assert "elastic_analytics 0.1.0 (built-in)" in text


def test_serve_refuses_memory_storage_with_several_workers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.toml", base_config(tmp_path, storage={"url": "memory://"}))
    result = _run("serve", "--config", str(config), "--workers", "2", "--port", str(free_port()))
    assert result.exit_code == 2
    assert "memory://" in result.output and "--workers 1" in result.output


def test_export_streams_ndjson_with_filters(tmp_path: Path) -> None:
    raw = base_config(tmp_path)
    app = create_app(raw)
    backend = get_state(app).backend
    for name in ("shop", "blog"):
        backend.create_stream(Stream("acme", "elastic_analytics", name))
    backend.create_stream(Stream("globex", "elastic_analytics", "shop"))
    events = [Event("acme", "elastic_analytics", "shop" if i % 3 else "blog", "page_view", {"n": i},
                    timestamp=1_700_000_000_000 + i, received_at=1_700_000_000_000 + i, id=f"e{i:05d}")
              for i in range(2500)]
    backend.append(events)
    backend.append([Event("globex", "elastic_analytics", "shop", "page_view", {"n": -1})])
    config = write_config(tmp_path / "g.toml", raw)

    everything = [json.loads(line) for line in _run("export", "--config", str(config), "--tenant", "acme").output
                  .splitlines()]
    assert [e["id"] for e in everything] == sorted(e.id for e in events)
    assert all(e["tenant"] == "acme" for e in everything)
    assert everything[10]["data"] == {"n": 10}

    shop = _run("export", "--config", str(config), "--tenant", "acme", "--plugin", "elastic_analytics",
                "--stream", "shop", "--since", str(1_700_000_000_100), "--until", "2023-11-14T22:13:20.200Z")
    ids = [json.loads(line)["id"] for line in shop.output.splitlines()]
    assert ids == [f"e{i:05d}" for i in range(100, 200) if i % 3]

    nobody = _run("export", "--config", str(config), "--tenant", "nobody")
    assert nobody.exit_code == 0 and nobody.stdout == ""
    assert nobody.stderr == "event-gateway: no events for tenant [nobody] in any plugin\n"
    bad = _run("export", "--config", str(config), "--tenant", "acme", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_redact_url_keeps_the_form_and_drops_secrets() -> None:
    from gateway.urls import redact_url

    assert redact_url("sqlite:///var/events.db") == "sqlite:///var/events.db"
    assert redact_url("memory://") == "memory://"
    assert redact_url("redis://:pw@cache:6379/0?ssl=1") == "redis://cache:6379/0"
    assert redact_url("elasticsearch+https://user:secret@es:9200") == "elasticsearch+https://es:9200"
    assert redact_url("elasticsearch://u:p@[::1]:9200") == "elasticsearch://[::1]:9200"


def test_check_never_prints_the_quota_store_password(tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.toml", base_config(
        tmp_path, quotas={"storage_url": f"redis://:SuperSecretPw@127.0.0.1:{free_port()}/0"}))
    result = _run("check", "--config", str(config))
    assert result.exit_code == 1 and "SuperSecretPw" not in result.output and "127.0.0.1" in result.output
