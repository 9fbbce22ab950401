"""``POST /events/query`` inputs: the URL parameters and the two body forms, resolved to a list of query specs.

Why: the body's form is told by its content, not its Content-Type (real clients send JSON arrays as text and
ADQL as JSON), per-query ``start``/``end``/``limit``/``mode`` override the URL's, and every bound (20 queries,
limit 10,000) is enforced in one place. Pure functions; the HTTP layer maps :class:`ParamError` to a 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .schema_types import MAX_DATE_MS, MIN_DATE_MS, parse_date

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_QUERIES = 20
QUERY_KEYS = ("label", "query", "start", "end", "limit", "mode")
_EPOCH = re.compile(r"[+-]?\d{1,19}")


class ParamError(ValueError):
    """A bad parameter or body; ``name`` is the parameter (``start``, ``queries[2].limit``, ``body``...)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.reason = message


@dataclass(frozen=True)
class RequestParams:
    """The URL parameters: bounds in epoch ms (inclusive, ``None`` = unbounded), ``limit`` (clamped), ``mode``
    (``None`` or ``"scroll"``) and the follow-up ``scrollid``."""

    start: int | None = None
    end: int | None = None
    limit: int = DEFAULT_LIMIT
    mode: str | None = None
    scrollid: str | None = None


@dataclass(frozen=True)
class QuerySpec:
    """One query of the request with its effective parameters; ``label`` defaults to its index as a string."""

    label: str
    query: str
    start: int | None
    end: int | None
    limit: int
    mode: str | None


def parse_time(value: Any, name: str) -> int:
    """``start``/``end``: epoch milliseconds, ISO 8601 with ``Z`` or an offset, or ``yyyy-MM-dd`` (UTC), between
    the years 1 and 9999 (the dates a schema can hold; beyond, a 400 rather than an overflow in the store)."""
    ms = _parse_time(value, name)
    if not MIN_DATE_MS <= ms <= MAX_DATE_MS:
        raise ParamError(name, f"{value!r} is outside the years 1 to 9999")
    return ms


def _parse_time(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ParamError(name, "expected epoch milliseconds or an ISO 8601 date")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if _EPOCH.fullmatch(text):
            return int(text)
        try:
            return parse_date(text.replace(" ", "+") if re.search(r"T\d\d:\d\d.* \d\d:?\d\d$", text) else text)
        except ValueError:
            pass
    raise ParamError(name, f"{value!r} is neither epoch milliseconds nor an ISO 8601 date")


def parse_limit(value: Any, name: str = "limit") -> int:
    """``limit``: a non-negative integer, 100 when absent, values above 10,000 clamped to 10,000."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if isinstance(value, bool):
        raise ParamError(name, "expected an integer")
    if isinstance(value, str) and re.fullmatch(r"\s*\+?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ParamError(name, f"expected a non-negative integer, got {value!r}")
    return min(value, MAX_LIMIT)


def parse_mode(value: Any, name: str = "mode") -> str | None:
    """``mode``: absent/``none``/empty (normal) or ``scroll`` (any case)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "default")):
        return None
    if isinstance(value, str) and value.strip().lower() == "scroll":
        return "scroll"
    raise ParamError(name, f"unknown mode {value!r}; the only mode is scroll")


def request_params(args: Mapping[str, str]) -> RequestParams:
    """The URL parameters of ``POST /events/query`` (others, e.g. a scroll client's ``size``, are ignored)."""
    start = parse_time(args["start"], "start") if args.get("start") not in (None, "") else None
    end = parse_time(args["end"], "end") if args.get("end") not in (None, "") else None
    _check_order(start, end, "start")
    mode = parse_mode(args.get("mode"))
    scrollid = args.get("scrollid") or None
    if scrollid is not None and mode != "scroll":
        mode = "scroll"  # a follow-up names its scroll; the mode is implied
    return RequestParams(start=start, end=end, limit=parse_limit(args.get("limit")), mode=mode, scrollid=scrollid)


def _check_order(start: int | None, end: int | None, name: str) -> None:
    if start is not None and end is not None and start > end:
        raise ParamError(name, "start is after end")


def parse_query_body(body: bytes | str, params: RequestParams) -> list[QuerySpec]:
    """The request body -> query specs. ``[`` (after white space) means a JSON array of up to 20
    ``{label, query, start, end, limit, mode}``; ``{`` one such object; a JSON string one ADQL text; anything
    else is the ADQL text itself. Scroll mode is allowed for a single query only."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ParamError("body", "the body is not UTF-8") from None
    text = body.lstrip("\ufeff \t\r\n")
    if not text.strip():
        raise ParamError("body", "the body is empty; send an ADQL query or a JSON array of queries")
    if text[0] in "[{\"":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ParamError("body", f"the body starts like JSON but is not valid JSON ({exc.msg})") from None
        if isinstance(data, str):
            specs = [_spec(0, {"query": data}, params)]
        elif isinstance(data, dict):
            specs = [_spec(0, data, params)]
        else:
            if not data:
                raise ParamError("body", "the array holds no queries")
            if len(data) > MAX_QUERIES:
                raise ParamError("body", f"at most {MAX_QUERIES} queries per request; got {len(data)}")
            specs = [_spec(i, item, params) for i, item in enumerate(data)]
    else:
        specs = [QuerySpec(label="0", query=text.strip(), start=params.start, end=params.end, limit=params.limit,
                           mode=params.mode)]  # fmt: skip
    if len(specs) > 1 and any(s.mode == "scroll" for s in specs):
        raise ParamError("mode", "scroll mode takes one query per request")
    if params.scrollid is not None and specs[0].mode != "scroll":
        specs[0] = replace(specs[0], mode="scroll")
    return specs


def _spec(index: int, item: Any, params: RequestParams) -> QuerySpec:
    where = f"queries[{index}]"
    if not isinstance(item, dict):
        raise ParamError(where, 'each query must be an object like {"query": "SELECT ...", "label": "..."}')
    unknown = sorted(set(item) - set(QUERY_KEYS))
    if unknown:
        raise ParamError(f"{where}.{unknown[0]}", f"unknown key; allowed: {', '.join(QUERY_KEYS)}")
    query = item.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ParamError(f"{where}.query", "missing or not a non-empty string")
    label = item.get("label")
    if label is None:
        label = str(index)
    elif isinstance(label, bool) or not isinstance(label, str | int | float):
        raise ParamError(f"{where}.label", "must be a string")
    start = parse_time(item["start"], f"{where}.start") if item.get("start") not in (None, "") else params.start
    end = parse_time(item["end"], f"{where}.end") if item.get("end") not in (None, "") else params.end
    _check_order(start, end, f"{where}.start")
    limit = parse_limit(item["limit"], f"{where}.limit") if "limit" in item else params.limit
    mode = parse_mode(item["mode"], f"{where}.mode") if "mode" in item else params.mode
    return QuerySpec(label=str(label), query=query, start=start, end=end, limit=limit, mode=mode)
