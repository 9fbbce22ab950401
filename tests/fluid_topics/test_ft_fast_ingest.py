"""The fast path for posted events (`schemas._fast_ingest`) gives exactly what the marshmallow schema gives.

Every input it accepts must load to the same document (same keys, order and values) as ``INGEST.load``,
and nothing the schema refuses may pass it; anything else goes to the schema itself.
"""

from __future__ import annotations

import json
import random

from marshmallow import ValidationError

from plugins.fluid_topics.schemas import INGEST, _fast_ingest, _Unusual

VALUES = [None, True, False, 0, 1, 1.5, "", " ", "x", [], ["a"], ["a", 1], {}, {"id": "u"},
          {"id": None, "realm": "r"}, {"x": 1}, {"groups": None, "roles": ["a", "b"], "realm": []}, {"id": 5}]
KEYS = ["offline", "appName", "appVersion", "name", "contentLocale", "uiLocale", "sessionId", "user", "extra"]


def test_fast_path_matches_the_schema_on_random_events() -> None:
    rng = random.Random(11)
    fast = 0
    for _ in range(20000):
        raw = {"offline": rng.choice([True, False, None, "true"]), "appName": "a", "appVersion": "1", "name": "n"}
        for key in rng.sample(KEYS, rng.randrange(5)):
            if rng.random() < 0.4:
                raw.pop(key, None)
            else:
                raw[key] = rng.choice(VALUES)
        try:
            expected: object = INGEST.load(raw)
        except ValidationError:
            expected = ValidationError
        try:
            got = _fast_ingest(raw)
        except _Unusual:
            continue
        fast += 1
        assert expected is not ValidationError, raw
        assert json.dumps(got) == json.dumps(expected), raw
    assert fast > 2000  # the common shapes really take the fast path


def test_the_usual_tracker_event_takes_the_fast_path() -> None:
    raw = {"offline": False, "appName": "ft", "appVersion": "5", "name": "khub.search", "sessionId": None,
           "user": {"id": "u1", "realm": "internal", "groups": ["g"], "roles": []}, "query": "q"}
    assert _fast_ingest(raw) == INGEST.load(raw)
