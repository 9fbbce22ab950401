"""The core's reference semantics this backend reuses, imported in one place.

Where SQL cannot answer exactly (and for cursors, bucket ordering and percentile interpolation), the
backend calls the executable reference of `gateway.query` rather than re-reading the rules; queries
outside the native model are evaluated by the core (`gateway.query.evaluate`) over `PostgresBackend.scan`.
"""

from __future__ import annotations

from gateway.query.aggregate import empty_metric, fill, order_buckets, percentile
from gateway.query.calendar import DAY_MS, FIXED_INTERVALS_MS, WEEK_ORIGIN_MS, bucket_end, bucket_start
from gateway.query.checks import check_event
from gateway.query.cursor import decode_position, encode_position
from gateway.query.evaluate import native_tree
from gateway.query.semantics import normalize_key, rank, scalar_values, value_class, value_matches

__all__ = ["DAY_MS", "FIXED_INTERVALS_MS", "WEEK_ORIGIN_MS", "bucket_end", "bucket_start", "check_event",
           "decode_position", "empty_metric", "encode_position", "fill", "native_tree", "normalize_key",
           "order_buckets", "percentile", "rank", "scalar_values", "value_class", "value_matches"]
