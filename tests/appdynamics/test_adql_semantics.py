"""The semantic pass: implicit group-by terms, metric columns, LIMIT slots, HAVING/ORDER BY resolution, and the
mixing rules the ADQL reference documents."""

from __future__ import annotations

import pytest
from appdynamics.adql_builders import STAR, TS, F, L, agg, cmp, count, eq, op

from plugins.appdynamics.adql import AdqlError
from plugins.appdynamics.adql import ast as A
from plugins.appdynamics.adql.semantics import analyze_text


def shape(query: str) -> list[tuple]:
    return [(c.label, c.role, c.aggregation, c.part, c.field) for c in analyze_text(query).columns]


def test_raw_query_columns_are_values() -> None:
    a = analyze_text("SELECT a, b.c AS x, a + 1 FROM t")
    assert not a.aggregated
    assert shape("SELECT a, b.c AS x, a + 1 FROM t") == [
        ("a", "value", None, None, "a"), ("x", "value", None, None, "b.c"), ("a + 1", "value", None, None, "a + 1"),
    ]  # fmt: skip
    assert a.group_terms == () and a.metrics == ()
    assert a.has_math


def test_star() -> None:
    a = analyze_text("SELECT * FROM t")
    assert a.select.star and a.columns == () and not a.aggregated and not a.has_math


def test_fields_beside_aggregates_are_group_terms_in_select_order() -> None:
    a = analyze_text("SELECT application, segments.tier, avg(responseTime), count(*) FROM transactions")
    assert a.aggregated
    assert [(g.column, g.expr, g.limit) for g in a.group_terms] == [(0, F("application"), 10),
                                                                    (1, F("segments.tier"), 10)]
    assert a.metrics == (agg("avg", F("responseTime")), count())
    assert shape("SELECT application, avg(responseTime), count(*) FROM transactions") == [
        ("application", "group", None, None, "application"),
        ("avg(responseTime)", "metric", "avg", None, "responseTime"),
        ("count(*)", "metric", "count", None, "*"),
    ]


def test_expression_group_term() -> None:
    a = analyze_text("SELECT regionId % 4, count(*) FROM transactions")
    assert a.group_terms[0].expr == op("%", F("regionId"), L(4))
    assert a.columns[0].role == "group"


def test_group_term_after_metric_still_groups() -> None:
    a = analyze_text("SELECT count(*), application FROM t")
    assert [c.role for c in a.columns] == ["metric", "group"]
    assert a.group_terms[0].column == 1


def test_distinct_is_an_aggregation_with_default_top_10() -> None:
    a = analyze_text("SELECT DISTINCT requestGUID FROM transactions")
    assert a.aggregated and a.metrics == ()
    assert [(g.expr, g.limit) for g in a.group_terms] == [(F("requestGUID"), 10)]
    b = analyze_text("SELECT distinct(transactionName), count(*) FROM transactions")
    assert [c.label for c in b.columns] == ["transactionName", "count(*)"]


def test_limit_slots_defaults_and_clamps() -> None:
    a = analyze_text("SELECT a, b, c, count(*) FROM t LIMIT 5000, 500")
    assert [g.limit for g in a.group_terms] == [1000, 100, 10]
    b = analyze_text("SELECT application, transactionName, avg(responseTime) FROM transactions LIMIT 500, 50")
    assert [g.limit for g in b.group_terms] == [500, 50]
    c = analyze_text("SELECT series(eventTimestamp, '1m'), a, count(*) FROM t LIMIT 7, 20")
    assert [g.limit for g in c.group_terms] == [None, 20]  # the bucket takes slot 1 and ignores it
    d = analyze_text("SELECT a, series(eventTimestamp, '1m'), b, count(*) FROM t LIMIT 3, 99, 200")
    assert [g.limit for g in d.group_terms] == [3, None, 100]
    e = analyze_text("SELECT count(*) FROM t LIMIT 5, 5")  # no group terms: values beyond the terms are ignored
    assert e.group_terms == () and e.row_limit is None


def test_raw_limit() -> None:
    assert analyze_text("SELECT a FROM t").row_limit is None
    assert analyze_text("SELECT a FROM t LIMIT 7").row_limit == 7
    assert analyze_text("SELECT a FROM t LIMIT 20000").row_limit == 10_000
    with pytest.raises(AdqlError, match="LIMIT takes several values only for group-by terms"):
        analyze_text("SELECT a FROM t LIMIT 5, 5")


def test_at_most_five_group_terms() -> None:
    assert len(analyze_text("SELECT a, b, c, d, series(eventTimestamp, '1h'), count(*) FROM t").group_terms) == 5
    with pytest.raises(AdqlError, match="at most 5 group-by terms") as caught:
        analyze_text("SELECT a, b, c, d, e, f, count(*) FROM t")
    assert (caught.value.line, caught.value.column) == (1, 23)


def test_expanding_metrics() -> None:
    assert shape("SELECT stats(price) FROM t") == [
        ("count(price)", "metric", "count", "count", "price"), ("min(price)", "metric", "min", "min", "price"),
        ("max(price)", "metric", "max", "max", "price"), ("avg(price)", "metric", "avg", "avg", "price"),
        ("sum(price)", "metric", "sum", "sum", "price"),
    ]  # fmt: skip
    assert shape("SELECT percentile(price, 50, 99.5) FROM t") == [
        ("percentile(price, 50)", "metric", "percentile", 50, "price"),
        ("percentile(price, 99.5)", "metric", "percentile", 99.5, "price"),
    ]
    assert shape("SELECT percentile(price, 90) AS p FROM t") == [("p", "metric", "percentile", 90, "price")]
    assert shape('SELECT funnel(user, page = "a", page = "b") AS "Home, Cart" FROM t') == [
        ("Home", "metric", "funnel", 0, "user"), ("Cart", "metric", "funnel", 1, "user"),
    ]  # fmt: skip
    assert [c.label for c in analyze_text('SELECT funnel(user, a = 1, a = 2) AS "x" FROM t').columns] == [
        "x step 1", "x step 2",
    ]  # fmt: skip


def test_math_over_metrics_is_one_expression_column() -> None:
    a = analyze_text("SELECT filter(sum(a), WHERE b IS NOT NULL) / count(c) AS r FROM t")
    assert shape("SELECT filter(sum(a), WHERE b IS NOT NULL) / count(c) AS r FROM t") == [
        ("r", "metric", "expression", None, "filter(sum(a), WHERE b IS NOT NULL) / count(c)")
    ]
    assert a.metrics == (agg("sum", F("a"), where=A.IsNull(F("b"), negated=True)), agg("count", F("c")))


def test_metrics_are_deduplicated() -> None:
    a = analyze_text("SELECT count(*), sum(x) / count(*), sum(x) FROM t")
    assert a.metrics == (count(), agg("sum", F("x")))


def test_bucket_columns() -> None:
    assert shape("SELECT series(eventTimestamp, '1h') AS hour, avg(price) FROM t") == [
        ("hour", "bucket", None, None, "eventTimestamp"), ("avg(price)", "metric", "avg", None, "price"),
    ]  # fmt: skip
    assert analyze_text("SELECT range(x, 1, 2), count(*) FROM t").columns[0].role == "bucket"


@pytest.mark.parametrize(
    ("query", "words", "column"),
    [
        ("SELECT a + count(*) FROM t", "a is outside an aggregate", 8),
        ("SELECT count(*) * b FROM t", "b is outside an aggregate", 19),
        ("SELECT sum(count(*)) FROM t", "metric functions are not allowed inside sum()", 12),
        ("SELECT avg(series(eventTimestamp, '1m')) FROM t", "bucketing functions are not allowed", 12),
        ("SELECT series(eventTimestamp, '1m') + 1 FROM t", "must stand alone", 8),
        ("SELECT stats(a) / 2 FROM t", "several values and cannot be used in math", 8),
        ("SELECT percentile(a, 50, 90) + 1 FROM t", "several values", 8),
        ("SELECT a = 1 FROM t", "a condition is not a SELECT expression", 8),
        ("SELECT x, a IS NULL FROM t", "a condition is not a SELECT expression", 11),
        ("SELECT length(count(*)) FROM t", "length() cannot be applied to metrics", 8),
        ("SELECT x FROM t WHERE count(*) > 3", "only allowed in SELECT and HAVING, not in WHERE", 23),
        ("SELECT x FROM t WHERE series(eventTimestamp, '1m') > 3", "only allowed in SELECT, not in WHERE", 23),
        ("SELECT filter(count(*), WHERE sum(x) > 1) FROM t", "not in a filter() condition", 31),
        ("SELECT funnel(u, count(*) > 1) FROM t", "not in a funnel step", 18),
        ("SELECT x FROM t HAVING x > 1", "HAVING needs an aggregation", 24),
        ("SELECT a, count(*) FROM t HAVING sum(b) > 1", "HAVING can only use SELECT columns", 34),
        ("SELECT a, count(*) FROM t HAVING c > 1", "HAVING can only use SELECT columns", 34),
        ("SELECT a, stats(b) FROM t HAVING b > 1", "HAVING can only use SELECT columns", 34),
        ("SELECT avg(x) FROM t ORDER BY y", "only fields and aliases listed in SELECT", 31),
        ("SELECT a, count(*) FROM t ORDER BY sum(x)", "only fields and aliases listed in SELECT", 36),
        ("SELECT percentile(x, 90) FROM t ORDER BY percentile(x, 90)", "ORDER BY cannot use percentile()", 42),
        ("SELECT percentile(x, 90) AS p FROM t ORDER BY p", "ORDER BY cannot use percentile()", 47),
        ("SELECT stats(x) FROM t ORDER BY stats(x)", "cannot use stats()", 33),
        ("SELECT * FROM t ORDER BY a + 1", "ORDER BY after SELECT * takes field names", 26),
        ("SELECT a FROM t ORDER BY a + 1", "only fields and aliases listed in SELECT", 26),
    ],
)
def test_rejected(query: str, words: str, column: int) -> None:
    with pytest.raises(AdqlError) as caught:
        analyze_text(query)
    assert words in caught.value.reason
    assert (caught.value.line, caught.value.column) == (1, column)


def test_where_alias_resolves_to_the_selected_expression() -> None:
    a = analyze_text("SELECT field_name AS myField FROM t WHERE myField > 2")
    assert a.where == cmp(">", F("field_name"), L(2))
    b = analyze_text("SELECT length(name) AS n, count(*) FROM t WHERE n > 3 AND other = 1")
    assert b.where == A.And((cmp(">", A.FuncCall("length", (F("name"),)), L(3)), eq("other", 1)))
    # an alias naming a metric is not a per-event value: the WHERE keeps the field
    c = analyze_text("SELECT min(eventTimestamp) AS eventTimestamp FROM t WHERE eventTimestamp > 5")
    assert c.where == cmp(">", TS, L(5))


def test_having_resolves_to_column_refs() -> None:
    a = analyze_text("SELECT application, avg(responseTime) AS AVRT FROM transactions HAVING AVRT BETWEEN [10, 90)")
    assert a.having == A.Between(A.ColumnRef(1), L(10), L(90), True, False)
    b = analyze_text("SELECT a, count(*), sum(x) FROM t HAVING count(*) > 5 OR sum(x) / count(*) < 2 AND a != 'z'")
    assert b.having == A.Or((
        cmp(">", A.ColumnRef(1), L(5)),
        A.And((cmp("<", op("/", A.ColumnRef(2), A.ColumnRef(1)), L(2)), cmp("!=", A.ColumnRef(0), L("z")))),
    ))  # fmt: skip


def test_order_by_resolution() -> None:
    a = analyze_text('SELECT a, avg(rt) AS "Response Time" FROM t ORDER BY `Response Time` DESC, a')
    assert [(o.column, o.descending) for o in a.order_by] == [(1, True), (0, False)]
    b = analyze_text("SELECT a, count(*) FROM t ORDER BY count(*) DESC")
    assert [(o.column, o.expr) for o in b.order_by] == [(1, count())]
    c = analyze_text("SELECT a, b FROM t ORDER BY eventTimestamp DESC")  # raw: unselected field allowed
    assert [(o.column, o.expr, o.descending) for o in c.order_by] == [(None, TS, True)]
    d = analyze_text("SELECT * FROM t ORDER BY price")
    assert [(o.column, o.expr) for o in d.order_by] == [(None, F("price"))]
    e = analyze_text("SELECT series(eventTimestamp, '1h') AS h, count(*) AS c FROM t ORDER BY h DESC")
    assert [(o.column, o.descending) for o in e.order_by] == [(0, True)]
    f = analyze_text("SELECT avg(metrics.`End User (ms)`) AS rt, page FROM t ORDER BY rt")
    assert [o.column for o in f.order_by] == [0]


def test_alias_equal_to_field_name_orders_by_the_alias() -> None:
    a = analyze_text("SELECT app, min(eventTimestamp) AS eventTimestamp FROM t ORDER BY eventTimestamp DESC")
    assert [(o.column, o.expr) for o in a.order_by] == [(1, agg("min", TS))]


def test_filter_star_only_in_count() -> None:
    a = analyze_text("SELECT filter(count(*), WHERE x = 1) FROM t")
    assert a.metrics == (agg("count", STAR, where=eq("x", 1)),)


def test_time_bounds() -> None:
    now = 1_700_000_000_000
    assert analyze_text("SELECT a FROM t").time_bounds(now, 5, 9) == (5, 9)
    assert analyze_text("SELECT a FROM t SINCE 1 h").time_bounds(now, 5, 9) == (now - 3_600_000, now)
    assert analyze_text("SELECT a FROM t SINCE 2 d UNTIL 1 w").time_bounds(now, None, None) == (
        now - 2 * 86_400_000, now - 7 * 86_400_000,
    )  # fmt: skip
    assert analyze_text("SELECT a FROM t SINCE 1502147143000 UNTIL 1502148043000").time_bounds(now, 1, 2) == (
        1502147143000, 1502148043000,
    )  # fmt: skip


def test_same_expression_selected_twice_orders_by_the_first() -> None:
    a = analyze_text("SELECT brand, brand AS calc FROM t ORDER BY brand")
    assert [o.column for o in a.order_by] == [0]
    b = analyze_text("SELECT a, count(*), count(*) AS c FROM t HAVING count(*) > 1 ORDER BY c")
    assert b.having == cmp(">", A.ColumnRef(1), L(1))
    assert [o.column for o in b.order_by] == [2]


def test_referenced_fields() -> None:
    a = analyze_text("SELECT a.b, filter(count(*), WHERE c = 1), funnel(u, d = 1, e = 2) FROM t WHERE f > 1")
    assert a.referenced_fields() == {"a.b", "c", "u", "d", "e", "f", "eventTimestamp"}
    b = analyze_text("SELECT x AS y FROM t WHERE y > 1 ORDER BY z")
    assert b.referenced_fields() == {"x", "z", "eventTimestamp"}
