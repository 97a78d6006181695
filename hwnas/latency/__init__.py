"""Per-device latency lookup tables: schema, measurement, roofline prediction, validation, and the search API.

``load_table(name_or_path)`` returns a :class:`LatencyTable`; ``python -m hwnas.latency build|show|validate``.
"""
from hwnas.latency.expected import LatencyTable, load_table
from hwnas.latency.io import read_table, save_table, shipped_tables
from hwnas.latency.schema import (
    Device,
    FixedEntry,
    LatencyTableError,
    LayerEntry,
    LayerKey,
    Provenance,
    Setting,
    TableData,
)

__all__ = [
    "Device", "FixedEntry", "LatencyTable", "LatencyTableError", "LayerEntry", "LayerKey", "Provenance", "Setting",
    "TableData", "load_table", "read_table", "save_table", "shipped_tables",
]
