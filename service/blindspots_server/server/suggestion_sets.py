"""Stored suggestion sets: the table Suggest writes, and ListSuggestionSets' and
GetSuggestionSet's reading of it back as Suggest answered.

A set's file holds one row per candidate with every field of ``Candidate``, and in its
schema metadata the parts of Suggest's last message that are not the catalog's (the
exclusions, the note, the pool coverage). Sets stored before this layout lack the last
four candidate columns and the metadata; they read back with the proto's defaults
(``predicted_label`` -1: no prediction kept).
"""
from __future__ import annotations

from typing import Optional

import pyarrow as pa

from blindspots.v1 import blindspots_pb2 as pb

from ..storage import SuggestionSetRecord
from . import convert

ANSWER_KEY = b"blindspots.answer"
SET_SCHEMA = pa.schema([("rank", pa.int32()), ("sample_id", pa.string()), ("uri", pa.string()),
                        ("score", pa.float64()), ("region_id", pa.int32()), ("reason", pa.string()),
                        ("nearest_failure_id", pa.string()), ("distance", pa.float64()), ("slice", pa.string()),
                        ("predicted_label", pa.int32()), ("confidence", pa.float64())])
# The columns of sets stored before the layout above, and what the later ones read as there.
_LATER_DEFAULTS = {"distance": 0.0, "slice": "", "predicted_label": -1, "confidence": 0.0}


def set_table(candidates: list[pb.Candidate], answer: pb.SuggestionSet) -> pa.Table:
    """The file of a suggestion set: its candidates, and ``answer`` (Suggest's last
    message) in the schema metadata for what the catalog does not keep."""
    kept = pb.SuggestionSet(exclusions=answer.exclusions, note=answer.note, pool_coverage=answer.pool_coverage)
    table = pa.table({f.name: [getattr(c, f.name) for c in candidates] for f in SET_SCHEMA}, schema=SET_SCHEMA)
    return table.replace_schema_metadata({ANSWER_KEY: kept.SerializeToString()})


def set_message(record: SuggestionSetRecord, table: Optional[pa.Table] = None) -> pb.SuggestionSet:
    """The set as Suggest's last message had it: the catalog's fields, and from the file
    (when given, and stored with them) the exclusions, note and pool coverage."""
    msg = convert.suggestion_set_message(record)
    answer = (table.schema.metadata or {}).get(ANSWER_KEY) if table is not None else None
    if answer:
        kept = pb.SuggestionSet.FromString(answer)
        msg.exclusions.CopyFrom(kept.exclusions)
        msg.note = kept.note
        msg.pool_coverage.extend(kept.pool_coverage)
    return msg


def candidates(table: pa.Table, offset: int, limit: int) -> list[pb.Candidate]:
    """Candidates ``offset`` to ``offset + limit`` of a stored set, in rank order."""
    part = table.slice(offset, limit)
    columns = {name: (part.column(name).to_pylist() if name in part.column_names
                      else [_LATER_DEFAULTS[name]] * part.num_rows) for name in SET_SCHEMA.names}
    return [pb.Candidate(**{name: values[i] for name, values in columns.items()}) for i in range(part.num_rows)]
