"""The reference's curl workflow, verbatim, against a real served gateway (gunicorn, 2 workers, SQLite):
create ``myProducts``, publish the two events, ``SELECT * FROM myProducts`` returns both rows."""

from __future__ import annotations

import calendar
import json
import shutil
import subprocess
import time

import pytest
from appdynamics.appd_http_helpers import (
    ACCOUNT,
    DOC_FIELDS,
    DOC_PUBLISH_BODY,
    DOC_QUERY,
    DOC_ROWS,
    DOC_SCHEMA_BODY,
    KEY,
    QUERY_EXAMPLE_ACCOUNT,
)
from support import RunningServer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]


def curl(*args: str) -> tuple[int, str]:
    """Run curl with the reference's arguments; return (HTTP status, body)."""
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30,
                         check=True)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def test_reference_curl_workflow(appd_server: RunningServer) -> None:
    endpoint = appd_server.url.removeprefix("http://")  # the reference writes "<events_service_endpoint>:9080"
    before = int(time.time() * 1000)
    # Define the schema (the reference's command, with its endpoint replaced)
    status, body = curl("-X", "POST", f"{endpoint}/events/schema/myProducts",
                        f"-HX-Events-API-AccountName:{ACCOUNT}", f"-HX-Events-API-Key:{KEY}",
                        "-HContent-type: application/vnd.appd.events+json;v=2", "-d", DOC_SCHEMA_BODY)
    assert (status, body) == (201, "")
    # Publish the two events
    status, body = curl("-X", "POST", f"{endpoint}/events/publish/myProducts",
                        f"-HX-Events-API-AccountName:{ACCOUNT}", f"-HX-Events-API-Key:{KEY}",
                        "-HContent-type: application/vnd.appd.events+json;v=2", "-d", DOC_PUBLISH_BODY)
    assert (status, body) == (200, "")
    after = int(time.time() * 1000)
    # Query the event data, as the same account (the reference's query example names another account,
    # customer1_7xxx-467a-bccc-xxx: see test_query_example_account_is_another_tenant)
    status, body = curl("-X", "POST", f"http://{endpoint}/events/query", f"-HX-Events-API-AccountName:{ACCOUNT}",
                        f"-HX-Events-API-Key:{KEY}", "-HContent-type: application/vnd.appd.events+text;v=2",
                        "-d", DOC_QUERY)
    assert status == 200, body
    (element,) = json.loads(body)
    assert element["label"] == "0"
    assert element["schema"] == "myProducts"
    assert element["fields"] == DOC_FIELDS
    assert element["moreData"] is False and element["total"] == 2
    rows = {row[0]: row for row in element["results"]}
    assert set(rows) == set(DOC_ROWS)
    for event_id, row in rows.items():
        assert row[:6] == DOC_ROWS[event_id]
        event_ts, pickup_ts = row[6], row[7]
        assert event_ts == pickup_ts  # no eventTimestamp sent: it defaults to the pickup time
        assert len(event_ts) == 24 and event_ts.endswith("Z") and event_ts[10] == "T" and event_ts[19] == "."
        stamp = calendar.timegm(time.strptime(event_ts[:19], "%Y-%m-%dT%H:%M:%S"))
        assert before - 1000 <= stamp * 1000 + int(event_ts[20:23]) <= after + 1000


def test_query_example_account_is_another_tenant(appd_server: RunningServer) -> None:
    """The reference's query example uses the account customer1_7xxx-467a-bccc-xxx with the same key: that
    account is not the key's tenant here, so the key is refused (401) rather than reading another account."""
    status, body = curl("-X", "POST", f"{appd_server.url}/events/query",
                        f"-HX-Events-API-AccountName:{QUERY_EXAMPLE_ACCOUNT}", f"-HX-Events-API-Key:{KEY}",
                        "-HContent-type: application/vnd.appd.events+text;v=2", "-d", DOC_QUERY)
    assert status == 401
    error = json.loads(body)
    assert (error["statusCode"], error["code"]) == (401, "Unauthorized")
