"""The ADQL engine on every backend against the reference evaluator, on the hand-worked oracle cases.

Each query below is run by `plugins.appdynamics.engine.run_query` over events stored as the HTTP layer stores
them (real SQLite files) and compared with `adql_oracle.run`, whose answers `test_adql_oracle` checks by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from appdynamics.adql_oracle import run as oracle
from appdynamics.engine_backends import BACKENDS, close, same, store
from appdynamics.test_adql_oracle import EVENTS, NOW, SCHEMA, T, ev

from plugins.appdynamics.adql import AdqlError
from plugins.appdynamics.adql.semantics import analyze_text
from plugins.appdynamics.engine import ScrollIdError, run_query


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    store_ = BACKENDS[request.param](request, tmp_path)
    yield store_
    close(store_)


def engine(backend, stream, query: str, start=None, end=None, limit=100, **kw):
    return run_query(backend, stream, analyze_text(query), start_ms=start, end_ms=end, limit=limit, now_ms=NOW, **kw)


def check(backend, stream, schema, events, query: str, start=None, end=None, limit=100) -> None:
    expected = oracle(query, events, schema, NOW, start=start, end=end, limit=limit)
    got = engine(backend, stream, query, start, end, limit)
    fields = [(f["label"], f["field"], f.get("aggregation"), f["type"]) for f in got.fields]
    assert fields == [tuple(f) for f in expected["fields"]], query
    assert same(got.results, expected["results"]), (query, got.results, expected["results"])
    assert (got.total, got.more_data, got.scrollid) == (expected["total"], expected["moreData"], None), query


CASES = [
    'SELECT * FROM t',
    'SELECT app FROM t',
    'SELECT app FROM t LIMIT 3',
    'SELECT app FROM t LIMIT 0',
    'SELECT app, rt FROM t ORDER BY rt',
    'SELECT rt FROM t ORDER BY rt DESC',
    'SELECT app FROM t ORDER BY app, rt DESC',
    'SELECT rt FROM t ORDER BY app DESC, eventTimestamp',
    'SELECT app, count(*) FROM t',
    'SELECT app, tier, count(*) FROM t',
    'SELECT app, count(*) FROM t LIMIT 1',
    'SELECT app, tier, count(*) FROM t LIMIT 5, 1',
    'SELECT count(*), count(rt), sum(rt), avg(rt), min(rt), max(rt), distinctcount(user), sum(price) FROM t',
    'SELECT stdev(rt) FROM t',
    'SELECT percentile(rt, 50, 90), percentile(rt, 100) FROM t',
    'SELECT stats(rt) FROM t',
    "SELECT stdev(rt), percentile(rt, 25) FROM t WHERE app = 'b'",
    "SELECT count(*), sum(rt), avg(rt), min(rt), distinctcount(rt), percentile(rt, 50), "
    "stats(price) FROM t WHERE app = 'z'",
    "SELECT app, count(*) FROM t WHERE app = 'z'",
    "SELECT rt / 3, -rt / 2, rt % 3, -rt % 3, rt / 0, price / 0, rt / 2.0, rt % 0 FROM t WHERE app = 'c'",
    'SELECT rt + price FROM t ORDER BY eventTimestamp',
    'SELECT sum(rt) / count(*), sum(rt) * 1.0 / count(*), count(*) / 0 FROM t',
    "SELECT (filter(count(*), WHERE page = 'home') * 100) / count(*) FROM t",
    'SELECT rt FROM t WHERE price > 1 ORDER BY eventTimestamp',
    'SELECT rt FROM t WHERE price != 1.5 ORDER BY eventTimestamp',
    'SELECT rt FROM t WHERE NOT price > 1 ORDER BY eventTimestamp',
    'SELECT app FROM t WHERE tier IS NULL',
    'SELECT rt FROM t WHERE tier IS NOT NULL AND rt IS NOT NULL ORDER BY rt',
    "SELECT rt FROM t WHERE tier NOT IN ('x') ORDER BY eventTimestamp",
    "SELECT rt FROM t WHERE tier IN ('x', 'y') AND NOT (rt = 10 OR rt = 30)",
    'SELECT rt FROM t WHERE ok = true ORDER BY rt',
    'SELECT rt FROM t WHERE ok ORDER BY rt',
    'SELECT rt FROM t WHERE NOT ok',
    'SELECT rt FROM t WHERE rt BETWEEN [10, 30) ORDER BY rt',
    'SELECT rt FROM t WHERE rt BETWEEN (10, 30] ORDER BY rt',
    'SELECT rt FROM t WHERE rt BETWEEN 7 AND 10 ORDER BY rt',
    'SELECT rt FROM t WHERE rt NOT BETWEEN 7 AND 10 ORDER BY eventTimestamp',
    "SELECT eventTimestamp FROM t WHERE page LIKE 'HO*' ORDER BY eventTimestamp",
    "SELECT rt FROM t WHERE page LIKE 'c?rt' ORDER BY rt",
    "SELECT rt FROM t WHERE page LIKE '%ar%' ORDER BY rt",
    "SELECT rt FROM t WHERE page REGEXP 'h.*' AND rt IS NOT NULL ORDER BY rt",
    "SELECT rt FROM t WHERE page REGEXP 'h'",
    "SELECT rt FROM t WHERE page NOT REGEXP 'h.*' ORDER BY rt",
    "SELECT rt FROM t WHERE eventTimestamp >= '2023-11-14T22:13:23.000Z' ORDER BY eventTimestamp",
    f'SELECT rt FROM t WHERE eventTimestamp BETWEEN {T + 2000} AND {T + 3000} ORDER BY rt',
    "SELECT rt FROM t WHERE eventTimestamp < '2023-11-14T23:13:22+01:00'",
    "SELECT rt FROM t WHERE rt = '10'",
    'SELECT rt FROM t WHERE app = 5',
    f'SELECT rt FROM t SINCE {T + 2000} UNTIL {T + 4000} ORDER BY eventTimestamp',
    'SELECT rt FROM t SINCE 1 m',
    "SELECT series(eventTimestamp, '2s'), count(*) FROM t",
    'SELECT series(rt, 10), count(*) FROM t',
    'SELECT series(price, 2), avg(rt) FROM t',
    'SELECT range(rt, 10, 25), count(*) FROM t',
    "SELECT app, series(eventTimestamp, '2s'), count(*) FROM t LIMIT 1",
    "SELECT filter(count(*), WHERE page = 'home') AS h, count(*) FROM t",
    "SELECT app, filter(avg(rt), WHERE page = 'home') FROM t",
    "SELECT funnel(user, page = 'home', page = 'cart') FROM t",
    "SELECT app, funnel(user, page = 'home', page = 'cart') AS 'H,C' FROM t",
    'SELECT DISTINCT app FROM t',
    'SELECT distinct(page), count(*) FROM t',
    'SELECT app, avg(rt) AS r FROM t ORDER BY r DESC',
    'SELECT app, count(*) FROM t ORDER BY app DESC',
    'SELECT app, count(*) AS c FROM t HAVING c > 1',
    'SELECT app, tier, count(*) FROM t ORDER BY tier DESC',
    'SELECT app, max(rt) AS m FROM t HAVING m BETWEEN [10, 30)',
    'SELECT rt % 2, count(*) FROM t',
    "SELECT substring(page, 1, 2), substring(page, 2), indexof(page, 'm'), length(page), concat(app, "
    "'-', page), trim(concat(' ', app)) FROM t WHERE rt = 10",
    'SELECT now() FROM t LIMIT 1',
    'SELECT max(eventTimestamp), min(eventTimestamp) FROM t',
    'SELECT rt AS r FROM t WHERE r > 15',
    'SELECT page, rt FROM t ORDER BY page',
    'SELECT app, tier, avg(rt) AS r, count(*) AS c FROM t ORDER BY r, c DESC LIMIT 2, 1',
    'SELECT app, sum(rt) / count(*) AS q FROM t HAVING q > 7 ORDER BY q',
    'SELECT ok, count(*), min(price) FROM t',
    'SELECT rt FROM t WHERE rt + 1 > price * 10',
    "SELECT rt FROM t WHERE length(page) = 4 AND concat(app, tier) IN ('ax', 'bx')",
    'SELECT app, range(price, 1, 3), count(*) FROM t ORDER BY app DESC',
    "SELECT series(eventTimestamp, '2s') AS s, count(*) AS c FROM t ORDER BY c DESC",
    'SELECT distinctcount(ok), count(ok), sum(rt + 1), avg(rt * 2) FROM t',
]


@pytest.mark.parametrize("query", CASES)
def test_engine_equals_oracle(backend, query: str) -> None:
    check(backend, store(backend, SCHEMA, EVENTS), SCHEMA, EVENTS, query)


def test_request_bounds_and_limits(backend) -> None:
    stream = store(backend, SCHEMA, EVENTS)
    bounds = ((T + 4000, None, 100), (T + 2000, T + 3000, 100), (None, None, 2), (T + 4000, T + 4000, 1))
    for start, end, limit in bounds:
        check(backend, stream, SCHEMA, EVENTS, "SELECT rt FROM t", start, end, limit)
    check(backend, stream, SCHEMA, EVENTS, f"SELECT rt FROM t SINCE {T + 1000}", T + 4000, T + 4000)


def test_groups_default_ten_and_clamps(backend) -> None:
    many = [ev(i % 50, key=f"k{i:04d}") for i in range(1200)]
    stream = store(backend, {"key": "string"}, many)
    for query in ("SELECT key, count(*) FROM t", "SELECT key, count(*) FROM t LIMIT 5000",
                  "SELECT key, count(*) AS c FROM t ORDER BY key DESC LIMIT 20"):
        check(backend, stream, {"key": "string"}, many, query)
    two = [ev(0, a="a", b=f"b{i:03d}") for i in range(150)]
    stream2 = store(backend, {"a": "string", "b": "string"}, two, name="u")
    got = engine(backend, stream2, "SELECT a, b, count(*) FROM u LIMIT 1, 500")
    assert len(got.results) == 100 and got.results[0] == ["a", "b000", 1] and got.results[-1] == ["a", "b099", 1]


def test_nested_and_spaced_field_names(backend) -> None:
    schema = {"seg.user.step": "string", "metrics.Resp Time (ms)": "integer"}
    events = [ev(i, **{"seg.user.step": s, "metrics.Resp Time (ms)": v}) for i, (s, v) in
              enumerate([("a", 5), ("b", 7), ("a", None), (None, 9)])]
    stream = store(backend, schema, events)
    for query in ("SELECT * FROM t", "SELECT seg.user.step, avg(metrics.`Resp Time (ms)`) FROM t",
                  "SELECT metrics.`Resp Time (ms)` FROM t WHERE seg.user.step = 'a'"):
        check(backend, stream, schema, events, query)


def test_unknown_field_is_an_adql_error(backend) -> None:
    stream = store(backend, SCHEMA, EVENTS)
    with pytest.raises(AdqlError, match="unknown field nope"):
        engine(backend, stream, "SELECT nope FROM t")


def test_scroll_pages_every_row_then_stops(backend) -> None:
    events = [ev(i, app=f"a{i}", rt=i % 4 or None) for i in range(25)]
    stream = store(backend, SCHEMA, events)
    for query in ("SELECT app, rt FROM t", "SELECT app FROM t ORDER BY rt", "SELECT app FROM t LIMIT 12"):
        expected = oracle(query, events, SCHEMA, NOW, limit=10_000)["results"]
        if "LIMIT" not in query:
            expected = oracle(query + " LIMIT 10000", events, SCHEMA, NOW)["results"]
        seen, token, batches = [], None, 0
        while True:
            got = engine(backend, stream, query, limit=5, scroll=token, scroll_mode=True)
            assert len(got.results) <= 5 and got.total == 25
            seen += got.results
            batches += 1
            if got.scrollid is None:
                assert got.more_data is False
                break
            assert got.more_data is True
            token = got.scrollid
        assert seen == expected and batches == -(-len(expected) // 5)


def test_scroll_ids_are_bound_to_their_query(backend) -> None:
    stream = store(backend, SCHEMA, EVENTS)
    first = engine(backend, stream, "SELECT app FROM t", limit=2, scroll_mode=True)
    assert first.scrollid and first.results == [["c"], ["a"]]
    with pytest.raises(ScrollIdError):
        engine(backend, stream, "SELECT rt FROM t", limit=2, scroll=first.scrollid)
    with pytest.raises(ScrollIdError):
        engine(backend, stream, "SELECT app FROM t", limit=3, scroll=first.scrollid)
    for garbage in ("x", "", "eyJ9", first.scrollid[:-3]):
        with pytest.raises(ScrollIdError):
            engine(backend, stream, "SELECT app FROM t", limit=2, scroll=garbage)
    again = engine(backend, stream, "SELECT app FROM t", limit=2, scroll=first.scrollid)
    assert again.results == [["b"], ["a"]]


def test_scroll_refuses_aggregation(backend) -> None:
    stream = store(backend, SCHEMA, EVENTS)
    with pytest.raises(AdqlError, match="scroll mode"):
        engine(backend, stream, "SELECT count(*) FROM t", scroll_mode=True)


def test_groups_ordered_by_the_engine_are_capped_with_a_clear_error(backend, monkeypatch) -> None:
    from plugins.appdynamics.adql import compile as compiler

    monkeypatch.setattr(compiler, "MAX_GROUPS", 3)
    events = [ev(i, user=f"u{i % 5}", page="home") for i in range(10)]
    stream = store(backend, SCHEMA, events)
    check(backend, stream, SCHEMA, events, "SELECT user, count(*) FROM t LIMIT 2")  # the core cuts: no cap
    for query in ("SELECT user, count(*) AS c FROM t ORDER BY c", "SELECT funnel(user, page = 'home') FROM t"):
        with pytest.raises(compiler.TooManyGroups, match="at most 3 distinct values"):
            engine(backend, stream, query)
    monkeypatch.setattr(compiler, "MAX_GROUPS", 5)
    check(backend, stream, SCHEMA, events, "SELECT user, count(*) AS c FROM t ORDER BY c LIMIT 2")


def test_renamed_fields_are_read_from_their_stored_path(backend) -> None:
    """A FieldSpec whose values live under another path (a renamed field) is read from that path."""
    import dataclasses

    from gateway.events import FieldSpec

    events = [ev(1, app="a", rt=5), ev(2, app="b", rt=7), ev(3, app="a")]
    stream = store(backend, {"app": "string", "rt": "integer"}, events)
    if "path" not in {f.name for f in dataclasses.fields(FieldSpec)}:
        pytest.skip("FieldSpec.path arrives with the HTTP layer's storage change")
    renamed = dataclasses.replace(stream, schema=(FieldSpec("application", "string", path="app"),
                                                  FieldSpec("rt", "integer")))
    got = engine(backend, renamed, "SELECT application, sum(rt) FROM t")
    assert got.results == [["a", 5], ["b", 7]] and got.fields[0]["label"] == "application"
