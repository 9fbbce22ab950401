"""The reference evaluator on small hand-computed cases (every expected value below was worked out by hand)."""

from __future__ import annotations

import math

import pytest
from appdynamics.adql_oracle import arith, like_regex, run

T = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z, a multiple of 2,000 ms
PICKUP = T + 9_000
SCHEMA = {"app": "string", "tier": "string", "rt": "integer", "price": "float", "ok": "boolean", "user": "string",
          "page": "string"}  # fmt: skip


def ev(offset_s: int, **values) -> dict:
    return {**values, "eventTimestamp": T + offset_s * 1000, "pickupTimestamp": PICKUP}


E1 = ev(1, app="a", tier="x", rt=10, price=1.5, ok=True, user="u1", page="home")
E2 = ev(2, app="a", tier="y", rt=20, price=2.5, ok=False, user="u1", page="cart")
E3 = ev(3, app="b", tier="x", rt=30, ok=True, user="u2", page="home")
E4 = ev(4, app="a", tier="x", price=4.0, user="u3", page="home")
E5 = ev(5, app="c", rt=7, price=0.5, user="u2", page="cart")
EVENTS = [E1, E2, E3, E4, E5]
NOW = T + 5_000


def rows(query: str, events=EVENTS, **kw) -> list[list]:
    return run(query, events, SCHEMA, NOW, **kw)["results"]


def apps(query: str, **kw) -> list:
    return [r[0] for r in rows(query, **kw)]


def iso(offset_s: int) -> str:
    return f"2023-11-14T22:13:{20 + offset_s:02d}.000Z"


def test_select_star_newest_first_with_rendered_dates() -> None:
    out = run("SELECT * FROM t", EVENTS, SCHEMA, NOW)
    assert [f[0] for f in out["fields"]] == [*SCHEMA, "eventTimestamp", "pickupTimestamp"]
    assert out["results"][0] == ["c", None, 7, 0.5, None, "u2", "cart", iso(5), "2023-11-14T22:13:29.000Z"]
    assert [r[0] for r in out["results"]] == ["c", "a", "b", "a", "a"]
    assert [r[7] for r in out["results"]] == [iso(5), iso(4), iso(3), iso(2), iso(1)]
    assert (out["total"], out["moreData"]) == (5, False)


def test_raw_limits_and_more_data() -> None:
    out = run("SELECT app FROM t", EVENTS, SCHEMA, NOW, limit=2)
    assert (out["results"], out["total"], out["moreData"]) == ([["c"], ["a"]], 5, True)
    assert len(rows("SELECT app FROM t LIMIT 3", limit=2)) == 3
    assert rows("SELECT app FROM t LIMIT 0") == []


def test_raw_order_by_nulls_last_both_ways() -> None:
    assert rows("SELECT app, rt FROM t ORDER BY rt") == [["c", 7], ["a", 10], ["a", 20], ["b", 30], ["a", None]]
    assert rows("SELECT rt FROM t ORDER BY rt DESC") == [[30], [20], [10], [7], [None]]
    assert rows("SELECT app FROM t ORDER BY app, rt DESC") == [["a"], ["a"], ["a"], ["b"], ["c"]]
    assert rows("SELECT rt FROM t ORDER BY app DESC, eventTimestamp") == [[7], [30], [10], [20], [None]]


def test_group_by_count_default_order() -> None:
    out = run("SELECT app, count(*) FROM t", EVENTS, SCHEMA, NOW)
    assert out["results"] == [["a", 3], ["b", 1], ["c", 1]]
    assert out["fields"] == [("app", "app", None, "string"), ("count(*)", "*", "count", "integer")]


def test_nested_terms_skip_null_keys() -> None:
    assert rows("SELECT app, tier, count(*) FROM t") == [["a", "x", 2], ["a", "y", 1], ["b", "x", 1]]


def test_limit_per_term() -> None:
    assert rows("SELECT app, count(*) FROM t LIMIT 1") == [["a", 3]]
    assert rows("SELECT app, tier, count(*) FROM t LIMIT 5, 1") == [["a", "x", 2], ["b", "x", 1]]


def test_default_ten_and_clamps() -> None:
    many = [ev(i % 50, key=f"k{i:04d}") for i in range(1200)]
    schema = {"key": "string"}
    out = run("SELECT key, count(*) FROM t", many, schema, NOW)["results"]
    assert out == [[f"k{i:04d}", 1] for i in range(10)]
    assert len(run("SELECT key, count(*) FROM t LIMIT 5000", many, schema, NOW)["results"]) == 1000
    two = [ev(0, a="a", b=f"b{i:03d}") for i in range(150)]
    nested = run("SELECT a, b, count(*) FROM t LIMIT 1, 500", two, {"a": "string", "b": "string"}, NOW)["results"]
    assert len(nested) == 100 and nested[0] == ["a", "b000", 1] and nested[-1] == ["a", "b099", 1]


def test_metrics() -> None:
    [row] = rows("SELECT count(*), count(rt), sum(rt), avg(rt), min(rt), max(rt), distinctcount(user), sum(price) "
                 "FROM t")  # fmt: skip
    assert row == [5, 4, 67, 16.75, 7, 30, 3, 8.5]
    assert isinstance(row[2], int) and isinstance(row[7], float)
    [[stdev]] = rows("SELECT stdev(rt) FROM t")
    assert stdev == pytest.approx(math.sqrt(326.75 / 4))
    assert rows("SELECT percentile(rt, 50, 90), percentile(rt, 100) FROM t") == [[15.0, 27.0, 30.0]]
    assert rows("SELECT stats(rt) FROM t") == [[4, 7, 30, 16.75, 67]]
    assert rows("SELECT stdev(rt), percentile(rt, 25) FROM t WHERE app = 'b'") == [[0.0, 30.0]]


def test_metrics_over_no_events() -> None:
    assert rows("SELECT count(*), sum(rt), avg(rt), min(rt), distinctcount(rt), percentile(rt, 50) FROM t",
                events=[]) == [[0, 0, None, None, 0, None]]  # fmt: skip
    assert rows("SELECT app, count(*) FROM t", events=[]) == []


def test_math_semantics() -> None:
    assert rows("SELECT rt / 3, -rt / 2, rt % 3, -rt % 3, rt / 0, price / 0, rt / 2.0, rt % 0 FROM t WHERE app = 'c'") \
        == [[2, -3, 1, -1, None, None, 3.5, None]]  # fmt: skip
    assert rows("SELECT rt + price FROM t ORDER BY eventTimestamp") == [[11.5], [22.5], [None], [None], [7.5]]
    assert rows("SELECT sum(rt) / count(*), sum(rt) * 1.0 / count(*), count(*) / 0 FROM t") == [[13, 13.4, None]]
    assert rows("SELECT (filter(count(*), WHERE page = 'home') * 100) / count(*) FROM t") == [[60]]


def test_arith_helper() -> None:
    assert [arith("/", 7, 2), arith("/", -7, 2), arith("/", 7, -2), arith("%", -7, 2), arith("%", 7, -2)] == [
        3, -3, -3, -1, 1,
    ]  # fmt: skip
    assert arith("+", None, 1) is None and arith("/", 1.0, 0) is None and arith("-", 5, 7) == -2


def test_null_predicates_and_negations() -> None:
    assert apps("SELECT rt FROM t WHERE price > 1 ORDER BY eventTimestamp") == [10, 20, None]
    assert apps("SELECT rt FROM t WHERE price != 1.5 ORDER BY eventTimestamp") == [20, 30, None, 7]
    assert apps("SELECT rt FROM t WHERE NOT price > 1 ORDER BY eventTimestamp") == [30, 7]
    assert apps("SELECT app FROM t WHERE tier IS NULL") == ["c"]
    assert apps("SELECT rt FROM t WHERE tier IS NOT NULL AND rt IS NOT NULL ORDER BY rt") == [10, 20, 30]
    assert apps("SELECT rt FROM t WHERE tier NOT IN ('x') ORDER BY eventTimestamp") == [20, 7]
    assert apps("SELECT rt FROM t WHERE tier IN ('x', 'y') AND NOT (rt = 10 OR rt = 30)") == [None, 20]
    assert apps("SELECT rt FROM t WHERE ok = true ORDER BY rt") == [10, 30]
    assert apps("SELECT rt FROM t WHERE ok ORDER BY rt") == [10, 30]


def test_between_like_regexp() -> None:
    assert apps("SELECT rt FROM t WHERE rt BETWEEN [10, 30) ORDER BY rt") == [10, 20]
    assert apps("SELECT rt FROM t WHERE rt BETWEEN (10, 30] ORDER BY rt") == [20, 30]
    assert apps("SELECT rt FROM t WHERE rt BETWEEN 7 AND 10 ORDER BY rt") == [7, 10]
    assert apps("SELECT rt FROM t WHERE rt NOT BETWEEN 7 AND 10 ORDER BY eventTimestamp") == [20, 30, None]
    assert apps("SELECT eventTimestamp FROM t WHERE page LIKE 'HO*' ORDER BY eventTimestamp") == [iso(1), iso(3),
                                                                                                iso(4)]  # fmt: skip
    assert apps("SELECT rt FROM t WHERE page LIKE 'c?rt' ORDER BY rt") == [7, 20]
    assert apps("SELECT rt FROM t WHERE page LIKE '%ar%' ORDER BY rt") == [7, 20]
    assert apps("SELECT rt FROM t WHERE page REGEXP 'h.*' AND rt IS NOT NULL ORDER BY rt") == [10, 30]
    assert apps("SELECT rt FROM t WHERE page REGEXP 'h'") == []
    assert apps("SELECT rt FROM t WHERE page NOT REGEXP 'h.*' ORDER BY rt") == [7, 20]
    assert like_regex("a.b*").fullmatch("A.Bcd") and not like_regex("a.b").fullmatch("axb")


def test_dates_in_conditions() -> None:
    assert apps("SELECT rt FROM t WHERE eventTimestamp >= '2023-11-14T22:13:23.000Z' ORDER BY eventTimestamp") == [
        30, None, 7,
    ]  # fmt: skip
    assert apps(f"SELECT rt FROM t WHERE eventTimestamp BETWEEN {T + 2000} AND {T + 3000} ORDER BY rt") == [20, 30]
    assert apps("SELECT rt FROM t WHERE eventTimestamp < '2023-11-14T23:13:22+01:00'") == [10]
    assert apps("SELECT rt FROM t WHERE rt = '10'") == [10]
    assert apps("SELECT rt FROM t WHERE app = 5") == []


def test_time_range_since_until_and_request_bounds() -> None:
    assert apps(f"SELECT rt FROM t SINCE {T + 2000} UNTIL {T + 4000} ORDER BY eventTimestamp") == [20, 30, None]
    assert apps("SELECT rt FROM t SINCE 1 m") == [7, None, 30, 20, 10]
    assert apps("SELECT rt FROM t", start=T + 4000) == [7, None]
    assert apps("SELECT rt FROM t", start=T + 2000, end=T + 3000) == [30, 20]
    assert apps(f"SELECT rt FROM t SINCE {T + 1000}", start=T + 4000, end=T + 4000) == [7, None, 30, 20, 10]


def test_series_and_range_buckets() -> None:
    out = run("SELECT series(eventTimestamp, '2s'), count(*) FROM t", EVENTS, SCHEMA, NOW)
    assert out["results"] == [[T, 1], [T + 2000, 2], [T + 4000, 2]]
    assert out["fields"][0][3] == "date"
    assert rows("SELECT series(rt, 10), count(*) FROM t") == [[0, 1], [10, 1], [20, 1], [30, 1]]
    assert rows("SELECT series(price, 2), avg(rt) FROM t") == [[0.0, 8.5], [2.0, 20.0], [4.0, None]]
    assert rows("SELECT range(rt, 10, 25), count(*) FROM t") == [["*-10", 1], ["10-25", 2], ["25-*", 1]]
    assert rows("SELECT app, series(eventTimestamp, '2s'), count(*) FROM t LIMIT 1") == [
        ["a", T, 1], ["a", T + 2000, 1], ["a", T + 4000, 1],
    ]  # fmt: skip


def test_filter_funnel_distinct() -> None:
    assert rows("SELECT filter(count(*), WHERE page = 'home') AS h, count(*) FROM t") == [[3, 5]]
    assert rows("SELECT app, filter(avg(rt), WHERE page = 'home') FROM t") == [["a", 10.0], ["b", 30.0], ["c", None]]
    assert rows("SELECT funnel(user, page = 'home', page = 'cart') FROM t") == [[3, 2]]
    assert rows("SELECT DISTINCT app FROM t") == [["a"], ["b"], ["c"]]
    assert rows("SELECT distinct(page), count(*) FROM t") == [["home", 3], ["cart", 2]]


def test_order_and_having_on_groups() -> None:
    assert rows("SELECT app, avg(rt) AS r FROM t ORDER BY r DESC") == [["b", 30.0], ["a", 15.0], ["c", 7.0]]
    assert rows("SELECT app, count(*) FROM t ORDER BY app DESC") == [["c", 1], ["b", 1], ["a", 3]]
    assert rows("SELECT app, count(*) AS c FROM t HAVING c > 1") == [["a", 3]]
    assert rows("SELECT app, tier, count(*) FROM t ORDER BY tier DESC") == [["a", "y", 1], ["a", "x", 2], ["b", "x", 1]]
    assert rows("SELECT app, max(rt) AS m FROM t HAVING m BETWEEN [10, 30)") == [["a", 20]]


def test_expression_group_term_and_functions() -> None:
    assert rows("SELECT rt % 2, count(*) FROM t") == [[0, 3], [1, 1]]
    assert rows("SELECT substring(page, 1, 2), substring(page, 2), indexof(page, 'm'), length(page), "
                "concat(app, '-', page), trim(concat(' ', app)) FROM t WHERE rt = 10") == [
        ["om", "me", 2, 4, "a-home", "a"]
    ]  # fmt: skip
    assert rows("SELECT now() FROM t LIMIT 1") == [[iso(5)]]
    assert rows("SELECT max(eventTimestamp), min(eventTimestamp) FROM t") == [[iso(5), iso(1)]]


def test_where_alias() -> None:
    assert apps("SELECT rt AS r FROM t WHERE r > 15") == [30, 20]


def test_raw_order_ties_are_newest_first() -> None:
    assert rows("SELECT page, rt FROM t ORDER BY page") == [["cart", 7], ["cart", 20], ["home", None], ["home", 30],
                                                            ["home", 10]]  # fmt: skip
