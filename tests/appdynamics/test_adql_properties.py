"""Property tests over the whole generated grammar: print/parse round trips, every generated query is accepted,
the reference evaluator agrees with itself across equivalent queries, and no input makes the parser, the semantic
pass or the schema check fail with anything but an AdqlError."""

from __future__ import annotations

from appdynamics.adql_oracle import run
from appdynamics.adql_strategies import events, expr_text, queries, schemas, shape, to_adql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.appdynamics.adql import AdqlError, parse
from plugins.appdynamics.adql.semantics import analyze
from plugins.appdynamics.results import output_columns

NOW = 1_700_000_000_000 + 5_000_000
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def schema_and_query(draw):
    schema = draw(schemas())
    return schema, draw(queries(schema))


@st.composite
def schema_query_events(draw):
    schema = draw(schemas())
    return schema, draw(queries(schema)), draw(events(schema))


@SETTINGS
@given(schema_and_query())
def test_print_parse_round_trip(case) -> None:
    _schema, query = case
    text = to_adql(query)
    assert shape(parse(text)) == shape(query), text


@SETTINGS
@given(schema_and_query())
def test_generated_queries_pass_the_semantic_pass_and_the_schema_check(case) -> None:
    schema, query = case
    analysis = analyze(parse(to_adql(query)))
    columns = output_columns(analysis, schema)
    assert len(columns) == (len(schema) + 2 if query.star else len(analysis.columns))


@SETTINGS
@given(schema_query_events())
def test_oracle_rows_have_one_value_per_field(case) -> None:
    schema, query, evs = case
    out = run(to_adql(query), evs, schema, NOW, limit=7)
    width = len(out["fields"])
    assert all(len(row) == width for row in out["results"])
    analysis = analyze(parse(to_adql(query)))
    if not analysis.aggregated:
        cap = analysis.row_limit if analysis.row_limit is not None else 7
        assert len(out["results"]) == min(cap, out["total"])
        assert out["moreData"] == (out["total"] > len(out["results"]))
    elif not analysis.group_terms:
        assert len(out["results"]) <= 1


@SETTINGS
@given(st.data())
def test_oracle_counts_agree_across_equivalent_queries(data) -> None:
    """count(*) WHERE c == rows of SELECT * WHERE c == filter(count(*), WHERE c); c and NOT c split the events."""
    schema = data.draw(schemas())
    evs = data.draw(events(schema))
    query = data.draw(queries(schema))
    if query.where is None:
        return
    cond = expr_text(query.where)
    [[matching]] = run(f"SELECT count(*) FROM t WHERE {cond}", evs, schema, NOW)["results"]
    raw = run(f"SELECT * FROM t WHERE {cond} LIMIT 10000", evs, schema, NOW)
    assert len(raw["results"]) == matching == raw["total"]
    [[filtered, total]] = run(f"SELECT filter(count(*), WHERE {cond}), count(*) FROM t", evs, schema, NOW)["results"]
    assert (filtered, total) == (matching, len(evs))
    [[negated]] = run(f"SELECT count(*) FROM t WHERE NOT ({cond})", evs, schema, NOW)["results"]
    assert matching + negated == len(evs)


ADQL_CHARS = st.sampled_from([
    *"SELECT*FROMWHERE selectfromwhere()[],.'\"`=<>!+-*/%0123456789abc_\n\t;#",
    "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "SINCE", "UNTIL", "HAVING", "ORDER BY", "LIMIT", "AS",
    "DISTINCT", "count(", "filter(", "series(", "WHERE ", "percentile(", "stats(", "funnel(", "range(", "now()",
    " 1 h", "'1m'", "GROUP BY", "1E999", "99999999999999999999",
])  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(ADQL_CHARS, max_size=60).map("".join) | st.text(max_size=80))
def test_arbitrary_text_only_raises_adql_errors(text: str) -> None:
    _accept_or_adql_error(text, {"a": "string", "b": "integer", "abc": "float"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_query(), st.data())
def test_mutated_queries_only_raise_adql_errors(case, data) -> None:
    schema, query = case
    text = to_adql(query)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()) and text:
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + data.draw(ADQL_CHARS) + text[at:]
    _accept_or_adql_error(text, schema)


def _accept_or_adql_error(text: str, schema: dict) -> None:
    try:
        analysis = analyze(parse(text))
        output_columns(analysis, schema)
    except AdqlError as err:
        assert err.line >= 1 and err.column >= 1
        assert err.reason


@SETTINGS
@given(st.data())
def test_oracle_group_counts_add_up(data) -> None:
    """Without truncation, the groups of a field partition the events whose value is not null."""
    schema = data.draw(schemas())
    evs = data.draw(events(schema))
    name = data.draw(st.sampled_from(sorted(schema)))
    field = to_adql_field(name)
    out = run(f"SELECT {field}, count(*) FROM t LIMIT 1000", evs, schema, NOW)["results"]
    present = [e[name] for e in evs if name in e]
    assert sum(count for _, count in out) == len(present)
    assert len(out) == len(set(present))
    counts = [count for _, count in out]
    assert counts == sorted(counts, reverse=True)  # default order: biggest groups first
    [[distinct]] = run(f"SELECT distinctcount({field}) FROM t", evs, schema, NOW)["results"]
    assert distinct == len(out)


def to_adql_field(name: str) -> str:
    from appdynamics.adql_strategies import _field

    from plugins.appdynamics.adql import ast as A

    return _field(A.Field(tuple(name.split("."))))
