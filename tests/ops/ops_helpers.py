"""Shared by the operability tests: a configuration with every installed API and one all-powerful credential."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from support import CREDENTIALS, base_config

SECRET = "ops-secret-0123456789"
OPS = {"id": "ops", "secret": SECRET, "tenant": "ops", "grants": ["*:*"]}
WATCHER = {"id": "watcher", "secret": "watcher-secret-1", "tenant": "ops", "grants": ["gateway:metrics"]}
SALT = "a-random-salt-of-32-characters-x"


def every_api_config(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """SQLite storage, every built-in API (``plugins.enabled`` unset) and the installed ones, generous quotas."""
    config = base_config(tmp_path, **sections)
    config["plugins"] = {k: v for k, v in config["plugins"].items() if k != "enabled"}
    config["plugins"].setdefault("buildless", {"ip_salt": SALT})
    config["credentials"] = [*CREDENTIALS, OPS, WATCHER]
    quotas = config.setdefault("quotas", {})
    quotas["default"] = "1000000 per minute"
    return config


def auth_headers() -> dict[str, str]:
    """Headers that authenticate the `OPS` credential with every API's scheme at once."""
    return {"Authorization": f"Bearer {SECRET}", "X-API-Key": SECRET, "X-Hello-Key": SECRET}


def basic(cred: dict[str, Any]) -> str:
    """A Basic ``Authorization`` value for a credential."""
    return "Basic " + base64.b64encode(f"{cred['id']}:{cred['secret']}".encode()).decode()
