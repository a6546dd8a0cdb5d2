"""Labels in the embedded store's SQLite catalog: one row per labeled run or pool sample.

A mixin of :class:`.embedded.EmbeddedStore` (it uses the store's connection
helpers), kept apart so the store's row and catalog code stays one concept.
"""
from __future__ import annotations

from .base import LabelsOutcome

LABELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
  target TEXT, target_id TEXT, sample_id TEXT, label TEXT, source TEXT, labeled_at REAL,
  PRIMARY KEY (target, target_id, sample_id)) WITHOUT ROWID;
"""
# SQLite's default limit on bound parameters per statement is 999 (older builds).
_CHUNK = 500


class EmbeddedLabels:
    """Label writes and sample-id checks of the Store interface (label reads: sql_catalog.SqlCatalog)."""

    def unknown_sample_ids(self, target: str, target_id: str, sample_ids: list[str]) -> list[str]:
        self._table_name(target)
        known: set[str] = set()
        for start in range(0, len(sample_ids), _CHUNK):
            chunk = sample_ids[start:start + _CHUNK]
            known.update(r[0] for r in self._query(
                f"SELECT sample_id FROM sample_ids WHERE target=? AND target_id=? AND sample_id IN "
                f"({','.join('?' * len(chunk))})", (target, target_id, *chunk)))
        return [s for s in sample_ids if s not in known]

    def save_labels(self, target: str, target_id: str, sample_ids: list[str], labels: list[str],
                    source: str, labeled_at: float) -> LabelsOutcome:
        self._table_name(target)
        if len(sample_ids) != len(labels):
            raise ValueError(f"labels has {len(labels)} values but sample_ids has {len(sample_ids)}")
        # Repeated ids in one import: the last one wins, as a later import would.
        latest = dict(zip(sample_ids, labels))
        with self._lock:        # the counts describe this import, not one racing it
            before = set(self._labeled_among(target, target_id, list(latest)))
            self._exec([("INSERT OR REPLACE INTO labels VALUES (?,?,?,?,?,?)",
                         (target, target_id, sid, label, source, labeled_at)) for sid, label in latest.items()],
                       exists=((target, target_id),))
            total = self._query("SELECT COUNT(*) FROM labels WHERE target=? AND target_id=?",
                                (target, target_id))[0][0]
        return LabelsOutcome(stored=len(latest), replaced=len(before), total=int(total))

    def _labeled_among(self, target: str, target_id: str, sample_ids: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(sample_ids), _CHUNK):
            chunk = sample_ids[start:start + _CHUNK]
            out.extend(r[0] for r in self._query(
                f"SELECT sample_id FROM labels WHERE target=? AND target_id=? AND sample_id IN "
                f"({','.join('?' * len(chunk))})", (target, target_id, *chunk)))
        return out
