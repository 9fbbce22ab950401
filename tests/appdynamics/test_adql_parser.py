"""The ADQL parser table: every example of the three reference documents plus the rest of the grammar, valid and
invalid, each valid one checked against the expected syntax tree and each invalid one against its position."""

from __future__ import annotations

import time

import pytest
from appdynamics.adql_builders import AND, OR, STAR, TS, F, L, P, agg, cmp, count, eq, fn, op

from plugins.appdynamics.adql import AdqlError, parse
from plugins.appdynamics.adql import ast as A

# (query, expected parts). Keys: items [(expr, alias) | expr], texts, from, star, distinct, where, since, until,
# having, order [(expr, descending)], limits. Only the listed parts are compared; each entry lists at least one.
DOC_EXAMPLES = [
    # appdynamics-analytics-events-api.txt (the curl workflow)
    ("SELECT * FROM myProducts", {"star": True, "items": [], "from": "myProducts"}),
    # appdynamics-events-api-and-adql.md
    ("SELECT * FROM transactions", {"star": True, "from": "transactions", "where": None}),
    ('SELECT ip, count(*) FROM web_session_records WHERE appkey = "yourApp" LIMIT 10',
     {"items": [F("ip"), count()], "where": eq("appkey", "yourApp"), "limits": (10,)}),
    ("SELECT regionId % 4, count(*) FROM transactions", {"items": [op("%", F("regionId"), L(4)), count()]}),
    ("SELECT * FROM browser_records WHERE appkey = 'your_appkey'", {"where": eq("appkey", "your_appkey")}),
    ('SELECT * FROM transactions WHERE application = "yourApp"', {"where": eq("application", "yourApp")}),
    ("SELECT count(orderID) AS 'Sales' FROM logs WHERE method='GET'",
     {"items": [(agg("count", F("orderID")), "Sales")], "where": eq("method", "GET")}),
    ("SELECT avg(field1 + field2) FROM t", {"items": [agg("avg", op("+", F("field1"), F("field2")))]}),
    ("SELECT series(field1 + field2, 1), count(*) FROM t",
     {"items": [A.Series(op("+", F("field1"), F("field2")), 1, False), count()]}),
    ("SELECT sum(a) / count(b) FROM t", {"items": [op("/", agg("sum", F("a")), agg("count", F("b")))]}),
    ("SELECT percentile(segments.transactionTime, 90) FROM transactions",
     {"items": [agg("percentile", F("segments.transactionTime"), L(90))]}),
    ("SELECT series(eventTimestamp, '1m'), count(*) FROM transactions",
     {"items": [A.Series(TS, 60_000, True), count()]}),
    ("SELECT filter(sum(field1), WHERE field2 IS NOT NULL) FROM t",
     {"items": [agg("sum", F("field1"), where=A.IsNull(F("field2"), negated=True))]}),
    ("SELECT * FROM transactions SINCE 1 h UNTIL 15 m",
     {"since": A.TimeValue(1, "h"), "until": A.TimeValue(15, "m")}),
    ("SELECT * FROM transactions SINCE 1 h", {"since": A.TimeValue(1, "h"), "until": None}),
    ("SELECT * FROM transactions SINCE 1502147143000 UNTIL 1502148043000",
     {"since": A.TimeValue(1502147143000), "until": A.TimeValue(1502148043000)}),
    ("SELECT * FROM t WHERE status IN ('a','b')", {"where": A.InList(F("status"), (L("a"), L("b")))}),
    ("SELECT * FROM t WHERE x BETWEEN [1, 5]", {"where": A.Between(F("x"), L(1), L(5), True, True)}),
    ("SELECT * FROM t WHERE x BETWEEN (1, 5)", {"where": A.Between(F("x"), L(1), L(5), False, False)}),
    ("SELECT avg(btdata.estimatedtime) FROM browser_records WHERE appkey = 'your_appkey'",
     {"items": [agg("avg", F("btdata.estimatedtime"))]}),
    # adql-reference.md, part 1
    ("SELECT DISTINCT requestGUID FROM transactions", {"distinct": True, "items": [F("requestGUID")]}),
    ("SELECT distinct userdata.username FROM browser_records", {"distinct": True, "items": [F("userdata.username")]}),
    ("SELECT distinct(transactionName), count(*) FROM transactions",
     {"distinct": True, "items": [F("transactionName"), count()], "texts": ["transactionName", "count(*)"]}),
    ("SELECT distinct (segments.node), count(*) FROM transactions",
     {"distinct": True, "items": [F("segments.node"), count()], "texts": ["segments.node", "count(*)"]}),
    ("select * from transactions where application = 'a'", {"star": True, "where": eq("application", "a")}),
    ("Select count(*) from transactions where x is NOT NULL",
     {"items": [count()], "where": A.IsNull(F("x"), negated=True)}),
    ("SELECT * FROM t WHERE x is not NULL", {"where": A.IsNull(F("x"), negated=True)}),
    ("SELECT `full name` FROM t", {"items": [P("full name")]}),
    ("SELECT metrics.`End User Response Time (ms)` FROM browser_records",
     {"items": [P("metrics", "End User Response Time (ms)")]}),
    ("SELECT segments.userData.`Offer-Converted-Value` FROM transactions",
     {"items": [P("segments", "userData", "Offer-Converted-Value")]}),
    ("SELECT count(*) AS Sales FROM logs", {"items": [(count(), "Sales")]}),
    ('SELECT avg(responseTime) AS "Response Time" FROM transactions ORDER BY `Response Time` DESC',
     {"items": [(agg("avg", F("responseTime")), "Response Time")], "order": [(F("Response Time"), True)]}),
    ("SELECT min(eventTimestamp) AS eventTimestamp FROM t", {"items": [(agg("min", TS), "eventTimestamp")]}),
    ("SELECT 'between', 'in', 'select' FROM t", {"items": [F("between"), F("in"), F("select")]}),
    ("SELECT * FROM t WHERE x = ''", {"where": eq("x", "")}),
    ("SELECT * FROM t WHERE a = 2 AND b = -4 AND c = 3.14", {"where": AND(eq("a", 2), eq("b", -4), eq("c", 3.14))}),
    ("SELECT * FROM t WHERE a = true OR b = false", {"where": OR(eq("a", True), eq("b", False))}),
    ("SELECT segments.tier, segments.node, segments.errorList.errorCode, segments.httpData.sessionId FROM transactions",
     {"items": [F("segments.tier"), F("segments.node"), F("segments.errorList.errorCode"),
                F("segments.httpData.sessionId")]}),
    ("SELECT browserRecords.pagename, userdata.practiceId FROM browser_records",
     {"items": [F("browserRecords.pagename"), F("userdata.practiceId")]}),
    ("SELECT field_name AS myField FROM t WHERE myField > 2",
     {"items": [(F("field_name"), "myField")], "where": cmp(">", F("myField"), L(2))}),
    ("SELECT * FROM t WHERE x NOT IN ('a', 'b')", {"where": A.InList(F("x"), (L("a"), L("b")), negated=True)}),
    ("SELECT * FROM t WHERE uri IN ('api_v2./v2/events/*/search')",
     {"where": A.InList(F("uri"), (L("api_v2./v2/events/*/search"),))}),
    ("SELECT * FROM transactions WHERE segments.userData.CompanyId = 'Acme*'",
     {"where": eq("segments.userData.CompanyId", "Acme*")}),
    ('SELECT * FROM logs WHERE message LIKE "error*"', {"where": A.Like(F("message"), "error*")}),
    ('SELECT browserRecords.pagename FROM web_session_records WHERE browserRecords.pagename REGEXP "portal.*"',
     {"where": A.Regexp(F("browserRecords.pagename"), "portal.*")}),
    ('SELECT * FROM t WHERE pagename REGEX "portal.*"', {"where": A.Regexp(F("pagename"), "portal.*")}),
    ("SELECT application, avg(responseTime) AS AVRT FROM transactions HAVING AVRT BETWEEN [10, 90)",
     {"having": A.Between(F("AVRT"), L(10), L(90), True, False)}),
    ("SELECT * FROM t WHERE eventTimestamp BETWEEN '2024-01-01T00:00:00.000Z' AND '2024-01-02T00:00:00.000Z'",
     {"where": A.Between(TS, L("2024-01-01T00:00:00.000Z"), L("2024-01-02T00:00:00.000Z"))}),
    ("SELECT * FROM t WHERE eventTimestamp >= 1700000000000", {"where": cmp(">=", TS, L(1700000000000))}),
    ("SELECT filter(sum(a), WHERE b IS NOT NULL) / count(c) FROM t",
     {"items": [op("/", agg("sum", F("a"), where=A.IsNull(F("b"), negated=True)), agg("count", F("c")))]}),
    ('SELECT ((filter(count(*), where X = "a") * 1.0) / (filter(count(*), where X = "b"))) * 100 FROM t',
     {"items": [op("*", op("/", op("*", agg("count", STAR, where=eq("X", "a")), L(1.0)),
                               agg("count", STAR, where=eq("X", "b"))), L(100))]}),
    ('SELECT series(eventTimestamp, "1m"), count(*) FROM t', {"items": [A.Series(TS, 60_000, True), count()]}),
    ("SELECT series(eventTimestamp, '10m'), count(*) FROM t", {"items": [A.Series(TS, 600_000, True), count()]}),
    ("SELECT series(eventTimestamp, '6h'), count(*) FROM t", {"items": [A.Series(TS, 21_600_000, True), count()]}),
    ('SELECT funnel(userId, page = "a", page = "b", page = "c") AS "A,B,C" FROM t',
     {"items": [(A.Funnel(F("userId"), (eq("page", "a"), eq("page", "b"), eq("page", "c"))), "A,B,C")]}),
    ("SELECT substring(browserRecords.pagename, 19) FROM browser_records",
     {"items": [fn("substring", F("browserRecords.pagename"), L(19))]}),
    ("SELECT * FROM transactions SINCE 30 minutes", {"since": A.TimeValue(30, "m")}),
    ("SELECT eventTimestamp, application FROM transactions ORDER BY eventTimestamp desc", {"order": [(TS, True)]}),
    ("SELECT application, transactionName, avg(responseTime) FROM transactions LIMIT 500, 50",
     {"items": [F("application"), F("transactionName"), agg("avg", F("responseTime"))], "limits": (500, 50)}),
    ("SELECT application, count(*) FROM transactions LIMIT 10000", {"limits": (10000,)}),
    ("SELECT application, count(*) FROM transactions LIMIT 2000", {"limits": (2000,)}),
    ("SELECT sessionId, browserRecords FROM web_session_records WHERE appkey = 'AD-AAB-AAA'",
     {"items": [F("sessionId"), F("browserRecords")], "where": eq("appkey", "AD-AAB-AAA")}),
    # adql-reference.md, part 2 (response example)
    ('SELECT userdata.practiceId, avg(metrics.`End User Response Time (ms)`) AS "Response Time", count(*) '
     "FROM browser_records",
     {"items": [F("userdata.practiceId"), (agg("avg", P("metrics", "End User Response Time (ms)")), "Response Time"),
                count()]}),
    ("SELECT ADQL FROM biz_txn_v1", {"items": [F("ADQL")], "from": "biz_txn_v1"}),
    # adql-reference.md open question: an unquoted bare word on the right is a field reference
    ("SELECT * FROM transactions WHERE application = foo", {"where": cmp("=", F("application"), F("foo"))}),
    # event types named in the references
    ("SELECT * FROM logs", {"from": "logs"}),
    ("SELECT * FROM mobile_snapshots", {"from": "mobile_snapshots"}),
    ("SELECT count(*) FROM mobile_session_records", {"from": "mobile_session_records", "items": [count()]}),
    ("SELECT count(*) FROM synth_session_records", {"from": "synth_session_records"}),
    ("SELECT * FROM application_logs", {"from": "application_logs"}),
    # issue 9 (benchmark queries)
    ("SELECT productBrand, count(*) FROM myProducts", {"items": [F("productBrand"), count()]}),
    ("SELECT count(*) FROM myProducts WHERE userRating >= 3", {"where": cmp(">=", F("userRating"), L(3))}),
    ("SELECT series(eventTimestamp, '1h'), avg(price) FROM myProducts",
     {"items": [A.Series(TS, 3_600_000, True), agg("avg", F("price"))]}),
]

MORE_VALID = [
    # select lists, aliases, quoting
    ("SELECT a, b, c FROM t", {"items": [F("a"), F("b"), F("c")], "distinct": False}),
    ("SELECT a AS x, b AS 'y', c AS \"z z\", d AS `w w` FROM t",
     {"items": [(F("a"), "x"), (F("b"), "y"), (F("c"), "z z"), (F("d"), "w w")]}),
    ("SELECT a as x FROM t", {"items": [(F("a"), "x")]}),
    ("SELECT `a.b` FROM t", {"items": [P("a.b")]}),
    ("SELECT x.`y z`.w FROM t", {"items": [P("x", "y z", "w")]}),
    ("SELECT `odd``name` FROM t", {"items": [P("odd`name")]}),
    ("SELECT x FROM `my schema`", {"from": "my schema"}),
    ("SELECT segments.from, a.limit FROM t", {"items": [P("segments", "from"), P("a", "limit")]}),
    ("SELECT count FROM t", {"items": [F("count")]}),
    ("SELECT count(*) AS count FROM t", {"items": [(count(), "count")]}),
    ("SELECT DISTINCT a, b FROM t", {"distinct": True, "items": [F("a"), F("b")]}),
    ("SELECT DISTINCT(a) FROM t", {"distinct": True, "items": [F("a")]}),
    ("SELECT distinct a, count(*) FROM t", {"distinct": True, "items": [F("a"), count()]}),
    ("SELECT selection, fromage, whereabouts FROM t",
     {"items": [F("selection"), F("fromage"), F("whereabouts")]}),
    ("sElEcT A fRoM T", {"items": [F("A")], "from": "T"}),
    ("SELECT a\nFROM t\nWHERE b = 1\n", {"items": [F("a")], "where": eq("b", 1)}),
    ("  SELECT\ta  FROM  t  ", {"items": [F("a")]}),
    ("SELECT 'plain text' FROM t", {"items": [L("plain text")]}),
    ("SELECT a FROM t WHERE 'in' = 'x'", {"where": eq("in", "x")}),
    ("SELECT a FROM t ORDER BY 'select'", {"order": [(F("select"), False)]}),
    # expressions and precedence
    ("SELECT a + b * c FROM t", {"items": [op("+", F("a"), op("*", F("b"), F("c")))]}),
    ("SELECT (a + b) * c FROM t", {"items": [op("*", op("+", F("a"), F("b")), F("c"))]}),
    ("SELECT a - b - c FROM t", {"items": [op("-", op("-", F("a"), F("b")), F("c"))]}),
    ("SELECT a / b % c FROM t", {"items": [op("%", op("/", F("a"), F("b")), F("c"))]}),
    ("SELECT -a FROM t", {"items": [A.Negate(F("a"))]}),
    ("SELECT -(a + 1) FROM t", {"items": [A.Negate(op("+", F("a"), L(1)))]}),
    ("SELECT a - -1 FROM t", {"items": [op("-", F("a"), L(-1))]}),
    ("SELECT a -1 FROM t", {"items": [op("-", F("a"), L(1))]}),
    ("SELECT a+1 FROM t", {"items": [op("+", F("a"), L(1))]}),
    ("SELECT 1.5e3, .5, 7. FROM t", {"items": [L(1500.0), L(0.5), L(7.0)]}),
    ("SELECT a * 1.0 FROM t", {"items": [op("*", F("a"), L(1.0))]}),
    ("SELECT +a FROM t", {"items": [F("a")]}),
    ("SELECT a + b AS total FROM t", {"items": [(op("+", F("a"), F("b")), "total")], "texts": ["a + b"]}),
    # scalar functions
    ("SELECT substring(name, 1, 3) FROM t", {"items": [fn("substring", F("name"), L(1), L(3))]}),
    ("SELECT indexof(name, 'x') FROM t", {"items": [fn("indexof", F("name"), L("x"))]}),
    ("SELECT length(name) FROM t", {"items": [fn("length", F("name"))]}),
    ("SELECT trim(name) FROM t", {"items": [fn("trim", F("name"))]}),
    ("SELECT concat(a, '-', b) FROM t", {"items": [fn("concat", F("a"), L("-"), F("b"))]}),
    ("SELECT now() FROM t", {"items": [fn("now")]}),
    ("SELECT * FROM t WHERE eventTimestamp > now() - 3600000",
     {"where": cmp(">", TS, op("-", fn("now"), L(3600000)))}),
    ("SELECT LENGTH(name), Substring(name, 2) FROM t",
     {"items": [fn("length", F("name")), fn("substring", F("name"), L(2))]}),
    ("SELECT length(trim(name)) FROM t", {"items": [fn("length", fn("trim", F("name")))]}),
    # aggregates
    ("SELECT count(*), count(a), sum(a), avg(a), min(a), max(a), distinctcount(a), stdev(a), stats(a) FROM t",
     {"items": [count(), agg("count", F("a")), agg("sum", F("a")), agg("avg", F("a")), agg("min", F("a")),
                agg("max", F("a")), agg("distinctcount", F("a")), agg("stdev", F("a")), agg("stats", F("a"))]}),
    ("SELECT COUNT(*), Avg(a) FROM t", {"items": [count(), agg("avg", F("a"))]}),
    ("SELECT count ( * ) FROM t", {"items": [count()]}),
    ("SELECT percentile(a, 50, 90, 99.9) FROM t", {"items": [agg("percentile", F("a"), L(50), L(90), L(99.9))]}),
    ("SELECT percentile(a, 100) FROM t", {"items": [agg("percentile", F("a"), L(100))]}),
    ("SELECT sum(a) / count(*) * 100 FROM t", {"items": [op("*", op("/", agg("sum", F("a")), count()), L(100))]}),
    ("SELECT max(a) - min(a) AS spread FROM t",
     {"items": [(op("-", agg("max", F("a")), agg("min", F("a"))), "spread")]}),
    ("SELECT avg(a * 2 + 1) FROM t", {"items": [agg("avg", op("+", op("*", F("a"), L(2)), L(1)))]}),
    ("SELECT -sum(a) FROM t", {"items": [A.Negate(agg("sum", F("a")))]}),
    ("SELECT sum(length(name)) FROM t", {"items": [agg("sum", fn("length", F("name")))]}),
    ("SELECT filter(count(*), WHERE a = 1) AS ones, count(*) FROM t",
     {"items": [(agg("count", STAR, where=eq("a", 1)), "ones"), count()]}),
    ("SELECT FILTER(avg(x), where y > 2 AND z IN (1, 2)) FROM t",
     {"items": [agg("avg", F("x"), where=AND(cmp(">", F("y"), L(2)), A.InList(F("z"), (L(1), L(2)))))]}),
    ("SELECT filter(filter(count(*), WHERE a = 1), WHERE b = 2) FROM t",
     {"items": [agg("count", STAR, where=AND(eq("a", 1), eq("b", 2)))]}),
    ("SELECT filter(sum(a) / count(*), WHERE b = 1) FROM t",
     {"items": [op("/", agg("sum", F("a"), where=eq("b", 1)), agg("count", STAR, where=eq("b", 1)))]}),
    ("SELECT series(price, 10), count(*) FROM t", {"items": [A.Series(F("price"), 10, False), count()]}),
    ("SELECT series(price, 2.5), count(*) FROM t", {"items": [A.Series(F("price"), 2.5, False), count()]}),
    ("SELECT series(eventTimestamp, '30s'), count(*) FROM t", {"items": [A.Series(TS, 30_000, True), count()]}),
    ("SELECT series(eventTimestamp, '1d'), count(*) FROM t", {"items": [A.Series(TS, 86_400_000, True), count()]}),
    ("SELECT series(eventTimestamp, '1w'), count(*) FROM t", {"items": [A.Series(TS, 604_800_000, True), count()]}),
    ("SELECT range(responseTime, 100, 500, 1000), count(*) FROM t",
     {"items": [A.RangeBuckets(F("responseTime"), (100, 500, 1000)), count()]}),
    ("SELECT funnel(sessionId, step = 1, step = 2) FROM t",
     {"items": [A.Funnel(F("sessionId"), (eq("step", 1), eq("step", 2)))]}),
    # WHERE
    ("SELECT * FROM t WHERE a != 1", {"where": cmp("!=", F("a"), L(1))}),
    ("SELECT * FROM t WHERE a <> 1", {"where": cmp("!=", F("a"), L(1))}),
    ("SELECT * FROM t WHERE a < 1 AND b <= 2 AND c > 3 AND d >= 4",
     {"where": AND(cmp("<", F("a"), L(1)), cmp("<=", F("b"), L(2)), cmp(">", F("c"), L(3)), cmp(">=", F("d"), L(4)))}),
    ("SELECT * FROM t WHERE a = 1 OR b = 2 AND c = 3", {"where": OR(eq("a", 1), AND(eq("b", 2), eq("c", 3)))}),
    ("SELECT * FROM t WHERE (a = 1 OR b = 2) AND c = 3", {"where": AND(OR(eq("a", 1), eq("b", 2)), eq("c", 3))}),
    ("SELECT * FROM t WHERE NOT a = 1", {"where": A.Not(eq("a", 1))}),
    ("SELECT * FROM t WHERE NOT (a = 1 OR b = 2)", {"where": A.Not(OR(eq("a", 1), eq("b", 2)))}),
    ("SELECT * FROM t WHERE NOT NOT a = 1", {"where": A.Not(A.Not(eq("a", 1)))}),
    ("SELECT * FROM t WHERE a = 1 and b = 2 or c = 3", {"where": OR(AND(eq("a", 1), eq("b", 2)), eq("c", 3))}),
    ("SELECT * FROM t WHERE a IN (1)", {"where": A.InList(F("a"), (L(1),))}),
    ("SELECT * FROM t WHERE a in ('x', \"y\", 'z')", {"where": A.InList(F("a"), (L("x"), L("y"), L("z")))}),
    ("SELECT * FROM t WHERE a BETWEEN 1 AND 5 AND b = 2",
     {"where": AND(A.Between(F("a"), L(1), L(5)), eq("b", 2))}),
    ("SELECT * FROM t WHERE a NOT BETWEEN 1 AND 5", {"where": A.Between(F("a"), L(1), L(5), negated=True)}),
    ("SELECT * FROM t WHERE a BETWEEN [1, 5)", {"where": A.Between(F("a"), L(1), L(5), True, False)}),
    ("SELECT * FROM t WHERE a BETWEEN (1, 5]", {"where": A.Between(F("a"), L(1), L(5), False, True)}),
    ("SELECT * FROM t WHERE a BETWEEN (-5, -1)", {"where": A.Between(F("a"), L(-5), L(-1), False, False)}),
    ("SELECT * FROM t WHERE a BETWEEN [1.5, 2.5]", {"where": A.Between(F("a"), L(1.5), L(2.5))}),
    ("SELECT * FROM t WHERE eventTimestamp BETWEEN ['2024-01-01', '2024-02-01')",
     {"where": A.Between(TS, L("2024-01-01"), L("2024-02-01"), True, False)}),
    ("SELECT * FROM t WHERE a BETWEEN (1 + 1) AND 5", {"where": A.Between(F("a"), op("+", L(1), L(1)), L(5))}),
    ("SELECT * FROM t WHERE a NOT BETWEEN [1, 5]", {"where": A.Between(F("a"), L(1), L(5), negated=True)}),
    ("SELECT * FROM t WHERE a LIKE '*x?y*'", {"where": A.Like(F("a"), "*x?y*")}),
    ("SELECT * FROM t WHERE a NOT LIKE '%x%'", {"where": A.Like(F("a"), "%x%", negated=True)}),
    ("SELECT * FROM t WHERE a regexp 'x[0-9]+'", {"where": A.Regexp(F("a"), "x[0-9]+")}),
    ("SELECT * FROM t WHERE a NOT REGEXP 'x'", {"where": A.Regexp(F("a"), "x", negated=True)}),
    ("SELECT * FROM t WHERE a IS NULL", {"where": A.IsNull(F("a"))}),
    ("SELECT * FROM t WHERE a is null or b is not null", {"where": OR(A.IsNull(F("a")), A.IsNull(F("b"), True))}),
    ("SELECT * FROM t WHERE a + b > c * 2", {"where": cmp(">", op("+", F("a"), F("b")), op("*", F("c"), L(2)))}),
    ("SELECT * FROM t WHERE (a + b) / 2 >= 10", {"where": cmp(">=", op("/", op("+", F("a"), F("b")), L(2)), L(10))}),
    ("SELECT * FROM t WHERE ((a = 1))", {"where": eq("a", 1)}),
    ("SELECT * FROM t WHERE isError", {"where": F("isError")}),
    ("SELECT * FROM t WHERE a = 'it''s' AND b = \"say \\\"hi\\\"\"",
     {"where": AND(eq("a", "it's"), eq("b", 'say "hi"'))}),
    ("SELECT * FROM t WHERE length(name) > 3", {"where": cmp(">", fn("length", F("name")), L(3))}),
    ("SELECT * FROM t WHERE `my field` = 1", {"where": cmp("=", P("my field"), L(1))}),
    ("SELECT * FROM t WHERE 3 < a", {"where": cmp("<", L(3), F("a"))}),
    ("SELECT * FROM t WHERE a=1AND b=2", {"where": AND(eq("a", 1), eq("b", 2))}),
    ("SELECT * FROM t WHERE a = 9223372036854775807", {"where": eq("a", 2**63 - 1)}),
    # SINCE / UNTIL
    ("SELECT * FROM t SINCE 2 hours UNTIL 1 hour", {"since": A.TimeValue(2, "h"), "until": A.TimeValue(1, "h")}),
    ("SELECT * FROM t SINCE 1 day", {"since": A.TimeValue(1, "d")}),
    ("SELECT * FROM t SINCE 3 days UNTIL 2 d", {"since": A.TimeValue(3, "d"), "until": A.TimeValue(2, "d")}),
    ("SELECT * FROM t SINCE 2 weeks UNTIL 1 w", {"since": A.TimeValue(2, "w"), "until": A.TimeValue(1, "w")}),
    ("SELECT * FROM t SINCE 5 minute", {"since": A.TimeValue(5, "m")}),
    ("SELECT * FROM t SINCE 5 MINUTES", {"since": A.TimeValue(5, "m")}),
    ("SELECT * FROM t WHERE a = 1 SINCE 1 h", {"where": eq("a", 1), "since": A.TimeValue(1, "h")}),
    ("SELECT * FROM t SINCE 1502147143000", {"since": A.TimeValue(1502147143000), "until": None}),
    # HAVING / ORDER BY / LIMIT
    ("SELECT a, count(*) AS c FROM t HAVING c > 5", {"having": cmp(">", F("c"), L(5))}),
    ("SELECT a, count(*) FROM t HAVING count(*) > 5 AND a != 'x'",
     {"having": AND(cmp(">", count(), L(5)), cmp("!=", F("a"), L("x")))}),
    ("SELECT a, count(*) FROM t WHERE b = 1 SINCE 1 h HAVING count(*) > 1 ORDER BY a ASC LIMIT 5",
     {"where": eq("b", 1), "since": A.TimeValue(1, "h"), "having": cmp(">", count(), L(1)),
      "order": [(F("a"), False)], "limits": (5,)}),
    ("SELECT a, b FROM t ORDER BY a, b DESC", {"order": [(F("a"), False), (F("b"), True)]}),
    ("SELECT a, b FROM t ORDERBY a", {"order": [(F("a"), False)]}),
    ("SELECT a, b FROM t order   by a asc", {"order": [(F("a"), False)]}),
    ("SELECT a, count(*) FROM t ORDER BY count(*) DESC", {"order": [(count(), True)]}),
    ("SELECT a FROM t LIMIT 5", {"limits": (5,)}),
    ("SELECT a, b, c, count(*) FROM t LIMIT 5, 4, 3", {"limits": (5, 4, 3)}),
    ("SELECT a FROM t LIMIT 0", {"limits": (0,)}),
    ("SELECT a FROM t limit 20", {"limits": (20,)}),
]

# (query, line, column, words the message must contain)
INVALID = [
    ("SELECT x FROM t GROUP BY x", 1, 17, "GROUP BY is not ADQL"),
    ("SELECT x, count(*) FROM t WHERE a = 1 GROUP BY x SINCE 24 hours ago", 1, 39, "GROUP BY is not ADQL"),
    ("SELECT * FROM t SINCE 1 hour ago", 1, 30, "'ago' is not ADQL"),
    ("SELECT * FROM transactions SINCE 24 hours ago", 1, 43, "'ago' is not ADQL"),
    ("SELECT * FROM t SINCE 2 years", 1, 25, "unknown time unit"),
    ("SELECT * FROM t SINCE 5 s", 1, 25, "unknown time unit"),
    ("SELECT * FROM t SINCE", 1, 22, "ends too early"),
    ("SELECT * FROM t SINCE '2024-01-01'", 1, 23, "SINCE/UNTIL"),
    ("SELECT * FROM t SINCE 1 h UNTIL", 1, 32, "ends too early"),
    ("SELECT x FROM", 1, 14, "ends too early"),
    ("SELECT FROM t", 1, 8, "FROM is a reserved word, read here as a name"),
    ("SELECT limit FROM t", 1, 8, "limit is a reserved word; write `limit`"),
    ("SELECT a FROM t WHERE order = 1", 1, 23, "order is a reserved word"),
    ("SELECT x", 1, 9, "ends too early"),
    ("x FROM t", 1, 1, "unexpected"),
    ("", 1, 1, "empty"),
    ("   ", 1, 1, "empty"),
    ("SELECT x FROM t WHERE", 1, 22, "ends too early"),
    ("SELECT x FROM t WHERE a =", 1, 26, "ends too early"),
    ("SELECT x\nFROM t\nWHERE a = = 3", 3, 11, "unexpected '='"),
    ("SELECT x FROM t WHERE a # 3", 1, 25, "unexpected character '#'"),
    ("SELECT x FROM t, u", 1, 16, "unexpected"),
    ("SELECT x FROM t WHERE a == 1", 1, 26, "unexpected"),
    ("SELECT x FROM t WHERE a IN ()", 1, 29, "unexpected"),
    ("SELECT x FROM t WHERE a IN 1, 2", 1, 28, "unexpected"),
    ("SELECT x FROM t WHERE a BETWEEN 1", 1, 34, "ends too early"),
    ("SELECT x FROM t WHERE a BETWEEN [1, 2", 1, 38, "ends too early"),
    ("SELECT x FROM t WHERE a BETWEEN [a, 2]", 1, 34, "unexpected"),
    ("SELECT x FROM t WHERE a IS 3", 1, 28, "unexpected"),
    ("SELECT x FROM t WHERE a LIKE b", 1, 30, "LIKE needs a quoted string"),
    ("SELECT x FROM t WHERE a LIKE 3", 1, 30, "LIKE needs a quoted string"),
    ("SELECT x FROM t WHERE a REGEXP '('", 1, 32, "not a valid regular expression"),
    ("SELECT x FROM t ORDER x", 1, 17, "unexpected"),
    ("SELECT x FROM t ORDER BY", 1, 25, "ends too early"),
    ("SELECT x FROM t LIMIT", 1, 22, "ends too early"),
    ("SELECT x FROM t LIMIT -1", 1, 23, "unexpected"),
    ("SELECT x FROM t LIMIT 1.5", 1, 24, "unexpected"),
    ("SELECT x FROM t LIMIT 5 WHERE a = 1", 1, 25, "unexpected"),
    ("SELECT x FROM t WHERE a = 1 WHERE b = 2", 1, 29, "unexpected"),
    ("SELECT x FROM t HAVING a > 1 WHERE b = 1", 1, 30, "unexpected"),
    ("SELECT x AS FROM t", 1, 13, "FROM is a reserved word"),
    ("SELECT x y FROM t", 1, 10, "unexpected"),
    ("SELECT * , x FROM t", 1, 10, "unexpected"),
    ("SELECT x FROM t WHERE a = 'unterminated", 1, 27, "unterminated string: no closing '"),
    ('SELECT x FROM t WHERE a = "x\\"', 1, 27, 'unterminated string: no closing "'),
    ("SELECT `unterminated FROM t", 1, 8, "unterminated back-quoted name"),
    ("SELECT `` FROM t", 1, 8, "unterminated back-quoted name"),
    ("SELECT foo(x) FROM t", 1, 8, "unknown function foo()"),
    ("SELECT exists(x) FROM t", 1, 8, "EXISTS"),
    ("SELECT a, distinct(b) FROM t", 1, 11, "DISTINCT must come right after SELECT"),
    ("SELECT count(a, b) FROM t", 1, 8, "exactly one argument"),
    ("SELECT count() FROM t", 1, 8, "exactly one argument"),
    ("SELECT sum(*) FROM t", 1, 8, "only allowed as count(*)"),
    ("SELECT percentile(a) FROM t", 1, 8, "percentile() takes"),
    ("SELECT percentile(a, 0) FROM t", 1, 22, "above 0 and at most 100"),
    ("SELECT percentile(a, 101) FROM t", 1, 22, "above 0 and at most 100"),
    ("SELECT percentile(a, 'x') FROM t", 1, 22, "above 0 and at most 100"),
    ("SELECT series(eventTimestamp) FROM t", 1, 8, "series() takes"),
    ("SELECT series(eventTimestamp, '1y'), count(*) FROM t", 1, 31, "interval"),
    ("SELECT series(eventTimestamp, '0m'), count(*) FROM t", 1, 31, "interval"),
    ("SELECT series(price, 0), count(*) FROM t", 1, 22, "interval"),
    ("SELECT series(price, -5), count(*) FROM t", 1, 22, "interval"),
    ("SELECT range(a, 5, 1), count(*) FROM t", 1, 20, "strictly ascending"),
    ("SELECT range(a, 'x'), count(*) FROM t", 1, 17, "bounds must be numbers"),
    ("SELECT filter(count(*)) FROM t", 1, 8, "filter() takes"),
    ("SELECT filter(count(*), a = 1) FROM t", 1, 8, "must start with WHERE"),
    ("SELECT filter(a, WHERE b = 1) FROM t", 1, 15, "must be a metric function"),
    ("SELECT count(WHERE a = 1) FROM t", 1, 8, "WHERE is only allowed inside filter"),
    ("SELECT funnel(a) FROM t", 1, 8, "funnel() takes"),
    ("SELECT substring(a) FROM t", 1, 8, "substring() takes"),
    ("SELECT now(1) FROM t", 1, 8, "now() takes"),
    ("SELECT length(a, b) FROM t", 1, 8, "length() takes"),
    ("SELECT x FROM t TOP 5", 1, 17, "unexpected"),
    ("SELECT TOP 5 x FROM t", 1, 12, "unexpected"),
    ("SELECT x FROM t JOIN u", 1, 17, "unexpected"),
    ("SELECT x FROM t WHERE a = 1;", 1, 28, "unexpected character ';'"),
    ("SELECT x FROM t; DROP TABLE t", 1, 16, "unexpected character ';'"),
    ("DELETE FROM t", 1, 1, "unexpected"),
    ("SELECT a FROM t WHERE b > 1E999", 1, 27, "the number 1E999 is out of range"),
    ("SELECT a FROM t WHERE b > 9223372036854775808", 1, 27, "out of range"),
    ("SELECT a FROM t WHERE b BETWEEN [0, 1e400]", 1, 37, "out of range"),
    ("SELECT a FROM t SINCE 99999999999999999999 h", 1, 23, "time value 99999999999999999999 is out of range"),
]


def _norm_items(items):
    return [i if isinstance(i, tuple) else (i, None) for i in items]


def check(select: A.Select, expect: dict) -> None:
    assert expect, "each table entry asserts at least one part of the tree"
    for key, want in expect.items():
        if key == "items":
            assert [(i.expr, i.alias) for i in select.items] == _norm_items(want)
        elif key == "texts":
            assert [i.text for i in select.items] == want
        elif key == "order":
            assert [(k.expr, k.descending) for k in select.order_by] == want
        elif key == "from":
            assert select.from_schema == want
        elif key == "limits":
            assert select.limits == want
        else:
            assert getattr(select, key) == want, key


VALID = DOC_EXAMPLES + MORE_VALID


def test_table_size() -> None:
    """The issue asks for at least 150 statements, valid and invalid."""
    assert len(VALID) + len(INVALID) >= 150
    assert len(DOC_EXAMPLES) >= 60


@pytest.mark.parametrize(("query", "expect"), VALID, ids=[q[:60] for q, _ in VALID])
def test_valid(query: str, expect: dict) -> None:
    select = parse(query)
    check(select, expect)
    assert select.text == query


@pytest.mark.parametrize(("query", "line", "column", "words"), INVALID, ids=[q[:60] or "<empty>" for q, *_ in INVALID])
def test_invalid(query: str, line: int, column: int, words: str) -> None:
    with pytest.raises(AdqlError) as caught:
        parse(query)
    err = caught.value
    assert words in err.reason
    assert (err.line, err.column) == (line, column)
    assert f"line {line}, column {column}" in str(err)


def test_length_limit() -> None:
    base = "SELECT a FROM t WHERE b = '"
    ok = base + "x" * (5000 - len(base) - 1) + "'"
    assert len(ok) == 5000
    assert parse(ok).where == eq("b", "x" * (5000 - len(base) - 1))
    with pytest.raises(AdqlError, match="5,001 characters long; ADQL allows at most 5,000") as caught:
        parse(ok + " ")
    assert (caught.value.line, caught.value.column) == (1, 5001)  # the first character past the limit
    with pytest.raises(AdqlError) as caught:
        parse("SELECT a\nFROM t WHERE b = '" + "x" * 6000 + "'")
    assert (caught.value.line, caught.value.column) == (2, 5001 - len("SELECT a\n"))


def test_positions_and_labels() -> None:
    select = parse("SELECT  avg(price)   AS  'p',\n  count(*)  FROM t")
    first, second = select.items
    assert first.pos[:2] == (1, 9)
    assert first.expr.pos[:2] == (1, 9)
    assert (first.text, first.label) == ("avg(price)", "p")
    assert second.pos[:2] == (2, 3)
    assert (second.text, second.label) == ("count(*)", "count(*)")


def test_positions_do_not_take_part_in_equality() -> None:
    spaced, tight = parse("SELECT a FROM t WHERE b = 1"), parse("SELECT   a   FROM t WHERE   b=1")
    assert spaced.where.pos != tight.where.pos
    assert (spaced.items[0].expr, spaced.where) == (tight.items[0].expr, tight.where)


def test_nesting_depth_is_capped() -> None:
    deep = "SELECT " + " + ".join(["a"] * 600) + " FROM t"
    with pytest.raises(AdqlError, match="more than 200 levels deep"):
        parse(deep)
    parens = "SELECT " + "(" * 1500 + "a" + ")" * 1500 + " FROM t"
    assert parse(parens).items[0].expr == F("a")


def test_long_or_list_stays_flat_and_parses_fast() -> None:
    """A 5,000-character query (~300 OR terms) parses into one flat Or, in bounded time (LALR: linear)."""
    parse("SELECT a FROM t")  # build the parser once
    terms = [f'x{i} = "v{i}"' for i in range(400)]
    query = "SELECT a, count(*) FROM t WHERE " + " OR ".join(terms)
    query = query[: query.rfind(" OR ", 0, 5000)]
    assert len(query) <= 5000
    started = time.perf_counter()
    select = parse(query)
    elapsed = time.perf_counter() - started
    assert isinstance(select.where, A.Or) and len(select.where.operands) > 250
    assert select.where.operands[7] == eq("x7", "v7")
    assert elapsed < 2.0, elapsed


def test_every_doc_example_is_in_the_table() -> None:
    """Guard against the table losing the reference examples in a refactor."""
    queries = {q for q, _ in DOC_EXAMPLES}
    for must in (
        "SELECT * FROM myProducts",
        "SELECT * FROM transactions SINCE 1 h UNTIL 15 m",
        "SELECT application, transactionName, avg(responseTime) FROM transactions LIMIT 500, 50",
        "SELECT distinct (segments.node), count(*) FROM transactions",
    ):
        assert must in queries
    invalid = {q for q, *_ in INVALID}
    assert "SELECT * FROM transactions SINCE 24 hours ago" in invalid


def test_unicode_names() -> None:
    assert parse("SELECT ümlaut, données.prix FROM t").items[1].expr == P("données", "prix")


def test_grammar_is_conflict_free_lalr(caplog: pytest.LogCaptureFixture) -> None:
    """lark resolves shift/reduce conflicts silently (logging them at DEBUG); the grammar must have none."""
    import logging
    from pathlib import Path

    from lark import Lark, logger

    grammar = (Path(parse.__code__.co_filename).parent / "grammar.lark").read_text()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="lark"):
            Lark(grammar, parser="lalr", lexer="contextual", debug=True)
    finally:
        logger.setLevel(previous)
    assert not [r for r in caplog.records if "conflict" in r.getMessage().lower()]
