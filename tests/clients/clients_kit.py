"""Helpers of the client tests: the clients' credentials, the Node package directory, `export` read-back."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

from support import CLI, RunningServer

NODE_DIR = Path(__file__).resolve().parent / "node"

#: One credential (and tenant) per client, so each test's export holds only what its client sent.
CLIENT_CREDENTIALS = [
    {"id": "node-es8", "secret": "node-es8-secret-1", "tenant": "node8", "grants": ["elastic_analytics:*"]},
    {"id": "node-es9", "secret": "node-es9-secret-1", "tenant": "node9", "grants": ["elastic_analytics:*"]},
    {"id": "browser", "secret": "browser-secret-1", "tenant": "shopfront",
     "grants": ["elastic_analytics:post_event"]},
    {"id": "shop-owner", "secret": "shop-owner-secret-1", "tenant": "shopfront",
     "grants": ["elastic_analytics:manage"]},
]
CLIENT_SECRETS = {c["id"]: c["secret"] for c in CLIENT_CREDENTIALS}


def encoded_api_key(cred_id: str) -> str:
    """The ``ApiKey`` value (base64 of ``id:secret``), what `keys new` prints and the tracker's `apiKey` takes."""
    return base64.b64encode(f"{cred_id}:{CLIENT_SECRETS[cred_id]}".encode()).decode()


def export(server: RunningServer, tenant: str) -> list[dict[str, Any]]:
    """The tenant's stored events, read back with `event-gateway export` as an operator would."""
    done = subprocess.run([CLI, "export", "--config", str(server.config_path), "--tenant", tenant,
                           "--plugin", "elastic_analytics"], capture_output=True, text=True, timeout=60,
                          cwd=server.config_path.parent)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
