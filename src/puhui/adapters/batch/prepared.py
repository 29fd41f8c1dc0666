"""The table preparation hands to settlement, whichever rendering prepared it."""

from __future__ import annotations

import pyarrow as pa

TEXT_LIST = pa.list_(pa.field("l", pa.string()))
# The caps of the methodology that quantified a record, for its scene (null: none).
CAPS = ("day_max_g", "day_max_count", "month_max_g", "month_max_count")

# What preparation hands to settlement, whichever way it was prepared.
PREPARED = pa.schema(
    [
        ("row", pa.int64()),
        ("platform", pa.string()),
        ("record_id", pa.string()),
        ("scene", pa.string()),
        ("region", pa.string()),
        ("kind", pa.string()),
        ("reasons", TEXT_LIST),
        ("material", pa.string()),
        ("ref", pa.string()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("amount_milli", pa.int64()),
        ("pseudonym", pa.string()),
        ("detail", pa.string()),
        ("extra", pa.string()),
        ("digest", pa.string()),
        ("day_cn", pa.date32()),
        ("quant_key", pa.string()),
        ("methodology", pa.string()),
        ("computed_g", pa.int64()),
        *((name, pa.int64()) for name in CAPS),
        ("checks", TEXT_LIST),
    ]
)
