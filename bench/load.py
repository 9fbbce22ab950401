"""The load generator: wrk when installed, else a multi-process Python client; same numbers either way.

Exists so every server is driven by the same tool with the same settings and read the same way: req/s,
p50/p99 latency, and an exact count of 2xx answers (wrk counts them in a Lua ``response`` callback, since
its own "Non-2xx or 3xx responses" line ignores 3xx). ``BENCH_LOADGEN=python`` forces the fallback.

The fallback runs one process per load thread (so the client is not held to one core by the GIL), each
with keep-alive `http.client` connections in threads; it is slower than wrk, which shows up as lower
absolute req/s for both servers and a ratio pulled towards 1, so reports name the tool.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import BenchError

RESULT_MARKER = "BENCH_RESULT "


@dataclass
class LoadResult:
    """One measured run against one server."""

    tool: str
    duration_s: float
    requests: int
    ok: int  # 2xx answers
    non_2xx: int
    socket_errors: dict[str, int]
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)  # python generator only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tool() -> str:
    """"wrk" or "python" (``BENCH_LOADGEN`` overrides the detection)."""
    forced = os.environ.get("BENCH_LOADGEN", "").strip().lower()
    if forced in ("wrk", "python"):
        if forced == "wrk" and not shutil.which("wrk"):
            raise BenchError("BENCH_LOADGEN=wrk but wrk is not on PATH")
        return forced
    return "wrk" if shutil.which("wrk") else "python"


def wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).splitlines()[0].strip() if (out.stdout + out.stderr) else None


def run_load(port: int, path: str, *, body: bytes, headers: dict[str, str], duration: float, connections: int,
             threads: int) -> LoadResult:
    """POST `body` to ``127.0.0.1:port/path`` for `duration` seconds over `connections` keep-alive connections."""
    if tool() == "wrk":
        return _wrk(port, path, body, headers, duration, connections, threads)
    return _python(port, path, body, headers, duration, connections, threads)


# -- wrk ----------------------------------------------------------------------------------------------

def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text + "]":  # a text ending in "]" would close the bracket early
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def wrk_script(body: bytes, headers: dict[str, str]) -> str:
    """POST with fixed body/headers; count 2xx per thread; print one JSON line in `done`."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append("""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0 end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 end
end
function done(summary, latency, requests)
  local total_ok = 0
  for _, t in ipairs(threads) do total_ok = total_ok + t:get("ok") end
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"ok":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    "RESULT_MARKER", summary.requests, total_ok, summary.duration, latency:percentile(50.0),
    latency:percentile(99.0), e.connect, e.read, e.write, e.status, e.timeout))
end
""".replace("RESULT_MARKER", RESULT_MARKER))
    return "\n".join(lines)


def _wrk(port: int, path: str, body: bytes, headers: dict[str, str], duration: float, connections: int,
         threads: int) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(wrk_script(body, headers))
        argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script),
                f"http://127.0.0.1:{port}{path}"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    text = out.stdout
    found = [line[len(RESULT_MARKER):] for line in text.splitlines() if line.startswith(RESULT_MARKER)]
    if out.returncode != 0 or not found:
        raise BenchError(f"wrk failed ({out.returncode}): {' '.join(argv)}\n{text}\n{out.stderr}")
    data = json.loads(found[-1])
    rps_line = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    rps = float(rps_line.group(1)) if rps_line else data["requests"] / (data["duration_us"] / 1e6)
    non_2xx_line = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    non_2xx = data["requests"] - data["ok"]
    if non_2xx_line and int(non_2xx_line.group(1)) > non_2xx:  # cannot happen; keep wrk's word if it does
        non_2xx = int(non_2xx_line.group(1))
    return LoadResult(
        tool="wrk", duration_s=data["duration_us"] / 1e6, requests=data["requests"], ok=data["ok"], non_2xx=non_2xx,
        socket_errors={k: data[k] for k in ("connect", "read", "write", "timeout")}, rps=rps,
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
    )


# -- Python fallback ------------------------------------------------------------------------------------

def _client_thread(port: int, path: str, body: bytes, headers: dict[str, str], start_at: float, stop_at: float,
                   out: dict[str, Any]) -> None:
    latencies: list[float] = out["latencies"]
    statuses: dict[int, int] = out["statuses"]
    conn: http.client.HTTPConnection | None = None
    while time.time() < start_at:
        time.sleep(0.001)
    while time.time() < stop_at:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        began = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            out["errors"] += 1
            conn.close()
            conn = None
            continue
        latencies.append(time.perf_counter() - began)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def _client_process(port: int, path: str, body: bytes, headers: dict[str, str], start_at: float, stop_at: float,
                    connections: int, queue: Any) -> None:
    outs = [{"latencies": [], "statuses": {}, "errors": 0} for _ in range(connections)]
    workers = [threading.Thread(target=_client_thread, args=(port, path, body, headers, start_at, stop_at, out))
               for out in outs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    statuses: dict[int, int] = {}
    for out in outs:
        for status, count in out["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    queue.put({"latencies": [x for out in outs for x in out["latencies"]], "statuses": statuses,
               "errors": sum(out["errors"] for out in outs)})


def percentile(sorted_values: list[float], percent: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    rank = (len(sorted_values) - 1) * percent / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _python(port: int, path: str, body: bytes, headers: dict[str, str], duration: float, connections: int,
            threads: int) -> LoadResult:
    processes = max(1, min(threads, connections))
    share = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.5  # every process starts and stops on the same wall-clock window
    stop_at = start_at + duration
    procs = [ctx.Process(target=_client_process, args=(port, path, body, headers, start_at, stop_at, n, queue))
             for n in share]
    for proc in procs:
        proc.start()
    parts = [queue.get(timeout=duration + 60) for _ in procs]
    for proc in procs:
        proc.join(10)
    latencies = sorted(x for part in parts for x in part["latencies"])
    statuses: dict[int, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    requests = sum(statuses.values())
    return LoadResult(
        tool="python", duration_s=duration, requests=requests, ok=ok, non_2xx=requests - ok,
        socket_errors={"total": sum(part["errors"] for part in parts)}, rps=requests / duration,
        p50_ms=percentile(latencies, 50) * 1000, p99_ms=percentile(latencies, 99) * 1000,
        statuses={str(k): v for k, v in sorted(statuses.items())},
    )
