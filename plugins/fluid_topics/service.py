"""Fluid Topics analytics logic without HTTP: ingest portal events, retrieve them, count them by period.

Storage: every tenant has one implicit stream, ``events`` (the portal's event log), created on first
ingest. A stored `Event` has ``type`` = the event name, ``timestamp`` = the server's ``datetime`` (epoch
ms at receipt), ``id`` = the server-made UUID, ``user_id`` = ``user.id``, ``session_id`` = ``sessionId``,
and ``data`` = the event exactly as the retrieve service returns it (``appName`` … ``userIp``), so user
filters are filters on ``data.user.realm|groups|roles`` with the array-any semantics of `gateway.query`.

Retrieval and counting are translated into the backend-neutral `gateway.query.Query`: the date range is
the query's time range, ``filters.name`` a filter on ``type``, ``filters.user.id`` on ``user_id``;
counts are a ``terms`` aggregation on ``type`` with a nested calendar ``date_histogram`` computed by the
backend. Only the empty periods are filled in here.

Bounded work: a filter list holds at most `MAX_FILTER_VALUES` values, a count answers at most
`MAX_COUNT_CELLS` (name, period) counts and spans at most `MAX_PERIODS` periods, a retrieve page holds
at most `MAX_PER_PAGE` events; beyond, a 400 names the limit and the field to change.

Settings (``[plugins.fluid_topics]``): ``retention_days`` (default 365), the analytics retention window a
``startDate`` must fall in. Validated once at start-up by `SettingsSchema`, the declared settings schema.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load

from gateway.api import Event, backend, client_ip, now_ms, plugin_settings, store_events, user_agent
from gateway.query import Aggregation, Filter, Query, Sort
from gateway.query.calendar import DAY_MS, EPOCH, bucket_end, bucket_start

from .errors import FtError
from .schemas import COUNT, MAX_PER_PAGE, RETRIEVE, Moment, load, load_ingest, split_event
from .schemas import MAX_FILTER_VALUES as MAX_FILTER_VALUES  # re-exported: the limits live together here

PLUGIN = "fluid_topics"
STREAM = "events"
DEFAULT_RETENTION_DAYS = 365
#: Most events one ingest request may carry.
MAX_BATCH = 1000
#: Most periods one count request may span (ten years of days).
MAX_PERIODS = 3660
#: Most distinct event names a count without ``filters.name`` reports.
MAX_NAMES = 10_000
#: Most (name, period) counts one count answer may hold (names x periods): about 4 MB of JSON. A year of
#: days leaves room for 136 names, a year of months for every name a request may list.
MAX_COUNT_CELLS = 50_000


# -- settings ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Settings:
    """The validated ``[plugins.fluid_topics]`` table."""

    retention_days: int = DEFAULT_RETENTION_DAYS


class _Days(fields.Field):
    """A whole number of days, at least 1 (no booleans, floats or numeric strings)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"must be a whole number of days >= 1 (got {value!r})")
        return value


class SettingsSchema(Schema):
    """``[plugins.fluid_topics]``, loaded once at start-up into `Settings`."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "unknown setting (known: retention_days)"}
    retention_days = _Days(load_default=DEFAULT_RETENTION_DAYS)

    @post_load
    def _settings(self, data: dict[str, Any], **_: Any) -> Settings:
        return Settings(**data)


def settings() -> Settings:
    """The current app's settings (loaded once at start-up)."""
    return plugin_settings(PLUGIN)


# -- dates ------------------------------------------------------------------------------------------
def to_datetime(ms: int) -> datetime:
    """UTC datetime of epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def format_datetime(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC), the form the retrieve service echoes its dates in."""
    return to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S")


def format_date(ms: int) -> str:
    """``YYYY-MM-DD`` (UTC)."""
    return to_datetime(ms).strftime("%Y-%m-%d")


def echo(moment: Moment) -> str:
    """A count request date as echoed: a bare date stays a date, a date-time gets its seconds."""
    return format_date(moment.ms) if moment.date_only else format_datetime(moment.ms)


def periods(start: int, end: int, period: str, limit: int = MAX_PERIODS) -> list[int] | None:
    """Starts of the calendar periods overlapping [start, end); None when there are more than `limit`."""
    out: list[int] = []
    current = bucket_start(start, period)
    while current < end:
        if len(out) == limit:
            return None
        out.append(current)
        current = bucket_end(current, period)
    return out


def window_problems(start: Moment, end: Moment | None, *, now: int, retention_days: int,
                    end_ms: int | None = None) -> list[tuple[str, str]]:
    """Problems of a date range: start in the retention window and not in the future, end after start."""
    found: list[tuple[str, str]] = []
    oldest = (now // DAY_MS - retention_days) * DAY_MS
    if start.ms < oldest:
        found.append(("startDate", f"startDate must be within the analytics retention period of {retention_days} "
                                   f"days (not before {format_date(oldest)})"))
    elif start.ms > now:
        found.append(("startDate", "startDate must not be in the future"))
    last = end.ms if end is not None else end_ms
    if last is not None and last <= start.ms:
        found.append(("endDate", "endDate must be later than startDate"))
    return found


# -- ingest -----------------------------------------------------------------------------------------
def document(*, event_id: str, at: int, tenant: str, fields: Mapping[str, Any], parameters: Mapping[str, Any],
             agent: str | None, ip: str | None) -> dict[str, Any]:
    """The stored (and returned) form of an event, in the retrieve service's key order."""
    user = fields.get("user") or {}
    return {
        "appName": fields["appName"],
        "appVersion": fields["appVersion"],
        "contentLocale": fields.get("contentLocale"),
        "datetime": at,
        "id": event_id,
        "name": fields["name"],
        "offline": fields["offline"],
        "parameters": dict(parameters),
        "sessionId": fields.get("sessionId"),
        "tenantId": tenant,
        "uiLocale": fields.get("uiLocale"),
        "user": {
            "realm": user.get("realm") or [],
            "groups": user.get("groups") or [],
            "id": user.get("id"),
            "roles": user.get("roles") or [],
        },
        "userAgent": agent,
        "userIp": ip,
    }


def to_event(tenant: str, doc: dict[str, Any], received_at: int | None = None) -> Event:
    """The stored event of a document made by `document`."""
    return Event(tenant=tenant, plugin=PLUGIN, stream=STREAM, type=doc["name"], data=doc, timestamp=doc["datetime"],
                 received_at=doc["datetime"] if received_at is None else received_at, id=doc["id"],
                 user_id=doc["user"]["id"], session_id=doc["sessionId"])


def validate_events(body: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(documented fields, parameters) of each posted event; `FtError` 400 listing every problem."""
    many = isinstance(body, list)
    items = body if many else [body]
    if len(items) > MAX_BATCH:
        raise FtError(f"the request body holds {len(items)} events: at most {MAX_BATCH} may be posted at once",
                      400, field="body")
    found: list[tuple[str, str]] = []
    out = []
    for index, raw in enumerate(items):
        prefix = f"[{index}]" if many else ""
        if not isinstance(raw, dict):
            found.append((prefix or "body", f"{prefix or 'body'} must be a JSON object (an event)"))
            continue
        fields, problems = load_ingest(raw, prefix)
        sent = raw.get("parameters")
        if sent is not None and not isinstance(sent, dict):
            path = f"{prefix}.parameters" if prefix else "parameters"
            problems.append((path, f"{path} must be a JSON object"))
        found.extend(problems)
        if not problems:
            out.append((fields, split_event(raw)))
    if found:
        raise FtError.invalid(found)
    return out


def build_events(tenant: str, body: Any) -> list[Event]:
    """Validate a posted event or array of events and build the stored events (server-set fields added)."""
    validated = validate_events(body)
    at = now_ms()
    agent, ip = user_agent(), client_ip()
    return [to_event(tenant, document(event_id=str(uuid.uuid4()), at=at, tenant=tenant, fields=fields,
                                      parameters=parameters, agent=agent, ip=ip))
            for fields, parameters in validated]


def record_events(tenant: str, body: Any) -> list[Event]:
    """Validate and store the events in one atomic append; returns only once the backend holds them."""
    events = build_events(tenant, body)
    if not events:
        return events
    store_events(events, create_streams=True)
    return events


# -- retrieve ---------------------------------------------------------------------------------------
def render(event: Event) -> dict[str, Any]:
    """An event as the retrieve service returns it (every key present, in the document's order)."""
    data = event.data
    user = data.get("user") if isinstance(data.get("user"), dict) else {}
    return {
        "appName": data.get("appName"),
        "appVersion": data.get("appVersion"),
        "contentLocale": data.get("contentLocale"),
        "datetime": event.timestamp,
        "id": event.id,
        "name": event.type,
        "offline": data.get("offline"),
        "parameters": data.get("parameters") or {},
        "sessionId": data.get("sessionId", event.session_id),
        "tenantId": data.get("tenantId", event.tenant),
        "uiLocale": data.get("uiLocale"),
        "user": {
            "realm": user.get("realm") or [],
            "groups": user.get("groups") or [],
            "id": user.get("id", event.user_id),
            "roles": user.get("roles") or [],
        },
        "userAgent": data.get("userAgent"),
        "userIp": data.get("userIp"),
    }


def event_filters(filters: Mapping[str, Any] | None) -> tuple[Filter, ...]:
    """``filters`` as query filters: each non-empty list matches any of its values; all must match."""
    if not filters:
        return ()
    out = []
    if filters.get("name"):
        out.append(Filter("type", "in", list(dict.fromkeys(filters["name"]))))
    user = filters.get("user") or {}
    for key, field in (("id", "user_id"), ("realm", "data.user.realm"), ("group", "data.user.groups"),
                       ("role", "data.user.roles")):
        if user.get(key):
            out.append(Filter(field, "in", list(dict.fromkeys(user[key]))))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RetrieveRequest:
    """A validated retrieve request: the time range in ms and what to page through."""

    start: int
    end: int
    filters: tuple[Filter, ...]
    page: int
    per_page: int
    descending: bool

    def query(self, tenant: str) -> Query:
        """The backend-neutral query of this request's page (with the total count)."""
        return Query(tenant=tenant, plugin=PLUGIN, streams=(STREAM,), start=self.start, end=self.end,
                     filters=self.filters, sort=(Sort("timestamp", descending=self.descending),),
                     limit=self.per_page, offset=(self.page - 1) * self.per_page)


def parse_retrieve(body: dict[str, Any], *, now: int | None = None,
                   retention_days: int | None = None) -> RetrieveRequest:
    """Validate a retrieve body; `FtError` 400 listing every problem, each naming its field."""
    data, found = load(RETRIEVE, body)
    if found:
        raise FtError.invalid(found)
    now = now_ms() if now is None else now
    days = settings().retention_days if retention_days is None else retention_days
    start: Moment = data["startDate"]
    end: Moment | None = data.get("endDate")
    # The default end is "now", rounded up to a whole second so that it is echoed exactly and includes
    # everything stored so far.
    end_ms = end.ms if end is not None else math.ceil(now / 1000) * 1000
    found = window_problems(start, end, now=now, retention_days=days, end_ms=end_ms)
    if found:
        raise FtError.invalid(found)
    paging = data.get("paging") or {"page": 1, "perPage": MAX_PER_PAGE}
    return RetrieveRequest(start=start.ms, end=end_ms, filters=event_filters(data.get("filters")),
                           page=paging["page"], per_page=paging["perPage"],
                           descending=(data.get("sortOrder") or "LatestFirst") == "LatestFirst")


def retrieve(tenant: str, body: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    """The retrieve service's response for a body."""
    request = parse_retrieve(body, now=now)
    result = backend().query(request.query(tenant))
    total = result.total or 0
    return {
        "startDate": format_datetime(request.start),
        "endDate": format_datetime(request.end),
        "paging": {
            "page": request.page,
            "perPage": request.per_page,
            "totalCount": total,
            "lastPage": (request.page - 1) * request.per_page + len(result.events) >= total,
        },
        "results": [render(event) for event in result.events],
    }


# -- count ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CountRequest:
    """A validated count request."""

    start: Moment
    end: Moment
    period: str
    names: tuple[str, ...]
    period_starts: tuple[int, ...]

    @property
    def names_that_fit(self) -> int:
        """Most names whose periods fit in one answer (`MAX_COUNT_CELLS`)."""
        return min(MAX_NAMES, MAX_COUNT_CELLS // max(1, len(self.period_starts)))

    def query(self, tenant: str) -> Query:
        """An aggregation-only query: events per name, and per calendar period within each name.

        Without ``filters.name`` it asks for one name more than fit, so that `count` can tell an answer
        that would be cut short (and refuse it) from a complete one."""
        filters = (Filter("type", "in", list(self.names)),) if self.names else ()
        histogram = Aggregation("periods", "date_histogram", interval=self.period)
        size = len(self.names) or self.names_that_fit + 1
        names = Aggregation("names", "terms", field="type", size=size, aggs=(histogram,))
        return Query(tenant=tenant, plugin=PLUGIN, streams=(STREAM,), start=self.start.ms, end=self.end.ms,
                     filters=filters, limit=0, count_total=False, aggregations=(names,))


def parse_count(body: dict[str, Any], *, now: int | None = None, retention_days: int | None = None) -> CountRequest:
    """Validate a count body; `FtError` 400 listing every problem, each naming its field."""
    data, found = load(COUNT, body)
    if found:
        raise FtError.invalid(found)
    now = now_ms() if now is None else now
    days = settings().retention_days if retention_days is None else retention_days
    start, end, period = data["startDate"], data["endDate"], data["groupByPeriod"]
    found = window_problems(start, end, now=now, retention_days=days)
    if found:
        raise FtError.invalid(found)
    starts = periods(start.ms, end.ms, period)
    if starts is None:
        raise FtError(f"endDate must be at most {MAX_PERIODS} periods ({period}) after startDate", 400,
                      field="endDate")
    names = tuple(dict.fromkeys((data.get("filters") or {}).get("name") or ()))
    cells = len(names) * len(starts)
    if cells > MAX_COUNT_CELLS:
        raise FtError(f"filters.name lists {len(names):,} names over {len(starts):,} periods ({period}), "
                      f"{cells:,} counts: at most {MAX_COUNT_CELLS:,} counts (names x periods) are answered per "
                      "request; ask for fewer names, a shorter range or a longer groupByPeriod", 400,
                      field="filters.name")
    return CountRequest(start=start, end=end, period=period, names=names, period_starts=tuple(starts))


def count(tenant: str, body: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    """The count service's response: every requested (or seen) name with every period, empty ones at 0."""
    request = parse_count(body, now=now)
    result = backend().query(request.query(tenant))
    found = result.aggregations["names"]
    if not request.names and len(found) > request.names_that_fit:
        fit = request.names_that_fit
        raise FtError(f"the events of this range have more than {fit:,} names: with groupByPeriod {request.period} "
                      f"({len(request.period_starts):,} periods) at most {fit:,} names fit in the {MAX_COUNT_CELLS:,} "
                      "counts (names x periods) answered per request; use a longer groupByPeriod, a shorter range "
                      "or filters.name", 400, field="groupByPeriod")
    buckets = {bucket["key"]: {p["key"]: p["count"] for p in bucket["periods"]} for bucket in found}
    names = request.names or tuple(buckets)
    bounds = [*request.period_starts, bucket_end(request.period_starts[-1], request.period)] \
        if request.period_starts else []
    labels = [format_date(ms) for ms in bounds]
    results = []
    for name in names:
        counts = buckets.get(name, {})
        results.append({"name": name, "periods": [
            {"periodStartDate": labels[i], "periodEndDate": labels[i + 1], "eventCount": counts.get(start, 0)}
            for i, start in enumerate(request.period_starts)]})
    return {"startDate": echo(request.start), "endDate": echo(request.end), "groupByPeriod": request.period,
            "results": results}

