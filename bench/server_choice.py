"""Issue 10 item 1: which server survives stalled clients, and what does it cost in ingest throughput?

``python -m bench.server_choice`` starts every candidate of `bench.candidates` twice (gateway on SQLite and
the bare Flask route, 2 workers x 4 threads each), then in one run:

1. throughput: BENCH_ROUNDS rounds (default 5); each round visits every candidate in a rotated order and runs
   the bare app then the gateway with the same load generator (`bench.load`); medians are reported;
2. resilience: against each gateway, 200 connections stalled in headers and 50 in a body, then 50 ordinary
   requests (health and ingest, 10 at a time): how many succeed, their median and worst latency, and whether
   the stalled connections are dropped within the request timeout (3 s here) plus 7 s.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import BenchError, env_number
from .bare_app import PATH
from .candidates import CANDIDATES
from .ingest import BODY, HEADERS
from .load import run_load, tool
from .servers import AUTHORIZATION, COLLECTION, REPO, Server, _wait_ready, free_port, request, write_gateway_config

TIMEOUT = 3.0


def start(name: str, app: str, workdir: Path, config: Path | None) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.candidates", name, app, "--port", str(port), "--workers", "2",
            "--threads", "4", "--timeout", str(TIMEOUT)] + (["--config", str(config)] if config else [])
    log_path = workdir / f"{name}-{app}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=str(REPO))
    server = Server(f"{name}-{app}", port, 2, 4, process, log_path)
    try:
        if app == "gateway":
            _wait_ready(server, "GET", "/_gateway/health", None, {})
            status, body = request(port, "PUT", f"/_application/analytics/{COLLECTION}", None,
                                   {"Authorization": AUTHORIZATION})
            if status not in (200, 201):
                raise BenchError(f"PUT collection: {status} {body[:200]!r}")
        else:
            _wait_ready(server, "POST", PATH, BODY, {"Content-Type": "application/json"})
    except BaseException:
        server.stop()
        raise
    return server


def _normal(port: int, number: int) -> tuple[int, float]:
    began = time.monotonic()
    try:
        if number % 2:
            status, _ = request(port, "GET", "/_gateway/health", timeout=15)
        else:
            status, _ = request(port, "POST", PATH, BODY, HEADERS, timeout=15)
    except OSError:
        status = 0
    return status, time.monotonic() - began


def _closed(sock: socket.socket, deadline: float) -> bool:
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


def resilience(port: int) -> dict[str, Any]:
    stalled: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /api/analytics/events HTTP/1.1\r\nHost: x\r\n")
            stalled.append(sock)
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Authorization: {AUTHORIZATION}\r\nContent-Length: 1000\r\n\r\n{{".encode())
            stalled.append(sock)
        opened = time.monotonic()
        time.sleep(0.5)
        began = time.monotonic()
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda n: _normal(port, n), range(50)))
        took = time.monotonic() - began
        latencies = sorted(latency for _, latency in results)
        ok = sum(1 for status, _ in results if 200 <= status < 300)
        deadline = opened + TIMEOUT + 7
        open_after = sum(1 for sock in stalled if not _closed(sock, deadline))
    finally:
        for sock in stalled:
            sock.close()
    return {"normal_ok": ok, "normal_total": len(results), "p50_ms": statistics.median(latencies) * 1000,
            "max_ms": latencies[-1] * 1000, "took_s": took, "stalled_open_after": open_after,
            "passed": ok == len(results) and latencies[-1] < 5 and open_after == 0}


def run() -> dict[str, Any]:
    names = [n for n in (sys.argv[1:] or CANDIDATES)]
    rounds = int(env_number("BENCH_ROUNDS", 5, minimum=1))
    duration = round(env_number("BENCH_DURATION", 4, minimum=1))
    connections = int(env_number("BENCH_CONNECTIONS", 16, minimum=1))
    servers: dict[str, dict[str, Server]] = {}
    rps: dict[str, dict[str, list[float]]] = {n: {"bare": [], "gateway": []} for n in names}
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-choice-") as tmp:
        workdir = Path(tmp)
        try:
            for name in names:
                cand_dir = workdir / name
                cand_dir.mkdir()
                config = write_gateway_config(cand_dir, f"sqlite:///{cand_dir}/bench.db", workers=2, threads=4)
                servers[name] = {"gateway": start(name, "gateway", cand_dir, config),
                                 "bare": start(name, "bare", cand_dir, None)}
            for name in names:  # warm-up
                for app in ("bare", "gateway"):
                    run_load(servers[name][app].port, PATH, body=BODY, headers=HEADERS, duration=1,
                             connections=connections, threads=2)
            for round_no in range(rounds):
                order = names[round_no % len(names):] + names[:round_no % len(names)]
                for name in order:
                    for app in ("bare", "gateway"):
                        result = run_load(servers[name][app].port, PATH, body=BODY, headers=HEADERS,
                                          duration=duration, connections=connections, threads=2)
                        if result.non_2xx or sum(result.socket_errors.values()):
                            print(f"  {name} {app}: {result.non_2xx} non-2xx, {result.socket_errors}", flush=True)
                        rps[name][app].append(result.rps)
                    print(f"  round {round_no + 1} {name}: bare {rps[name]['bare'][-1]:.0f} gateway "
                          f"{rps[name]['gateway'][-1]:.0f} req/s", flush=True)
            for name in names:
                res[name] = resilience(servers[name]["gateway"].port)
                print(f"  resilience {name}: {res[name]}", flush=True)
        finally:
            for pair in servers.values():
                for server in pair.values():
                    server.stop()
    print(f"\nserver choice: SQLite, 2 workers x 4 threads, {tool()} {connections} connections, "
          f"{duration}s x {rounds} rounds (rotated order), medians")
    print(f"{'candidate':<10} {'bare req/s':>10} {'gw req/s':>9} {'ratio':>6}  stalled test (ok/50, p50, max, "
          "open after timeout)")
    table = {}
    for name in names:
        bare, gateway = statistics.median(rps[name]["bare"]), statistics.median(rps[name]["gateway"])
        ratio = statistics.median(g / b for g, b in zip(rps[name]["gateway"], rps[name]["bare"], strict=True))
        r = res[name]
        print(f"{name:<10} {bare:>10.0f} {gateway:>9.0f} {ratio:>6.3f}  {'PASS' if r['passed'] else 'FAIL'} "
              f"{r['normal_ok']}/50 p50 {r['p50_ms']:.0f} ms max {r['max_ms']:.0f} ms, "
              f"{r['stalled_open_after']} open")
        table[name] = {"bare_rps": bare, "gateway_rps": gateway, "ratio": ratio, "rounds": rps[name],
                       "resilience": r}
    return {"benchmark": "server_choice", "candidates": table, "passed": True}


if __name__ == "__main__":
    run()
