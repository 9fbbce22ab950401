"""The ``event-gateway`` command: serve, plugins, check, keys new, export.

Every subcommand validates the configuration first and stops with a one-line reason (exit code 2 for
configuration, 1 for an unreachable store) instead of a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from datetime import UTC, datetime
from typing import Any

import click

from . import __version__
from .config import Config, ConfigError, check_demo_secret, config_path, load_config

QUIET_ENV = "EVENT_GATEWAY_QUIET_STARTUP"  # = gateway.app.QUIET_ENV (not imported: it pulls in Flask and plugins)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # = gateway.metrics.MULTIPROC_ENV

CONFIG_OPTION = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                             help="TOML file (default: $EVENT_GATEWAY_CONFIG, else config/gateway.toml)")


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"event-gateway: {message}", err=True)
    sys.exit(code)


def _config(config_file: str | None) -> Config:
    try:
        return load_config(config_file)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable


def _app(cfg: Config, *, quiet: bool = True) -> Any:
    """The app, or a one-line failure; start-up warnings are printed only when not `quiet` (serve, check)."""
    from .app import create_app
    from .plugins import PluginLoadError

    try:
        return create_app(cfg, quiet=quiet)
    except (ConfigError, PluginLoadError, ValueError) as exc:
        _fail(str(exc))


@click.group()
@click.version_option(__version__, prog_name="event-gateway")
def main() -> None:
    """Event Gateway: one service speaking several vendors' analytics-event APIs."""


@main.command()
@CONFIG_OPTION
@click.option("--host", help="Interface to bind (default: server.host)")
@click.option("--port", type=int, help="Port (default: server.port)")
@click.option("--workers", type=int, help="Worker processes (default: server.workers)")
@click.option("--threads", type=int, help="Threads per worker (default: server.threads)")
def serve(config_file: str | None, host: str | None, port: int | None, workers: int | None,
          threads: int | None) -> None:
    """Serve the gateway with gunicorn."""
    from .server import serve as run
    from .state import get_state
    from .urls import redact_url

    cfg = _config(config_file)
    host = host or cfg.server["host"]
    try:
        check_demo_secret(cfg.credentials, host)  # --host may move a loopback config off this machine
    except ConfigError as exc:
        _fail(str(exc))
    port = port or cfg.server["port"]
    workers = workers or cfg.server["workers"]
    threads = threads or cfg.server["threads"]
    _check_port(host, port)
    metrics_dir = _metrics_dir()  # before anything imports prometheus_client: workers write their figures there
    try:
        app = _app(cfg, quiet=False)  # validate everything in the master (warnings printed once) before forking
        os.environ[QUIET_ENV] = "1"  # the workers build the same app: no second copy of the warnings
        state = get_state(app)
        if workers > 1 and not state.backend.multiprocess_safe:
            _fail(f"storage.url {redact_url(cfg.storage['url'])} keeps events inside one process: with {workers} "
                  "workers each would see its own data. Use --workers 1, or sqlite:///var/events.db for several "
                  "workers.")
        state.backend.close()
        if workers > 1 and cfg.quotas["storage_url"].startswith("memory://"):
            click.echo("event-gateway: note: quotas.storage_url is memory://, so each worker counts quotas alone; "
                       "use redis:// to hold them across workers", err=True)
        click.echo(f"event-gateway {__version__} listening on http://{host}:{port} "
                   f"({workers} workers x {threads} threads)")
        click.echo(f"  config:  {cfg.source}")
        click.echo(f"  storage: {redact_url(cfg.storage['url'])}")
        click.echo(f"  quotas:  {redact_url(cfg.quotas['storage_url'])}, default {cfg.quotas['default']}")
        click.echo(f"  plugins: {', '.join(sorted(state.apis)) or 'none'}")
        click.echo(f"  docs:    http://{host}:{port}/docs (OpenAPI: /openapi.json, metrics: /metrics)")
        sys.stdout.flush()
        run(cfg, host=host, port=port, workers=workers, threads=threads)
    finally:  # (matters when embedded or tested in-process: the environment is the caller's again)
        os.environ.pop(QUIET_ENV, None)
        if metrics_dir is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _check_port(host: str, port: int) -> None:
    """Stop with one clear line when the port is taken, before anything says it is listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            _fail(f"port {port} on {host} {reason}: choose another with --port N "
                  f"or EVENT_GATEWAY_SERVER__PORT=N", 1)


def _metrics_dir() -> str | None:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this server (None when the operator set one), removed at exit."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    path = tempfile.mkdtemp(prefix="event-gateway-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


@main.command()
@CONFIG_OPTION
def openapi(config_file: str | None) -> None:
    """Write the OpenAPI 3.1 description of the configured APIs to stdout (as GET /openapi.json serves it)."""
    from .openapi_spec import openapi_document

    click.echo(json.dumps(openapi_document(_app(_config(config_file))), indent=2))


@main.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output")
def plugins(config_file: str | None, as_json: bool) -> None:
    """List loaded plugins with versions, routes and hooks."""
    from .plugins import describe_plugins
    from .state import get_state

    state = get_state(_app(_config(config_file)))
    described = describe_plugins(state.pm, state.apis)
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for plugin in described:
        click.echo(f"{plugin['name']} {plugin['version']}{' (built-in)' if plugin['builtin'] else ''}")
        click.echo(f"  hooks:  {', '.join(plugin['hooks'])}")
        for grant in plugin["grants"]:
            click.echo(f"  grant:  {grant}")
        for route in plugin["routes"]:
            click.echo(f"  route:  {route}")


@main.command()
@CONFIG_OPTION
def check(config_file: str | None) -> None:
    """Validate the configuration and reach the storage backend and the quota store."""
    from .state import get_state
    from .storage import BackendUnavailable

    cfg = _config(config_file)
    state = get_state(_app(cfg, quiet=False))  # check shows the start-up warnings: it is the validation command
    try:
        facts = state.backend.health()
    except BackendUnavailable as exc:
        _fail(f"storage unreachable: {exc}", 1)
    from .urls import redact_url

    reason = "no answer"
    try:
        reachable = state.quotas is not None and state.quotas.reachable()
    except Exception as exc:  # any driver error means unreachable
        reachable, reason = False, type(exc).__name__
    if not reachable:
        _fail(f"quota store unreachable: {redact_url(cfg.quotas['storage_url'])} ({reason})", 1)
    version = f" {facts['server_version']}" if facts.get("server_version") else ""
    health = f", cluster health {facts['cluster_health']}" if facts.get("cluster_health") else ""  # Elasticsearch
    click.echo(f"ok: {config_path(config_file)} is valid; storage {facts.get('backend', '?')}{version} reachable"
               f"{health}; quota store reachable; {len(state.apis)} APIs, {len(state.credentials)} credentials")


@main.group()
def keys() -> None:
    """Credentials."""


@keys.command("new")
@click.option("--tenant", required=True, help="The tenant (data space) the key acts for")
@click.option("--grant", "grants", multiple=True, required=True, help="plugin:action[:stream], repeatable")
@click.option("--id", "key_id", help="Public id (default: random)")
def keys_new(tenant: str, grants: tuple[str, ...], key_id: str | None) -> None:
    """Print a ready [[credentials]] block with a fresh secret and its sha256."""
    from .auth import sha256_hex
    from .config import CredentialSchema

    key_id = key_id or f"key-{secrets.token_hex(4)}"
    secret = secrets.token_urlsafe(32)
    problems = CredentialSchema().validate({"id": key_id, "tenant": tenant, "grants": list(grants),
                                            "secret_sha256": sha256_hex(secret)})
    if problems:
        _fail(f"invalid key: {problems}")
    for grant in grants:
        problem = _grant_problem(grant)
        if problem:
            _fail(f"invalid key: {problem}")
    import base64

    click.echo(f"# secret (shown once, store it in the client): {secret}")
    click.echo(f"# ApiKey header value: {base64.b64encode(f'{key_id}:{secret}'.encode()).decode()}")
    click.echo("[[credentials]]")
    click.echo(f"id = {json.dumps(key_id)}")
    click.echo(f"secret_sha256 = \"{sha256_hex(secret)}\"")
    click.echo(f"tenant = {json.dumps(tenant)}")
    click.echo(f"grants = [{', '.join(json.dumps(g) for g in grants)}]")


def _grant_problem(grant: str) -> str | None:
    """Why a grant would fail `check`, judged against every installed plugin's declared actions."""
    from .plugins import PluginLoadError, build_plugin_manager, declared_apis, known_plugin_names
    from .vendor import check_grant

    try:
        declared = declared_apis(build_plugin_manager(None))
    except (ConfigError, PluginLoadError) as exc:
        return f"cannot load the installed plugins to check the grant: {exc}"
    return check_grant(grant, {name: api for name, (_, api) in declared.items()}, known_plugin_names())


def _time_ms(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--{name}: expected epoch milliseconds or an ISO date/time, got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@main.command()
@CONFIG_OPTION
@click.option("--tenant", required=True)
@click.option("--plugin", "plugin_name", help="Only this plugin's streams (default: every plugin)")
@click.option("--stream", "streams", multiple=True, help="Only these streams (repeatable; needs --plugin)")
@click.option("--since", help="Events at or after (epoch ms or ISO time, UTC)")
@click.option("--until", help="Events before (epoch ms or ISO time, UTC)")
def export(config_file: str | None, tenant: str, plugin_name: str | None, streams: tuple[str, ...],
           since: str | None, until: str | None) -> None:
    """Write the tenant's stored events as NDJSON to stdout, streamed page by page.

    Says so on stderr when nothing matched; on a terminal, stderr also shows how many events were written.
    """
    from .state import get_state
    from .storage import BackendUnavailable

    if streams and not plugin_name:
        _fail("--stream needs --plugin")
    start, end = _time_ms(since, "since"), _time_ms(until, "until")
    backend = get_state(_app(_config(config_file))).backend
    out = sys.stdout
    progress = _Progress() if sys.stderr.isatty() else None
    written = 0
    try:
        for name in [plugin_name] if plugin_name else backend.plugins_of(tenant):
            for event in backend.iter_events(tenant, name, streams or None, start, end):
                out.write(_ndjson_line(event.to_dict()))
                written += 1
                if progress is not None:
                    progress.tick(written)
    except BackendUnavailable as exc:
        _fail(f"storage unreachable: {exc}", 1)
    except BrokenPipeError:
        sys.stderr.close()
        return
    out.flush()
    if progress is not None:
        progress.done(written)
    if not written:
        where = f"plugin [{plugin_name}]" + (f" streams [{', '.join(streams)}]" if streams else "") \
            if plugin_name else "any plugin"
        window = " in that time range" if since or until else ""
        click.echo(f"event-gateway: no events for tenant [{tenant}] in {where}{window}", err=True)


class _Progress:
    """``exported N events`` on stderr, redrawn at most every half second (only used on a terminal)."""

    INTERVAL = 0.5

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self._next = self._clock()  # the first line soon, then every INTERVAL

    def tick(self, count: int) -> None:
        """Redraw the line when the interval has passed."""
        if count % 256 == 0 and self._clock() >= self._next:
            self._next = self._clock() + self.INTERVAL
            click.echo(f"\rexported {count} events", err=True, nl=False)

    def done(self, count: int) -> None:
        """The final count, on its own line."""
        click.echo(f"\rexported {count} events", err=True)


def _ndjson_line(doc: dict[str, Any]) -> str:
    """One export line: readable UTF-8, escaped only when the text cannot be encoded (never a lost line)."""
    line = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(doc, separators=(",", ":"))
    return line + "\n"


if __name__ == "__main__":
    main()
