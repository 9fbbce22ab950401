"""gateway.jsonbody: strict JSON for every API, and the body limit for chunked requests too."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from support import api_key, base_config

from gateway.jsonbody import MAX_DEPTH, InvalidJSON, parse_json


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b'{"a": -Infinity}', "-Infinity"),
    (b'{"a": "\\ud800"}', "unpaired surrogate"),
    (b'{"\\udfff": 1}', "unpaired surrogate"),
    (b'{"a": ' + b"1" * 5000 + b"}", "digits"),
    (b'{"a": "\xff"}', "UTF-8"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "deeper"),
    (b"[" * 100_000 + b"]" * 100_000, "deeper"),
    (b'{"a": 1,}', "Expecting property name"),
])
def test_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidJSON, match=message):
        parse_json(raw)


@pytest.mark.parametrize("reject_duplicate_keys", [False, True])
@pytest.mark.parametrize(("raw", "message"), [
    (b'{"a": 1e400}', "out of range"),
    (b'{"a": [1, NaN]}', "NaN"),
    (b"\xef\xbb\xbf{}", "Unexpected UTF-8 BOM"),  # what json.loads says (the decoders are prebuilt)
])
def test_refused_by_both_decoders(raw: bytes, message: str, reject_duplicate_keys: bool) -> None:
    with pytest.raises(InvalidJSON, match=message):
        parse_json(raw, reject_duplicate_keys=reject_duplicate_keys)


def test_decoders_keep_no_state_between_documents() -> None:
    """The strict decoders are built once and shared: each document is parsed on its own."""
    assert parse_json(b'{"a": {"b": 1}}', reject_duplicate_keys=True) == {"a": {"b": 1}}
    with pytest.raises(InvalidJSON, match="Duplicate field 'b'"):
        parse_json(b'{"a": {"b": 1, "b": 2}}', reject_duplicate_keys=True)
    assert parse_json(b'{"b": 1, "a": {"b": 2}}', reject_duplicate_keys=True) == {"b": 1, "a": {"b": 2}}
    assert parse_json('{"a": 1, "a": 2}') == {"a": 2}


def test_position_is_reported() -> None:
    with pytest.raises(InvalidJSON) as info:
        parse_json(b'{\n  "a": tru\n}')
    assert (info.value.line, info.value.column) == (2, 8)


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "a": 2}',
    b'{"x": {"k": 1, "k": 1}}',
    b'[{"a": "\\":", "a": 1}]',
])
def test_duplicate_keys_only_when_asked(raw: bytes) -> None:
    with pytest.raises(InvalidJSON, match="Duplicate field"):
        parse_json(raw, reject_duplicate_keys=True)
    parse_json(raw)


@pytest.mark.parametrize("raw", [
    b'{"a": "\\":", "b": "x\\":y"}',  # '":' inside values is not a key
    b'{"emoji": "\\ud83d\\ude00", "t": "caf\xc3\xa9"}',  # paired surrogates and UTF-8 are fine
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
])
def test_accepted(raw: bytes) -> None:
    assert parse_json(raw, reject_duplicate_keys=True) == json.loads(raw)


def test_chunked_body_over_the_limit_is_413_in_the_vendor_format(serve, tmp_path: Path) -> None:
    server = serve(base_config(tmp_path, server={"max_body_bytes": 2048}), workers=1)
    host, port = server.url.removeprefix("http://").split(":")
    auth = {"Authorization": f"ApiKey {api_key('admin')}"}

    def send(body: bytes, chunked: bool) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {**auth, "Content-Type": "application/json"}
        if chunked:
            conn.putrequest("POST", "/_application/analytics/shop/event/page_view")
            for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(name, value)
            conn.endheaders()
            for start in range(0, len(body), 1000):
                piece = body[start:start + 1000]
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request("POST", "/_application/analytics/shop/event/page_view", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("PUT", "/_application/analytics/shop", headers=auth)
    assert conn.getresponse().status == 201
    big = json.dumps({"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "x" * 5000}}).encode()
    small = json.dumps({"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "x" * 500}}).encode()
    for chunked in (False, True):
        status, body = send(big, chunked)
        assert status == 413 and body["error"]["type"] == "content_too_long_exception", (chunked, body)
        assert send(small, chunked) == (202, {"accepted": True})


# -- read_json: what every view calls -----------------------------------------------------------------------
def _read(data: bytes | str, content_type: str | None = "application/json", **kwargs):
    from flask import Flask

    from gateway.jsonbody import read_json

    headers = {"Content-Type": content_type} if content_type else {}
    with Flask(__name__).test_request_context("/", method="POST", data=data, headers=headers):
        from flask import request

        return read_json(request, **kwargs)


def test_read_json_returns_the_expected_shape() -> None:
    assert _read(b'{"a": 1}', expect=dict) == {"a": 1}
    assert _read(b"[1]", expect=(dict, list)) == [1]
    assert _read(b'{"a": 1}', content_type=None, expect=dict) == {"a": 1}  # no Content-Type: read as JSON
    assert _read(b'{"a": 1}', content_type="application/vnd.api+json", expect=dict) == {"a": 1}


@pytest.mark.parametrize(("raw", "expect", "found"), [
    (b"[1]", dict, "an array"), (b'"x"', dict, "a string"), (b"null", dict, "null"), (b"true", (dict, list),
                                                                                        "a boolean"),
    (b"1.5", list, "a number"), (b"{}", list, "an object"),
])
def test_read_json_names_the_wrong_shape(raw: bytes, expect, found: str) -> None:
    from gateway.jsonbody import WrongShape

    with pytest.raises(WrongShape) as info:
        _read(raw, expect=expect)
    assert info.value.found == found and info.value.status == 400


def test_read_json_refuses_empty_bodies_bad_json_and_other_media_types() -> None:
    from gateway.errors import UnsupportedMediaType
    from gateway.jsonbody import EmptyBody

    with pytest.raises(EmptyBody):
        _read(b"  \n", expect=dict)
    with pytest.raises(InvalidJSON, match="Duplicate field 'a'"):
        _read(b'{"a": 1, "a": 2}', expect=dict, reject_duplicate_keys=True)
    with pytest.raises(InvalidJSON, match="NaN"):
        _read(b'{"a": NaN}', expect=dict)
    with pytest.raises(UnsupportedMediaType, match=r"got text/plain"):
        _read(b"{}", content_type="text/plain", expect=dict)


@pytest.mark.parametrize("document", [
    b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH,  # a scalar inside MAX_DEPTH containers: too deep
    b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    b"[" + b",".join([b'{"x":[1]}'] * 300) + b"," + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"]",  # deep in a wide one
])
def test_depth_limit_counts_every_level(document: bytes) -> None:
    with pytest.raises(InvalidJSON, match="deeper"):
        parse_json(document)


def test_a_wide_shallow_document_is_accepted() -> None:
    document = b"[" + b",".join([b'{"x":[1],"u":{"r":["a"]}}'] * 1000) + b"]"
    assert len(parse_json(document)) == 1000
