"""Schema routes: create (201/409/400), read (200/404), PATCH add/rename (whole schema back; changes and
removals refused), delete (schema and events), and renames answering old events under the new name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from appdynamics.appd_http_helpers import (
    ACCOUNT,
    DOC,
    DOC_PUBLISH_BODY,
    DOC_SCHEMA_BODY,
    OTHER_ACCOUNT,
    OTHER_KEY,
    TEXT_V2,
    error_body,
    headers,
)

from gateway.state import get_state

PRODUCTS = {"id": "string", "productBrand": "string", "userRating": "integer", "price": "float",
            "productName": "string", "description": "string"}


def create(client: Any, name: str = "myProducts", body: Any = None, **kw: Any) -> Any:
    data = DOC_SCHEMA_BODY if body is None else (body if isinstance(body, str) else json.dumps(body))
    return client.post(f"/events/schema/{name}", headers=kw.pop("headers", DOC), data=data)


def query(client: Any, text: str, **kw: Any) -> dict[str, Any]:
    response = client.post("/events/query" + kw.get("params", ""), headers=headers(content_type=TEXT_V2), data=text)
    assert response.status_code == 200, response.get_data(as_text=True)
    (element,) = response.get_json()
    return element


def test_create_then_get(appd_client: Any) -> None:
    response = create(appd_client)
    assert response.status_code == 201
    assert response.get_data() == b"" and "Content-Type" not in response.headers
    got = appd_client.get("/events/schema/myProducts", headers=headers(content_type=None))
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/vnd.appd.events+json;v=2"
    assert got.get_json() == {"schema": PRODUCTS}
    assert list(got.get_json()["schema"]) == list(PRODUCTS)  # definition order


def test_create_existing_is_409_and_keeps_the_first(appd_client: Any) -> None:
    assert create(appd_client).status_code == 201
    again = create(appd_client, body={"schema": {"other": "string"}})
    assert again.status_code == 409
    assert error_body(again)["code"] == "Duplicate.EventType"
    assert appd_client.get("/events/schema/myProducts", headers=DOC).get_json() == {"schema": PRODUCTS}


def test_schemas_belong_to_the_account(appd_client: Any) -> None:
    assert create(appd_client).status_code == 201
    other = headers(key=OTHER_KEY, account=OTHER_ACCOUNT)
    missing = appd_client.get("/events/schema/myProducts", headers=other)
    assert missing.status_code == 404
    body = error_body(missing)
    assert body["code"] == "Missing.EventType"
    assert body["message"] == f"Unable to find metadata for event type [myProducts] and account [{OTHER_ACCOUNT}]"
    assert create(appd_client, headers=other).status_code == 201  # the same name is free for another account


@pytest.mark.parametrize(("name", "body", "field"), [
    ("1bad", {"schema": {"a": "string"}}, "schemaName"),
    ("bad-name", {"schema": {"a": "string"}}, "schemaName"),
    ("x" * 256, {"schema": {"a": "string"}}, "schemaName"),
    ("ok", {"schema": {"a": "long"}}, "a"),
    ("ok", {"schema": {"a": {"type": "string"}}}, "a"),
    ("ok", {"schema": {}}, "schema"),
    ("ok", {"schema": {"a": "string"}, "extra": 1}, "extra"),
    ("ok", {"fields": {"a": "string"}}, "schema"),
    ("ok", {"schema": {"a": "string", "a.b": "string"}}, "a.b"),
    ("ok", {"schema": {"a..b": "string"}}, "a..b"),
    ("ok", {"schema": {"eventTimestamp": "string"}}, "eventTimestamp"),
    ("ok", {"schema": {"bad`name": "string"}}, "bad`name"),
])
def test_create_refuses_bad_names_and_types(appd_client: Any, name: str, body: Any, field: str) -> None:
    response = create(appd_client, name=name, body=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_body(response)
    assert error["field"] == field
    assert error["code"] == "Invalid.Schema"
    if field not in ("schemaName", "schema", "extra"):
        assert field in error["message"]
    assert appd_client.get(f"/events/schema/{name}", headers=DOC).status_code in (400, 404)


def test_create_refuses_a_body_that_is_not_an_object(appd_client: Any) -> None:
    for body, field in (("[1]", "body"), ("", "body"), ("{", "body")):
        response = create(appd_client, body=body)
        assert response.status_code == 400
        assert error_body(response)["field"] == field


def test_dotted_names_with_spaces_recreate_built_in_shapes(appd_client: Any) -> None:
    schema = {"segments.userData.UserStep": "string", "metrics.End User Response Time (ms)": "float",
              "application": "string"}
    assert create(appd_client, name="browser_records", body={"schema": schema}).status_code == 201
    events = [{"segments": {"userData": {"UserStep": "pay"}}, "metrics.End User Response Time (ms)": 812.5,
               "application": "shop"},
              {"segments.userData.UserStep": "cart", "metrics": {"End User Response Time (ms)": 640}}]
    response = appd_client.post("/events/publish/browser_records", headers=DOC, data=json.dumps(events))
    assert response.status_code == 200, response.get_data(as_text=True)
    element = query(appd_client, "SELECT segments.userData.UserStep, metrics.`End User Response Time (ms)` AS "
                                 "\"Response Time\" FROM browser_records ORDER BY `Response Time` DESC")
    assert element["fields"] == [
        {"label": "segments.userData.UserStep", "field": "segments.userData.UserStep", "type": "string"},
        {"label": "Response Time", "field": "metrics.End User Response Time (ms)", "type": "float"}]
    assert element["results"] == [["pay", 812.5], ["cart", 640.0]]


def test_patch_add_and_rename_answers_the_whole_schema(appd_client: Any) -> None:
    assert create(appd_client).status_code == 201
    response = appd_client.patch("/events/schema/myProducts", headers=DOC,
                                 data=json.dumps({"add": {"stock": "integer"}, "rename": {"productName": "name"}}))
    assert response.status_code == 200
    expected = {"id": "string", "productBrand": "string", "userRating": "integer", "price": "float",
                "name": "string", "description": "string", "stock": "integer"}
    assert response.get_json() == {"schema": expected}
    assert appd_client.get("/events/schema/myProducts", headers=DOC).get_json() == {"schema": expected}
    # the array form, applied in order; adding a field again with the same type changes nothing
    response = appd_client.patch("/events/schema/myProducts", headers=DOC, data=json.dumps(
        [{"rename": {"name": "title"}}, {"add": {"stock": "integer", "sold": "date"}}]))
    assert response.status_code == 200
    assert list(response.get_json()["schema"]) == ["id", "productBrand", "userRating", "price", "title",
                                                   "description", "stock", "sold"]


@pytest.mark.parametrize(("body", "field"), [
    ({"add": {"price": "string"}}, "price"),          # change a type
    ({"remove": ["price"]}, "remove"),                # remove
    ({"delete": {"price": "float"}}, "delete"),
    ({"rename": {"price": None}}, "price"),           # rename to nothing = remove
    ({"rename": {"nope": "x"}}, "nope"),
    ({"rename": {"price": "id"}}, "id"),              # onto an existing field
    ({"rename": {"eventTimestamp": "t"}}, "eventTimestamp"),
    ({"add": {"x": "decimal"}}, "x"),
    ([{"add": {"ok": "string"}}, {"add": {"price": "integer"}}], "price"),  # all or nothing
])
def test_patch_refuses_changes_and_removals(appd_client: Any, body: Any, field: str) -> None:
    assert create(appd_client).status_code == 201
    response = appd_client.patch("/events/schema/myProducts", headers=DOC, data=json.dumps(body))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_body(response)["field"] == field
    assert appd_client.get("/events/schema/myProducts", headers=DOC).get_json() == {"schema": PRODUCTS}


def test_patch_and_delete_of_a_missing_schema_are_404(appd_client: Any) -> None:
    response = appd_client.patch("/events/schema/nope", headers=DOC, data='{"add": {"a": "string"}}')
    assert response.status_code == 404 and error_body(response)["code"] == "Missing.EventType"
    response = appd_client.delete("/events/schema/nope", headers=DOC)
    assert response.status_code == 404 and error_body(response)["code"] == "Missing.EventType"


def test_rename_answers_old_events_under_the_new_name(appd_client: Any) -> None:
    assert create(appd_client).status_code == 201
    assert appd_client.post("/events/publish/myProducts", headers=DOC, data=DOC_PUBLISH_BODY).status_code == 200
    patch = [{"rename": {"price": "cost"}}, {"add": {"price": "string"}}]  # the old name is reused, as a string
    response = appd_client.patch("/events/schema/myProducts", headers=DOC, data=json.dumps(patch))
    assert response.status_code == 200
    new_event = [{"id": "n1", "productBrand": "ACME", "cost": 10.5, "price": "cheap", "eventTimestamp": 1}]
    assert appd_client.post("/events/publish/myProducts", headers=DOC, data=json.dumps(new_event)).status_code == 200
    element = query(appd_client, "SELECT id, cost, price FROM myProducts ORDER BY id")
    assert element["results"] == [["5653b879700", 3800.13, None], ["5653b879ab33a", 2006.41, None],
                                  ["n1", 10.5, "cheap"]]
    grouped = query(appd_client, "SELECT productBrand, sum(cost) FROM myProducts")
    assert grouped["results"] == [["ACME", 2016.91], ["Widget", 3800.13]]
    bad = appd_client.post("/events/query", headers=headers(content_type=TEXT_V2),
                           data="SELECT avg(price) FROM myProducts")
    assert bad.status_code == 400  # price is a string now
    stored = get_state(appd_client.application).backend.get_stream(ACCOUNT, "appdynamics", "myProducts").schema
    by_name = {spec.name: spec for spec in stored}
    assert by_name["cost"].path == "price" and by_name["price"].path not in (None, "price")


def test_delete_removes_the_schema_and_its_events(appd_client: Any) -> None:
    assert create(appd_client).status_code == 201
    assert appd_client.post("/events/publish/myProducts", headers=DOC, data=DOC_PUBLISH_BODY).status_code == 200
    response = appd_client.delete("/events/schema/myProducts", headers=headers(content_type=None))
    assert response.status_code == 200 and response.get_data() == b""
    assert appd_client.get("/events/schema/myProducts", headers=DOC).status_code == 404
    assert appd_client.delete("/events/schema/myProducts", headers=DOC).status_code == 404
    assert create(appd_client).status_code == 201
    assert query(appd_client, "SELECT * FROM myProducts")["results"] == []


def test_patch_size_is_bounded(appd_client: Any) -> None:
    assert create(appd_client).status_code == 201
    renames = [{"rename": {"price": "p2"}}, {"rename": {"p2": "price"}}] * 800  # 1,600 updates
    response = appd_client.patch("/events/schema/myProducts", headers=DOC, data=json.dumps(renames))
    assert response.status_code == 400
    assert "at most 1500 changes" in error_body(response)["message"]
    assert appd_client.get("/events/schema/myProducts", headers=DOC).get_json() == {"schema": PRODUCTS}
    ok = appd_client.patch("/events/schema/myProducts", headers=DOC, data=json.dumps(renames[:700]))
    assert ok.status_code == 200 and ok.get_json() == {"schema": PRODUCTS}  # renamed away and back 350 times
