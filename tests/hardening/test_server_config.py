"""`server.request_timeout` is validated like every other key and reaches the serving worker."""

from __future__ import annotations

import pytest

from gateway.buffered_worker import BufferedThreadWorker
from gateway.config import ConfigError, validate_config
from gateway.server import WORKER_CLASS, configure_worker, gunicorn_options


def test_default_is_at_most_30_seconds() -> None:
    assert 0 < validate_config({}, environ={}).server["request_timeout"] <= 30


@pytest.mark.parametrize("value", [0, -1, 301, "soon", True])
def test_bad_values_stop_start_up_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match="request_timeout"):
        validate_config({"server": {"request_timeout": value}}, environ={})


def test_environment_override_and_worker_settings() -> None:
    cfg = validate_config({"server": {"max_body_bytes": 2048}},
                          environ={"EVENT_GATEWAY_SERVER__REQUEST_TIMEOUT": "7.5"})
    saved = BufferedThreadWorker.request_timeout, BufferedThreadWorker.max_body_bytes
    try:
        configure_worker(cfg)
        assert (BufferedThreadWorker.request_timeout, BufferedThreadWorker.max_body_bytes) == (7.5, 2048)
    finally:
        BufferedThreadWorker.request_timeout, BufferedThreadWorker.max_body_bytes = saved
    options = gunicorn_options(cfg, host="127.0.0.1", port=8080, workers=2, threads=4)
    assert options["worker_class"] == WORKER_CLASS == "gateway.buffered_worker.BufferedThreadWorker"
